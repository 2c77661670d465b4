package workspace

import (
	"slices"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// Tests of faults where the owner's behaviour was wrong, found with these
// fakes; each says what it shows.

// failOnce returns a before hook failing (unapplied) the first call match
// accepts.
func failOnce(match func(c *memCall) bool) (func(c *memCall) error, *atomic.Bool) {
	var done atomic.Bool
	return func(c *memCall) error {
		if match(c) && done.CompareAndSwap(false, true) {
			return unavailableErr(c.Method)
		}
		return nil
	}, &done
}

func appendsStatus(status string) func(c *memCall) bool {
	return func(c *memCall) bool {
		for _, r := range c.Records {
			if r.Type == TypeSessionStatus && describe(eventOf(r)) == "status:"+status {
				return true
			}
		}
		return false
	}
}

// A prompt whose CurrentEpoch check before the POST fails is kept and
// sent on a later tick, once.
func TestFakeSendEpochCheckFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		a := h.start("a", nodeOpts{})
		a.put(t)
		h.openSession(a)
		a.store.failNext("CurrentEpoch", 2)
		a.prompt(t, "one [chunks=1]")
		h.waitCount("status:turn_ended", 1)
		if got := h.promptTexts(); !slices.Equal(got, []string{"one [chunks=1]"}) {
			t.Fatalf("the agent received %v", got)
		}
	})
}

// endTurn (a prompt that could not be sent, a connection lost) dropped the
// turn even when its turn_ended append failed for a moment (Redis away):
// the stream kept a turn_started with no turn_ended, which the fault
// campaign's checker counts as a violation, and the stream state still
// named the turn. Now the turn stays until its end is recorded.
func TestFakeEndTurnAppendFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		a := h.start("a", nodeOpts{})
		a.put(t)
		h.openSession(a)
		before, failed := failOnce(appendsStatus(StatusTurnEnded))
		a.store.hooks(before, nil)
		h.sb.FailPosts(100)
		a.prompt(t, "one [chunks=1]")
		waitFor(t, "the failed turn end", failed.Load)
		h.sb.FailPosts(0)
		a.prompt(t, "two [chunks=1]")
		waitFor(t, "the second prompt answered", func() bool { return len(h.sb.Prompts()) == 1 })
		time.Sleep(time.Second)
		if n, m := h.count("status:turn_started"), h.count("status:turn_ended"); n != m {
			t.Fatalf("%d turns started, %d ended: %v", n, m, describeAll(h.events()))
		}
	})
}

// destroySession forgot the running turn (and acknowledged it) before its
// append; when that append failed for a moment, the retry from the backlog
// appended session_destroyed without the turn's turn_ended. Now both are
// forgotten only once the end is recorded.
func TestFakeDestroySessionAppendFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		a := h.start("a", nodeOpts{})
		a.put(t)
		a.prompt(t, "wait [hang]")
		waitFor(t, "the prompt at the agent", func() bool { return len(h.sb.Prompts()) == 1 })
		before, failed := failOnce(appendsStatus(StatusSessionDestroyed))
		a.store.hooks(before, nil)
		if _, err := a.m.DeleteSession(t.Context(), testWS, DefaultSession); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the failed append", failed.Load)
		h.waitCount("status:session_destroyed", 1)
		if n := h.count("status:turn_ended"); n != 1 {
			t.Fatalf("%d turn_ended: %v", n, describeAll(h.events()))
		}
	})
}

// A turn taken over whose request was written but whose inbox entry was
// not acknowledged (the old owner's ack failed) and whose agent has been
// silent for DispatchTimeout (thinking, or a tool without updates). It was
// sent again: the agent received the prompt twice, and the resend reused
// the request's JSON-RPC id, so the agent's "busy" error answer to it was
// taken as the end of the turn. Now it is never sent again: the new owner
// cannot tell whether it arrived, and ends the turn as delivery_unknown,
// which the room sees (issue 13).
func TestFakeTakeoverSilentTurnResent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		short := func(c *Config) { c.DispatchTimeout = 2 * time.Second }
		a := h.start("a", nodeOpts{cfg: short})
		a.put(t)
		h.openSession(a)
		a.store.failNext("AckInbox", 1000)
		a.prompt(t, "think [hang]")
		waitFor(t, "the prompt at the agent", func() bool { return len(h.sb.Prompts()) == 1 })
		a.store.pause()
		h.store.expireLock(testWS)
		h.start("b", nodeOpts{cfg: short})
		waitFor(t, "b to re-attach", func() bool { return h.count("status:owner_changed") == 1 })
		time.Sleep(10 * time.Second)
		a.store.resume()
		if n := len(h.sb.Prompts()); n != 1 {
			t.Fatalf("the agent received the prompt %d times (%+v); stream %v; turn ends %v", n, h.sb.Prompts(), describeAll(h.events()), statusDetails(h.events(), StatusTurnEnded))
		}
		if got := stopReasons(h.events()); !slices.Equal(got, []string{StopDeliveryUnknown}) {
			t.Fatalf("turn ends %v, want one delivery_unknown", statusDetails(h.events(), StatusTurnEnded))
		}
	})
}

// An ingest append that fails for messages of a connection still being
// opened (a re-attach whose messages the owner reads before it handles
// the open's result: s.conn is still nil) dropped nothing: persistIngested
// called dropConn(s, s.conn, …) with a nil conn, which closed neither the
// open's channel nor the connection. The open's later messages were then
// appended after the lost ones (a gap: ACP ids 4 then 7), or, when the
// failed batch held all of them, nothing more came and the turn never
// ended. Now the open's channel is closed and opened drops the
// connection, to be opened again from the last persisted event. Seen as a
// flake of TestFakeAppendsFailMidTurn when every re-attach's first batch
// failed. Here every ingest append fails for a while, and the inbox poll
// that runs right after a re-attach starts is held for 100 ms, so that the
// open's messages and its result wait together.
func TestFakeAppendFailsWhileReattaching(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		a := h.start("a", nodeOpts{})
		a.put(t)
		a.prompt(t, "long [chunks=8] [delay=50ms]")
		h.waitCount("agent:session/update", 2)
		var failing atomic.Int32
		failing.Store(12) // ingest appends left to fail
		var attaches atomic.Int32
		attaches.Store(int32(len(h.sb.Attaches())))
		a.store.hooks(func(c *memCall) error {
			switch c.Method {
			case "AppendParts":
				if failing.Add(-1) >= 0 {
					return unavailableErr(c.Method)
				}
			case "ReadInbox":
				if n := int32(len(h.sb.Attaches())); n > attaches.Load() {
					attaches.Store(n)
					time.Sleep(100 * time.Millisecond)
				}
			}
			return nil
		}, nil)
		h.waitCount("status:turn_ended", 1)
		checkAgentIDs(t, h.events())
	})
}
