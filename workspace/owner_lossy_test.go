package workspace

import (
	"encoding/json"
	"slices"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tandem-dev/tandem/acp"
)

// Redis lost the last acknowledged events of a session (a restart from an
// older snapshot): the owner's next append knows a head Redis no longer
// has and is refused; the owner starts again under its lock with a new
// epoch, records history_rewound with the lost range, and re-attaches the
// agent from the last persisted position, so the lost agent messages come
// back, under new indexes, and the stream goes on without a gap or a
// reused index. Before, the owner appended under the lost entries' indexes
// and the agent's lost output was gone.
func TestFakeRewoundStreamStartsOwnerAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		a := h.start("a", nodeOpts{})
		a.put(t)
		h.openSession(a)
		a.prompt(t, "first [chunks=2]")
		h.waitCount("status:turn_ended", 1)
		snap := h.store.snapshotStreams(testWS)
		kept := len(h.events())
		epoch1 := h.store.ownerRecord(testWS)["epoch"]
		a.prompt(t, "second [chunks=2]")
		h.waitCount("status:turn_ended", 2)
		lost := len(h.events()) - kept
		h.store.rewindStreams(snap)
		a.prompt(t, "third [chunks=1]")
		waitFor(t, "the third turn's end after the rewind", func() bool {
			return slices.Contains(describeAll(h.events()), "status:history_rewound") && h.count("status:turn_ended") >= 2
		})
		h.waitCount("status:turn_ended", 2) // first (kept) and third
		evs := h.events()
		checkIndexes(t, evs)
		checkAgentIDs(t, evs)
		var rewound struct {
			Detail struct{ FirstLost, LastLost uint64 }
		}
		for _, ev := range evs {
			if describe(ev) == "status:"+StatusHistoryRewound {
				_ = json.Unmarshal(ev.Body, &rewound)
			}
		}
		if rewound.Detail.FirstLost != uint64(kept+1) || rewound.Detail.LastLost != uint64(kept+lost) {
			t.Fatalf("history_rewound %+v; %d events were kept, %d lost", rewound.Detail, kept, lost)
		}
		// The second turn's agent messages came back from Sandbox Agent.
		if n := count(evs, "agent:session/update"); n != 5 {
			t.Fatalf("%d agent chunks after the rewind, want 2+2+1: %v", n, describeAll(evs))
		}
		if got := h.promptTexts(); !slices.Equal(got, []string{"first [chunks=2]", "second [chunks=2]", "third [chunks=1]"}) {
			t.Fatalf("the agent received %v", got)
		}
		if e := h.store.ownerRecord(testWS)["epoch"]; e == epoch1 {
			t.Fatalf("the owner goes on with epoch %s after the rewind", e)
		}
	})
}

// An owner that decided to go idle and was paused before its stop (SIGSTOP,
// a long GC) while the next owner took the workspace and re-attached to
// the session's agent connection. Resumed, it used to delete that
// connection in the sandbox (its fenced clear failed, which was only
// logged), ending the new owner's next turn with a restore from history.
// Now the connection is deleted only once the clear landed under the
// current epoch.
func TestFakePausedExOwnerIdleStopKeepsConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		a := h.start("a", nodeOpts{cfg: func(c *Config) { c.IdleTimeout = 200 * time.Millisecond }})
		a.put(t)
		a.prompt(t, "hi [chunks=1]")
		h.waitCount("status:turn_ended", 1)
		conn := h.store.state(testWS, DefaultSession)["conn"]
		release := make(chan struct{})
		var held atomic.Bool
		a.store.hooks(func(c *memCall) error {
			if c.State != nil && c.State["conn"] == "" && len(c.Records) == 0 && held.CompareAndSwap(false, true) {
				<-release // paused between the idle check and the stop
			}
			return nil
		}, nil)
		waitFor(t, "a paused in its idle stop", held.Load)
		h.store.expireLock(testWS)
		b := h.start("b", nodeOpts{})
		b.prompt(t, "again [chunks=1]")
		h.waitCount("status:turn_ended", 2)
		close(release)
		waitFor(t, "a to let go", func() bool { return !a.owns() })
		if slices.Contains(h.sb.Deleted(), conn) {
			t.Fatalf("the ex-owner deleted the connection %s the new owner uses", conn)
		}
		b.prompt(t, "third [chunks=1]")
		h.waitCount("status:turn_ended", 3)
		if n := h.count("status:session_restored"); n != 0 {
			t.Fatalf("the session was restored %d times: %v", n, describeAll(h.events()))
		}
	})
}

// Redis lost the record of a prompt the agent had received (its dispatch,
// its acknowledgement), and the owner that sent it is gone: the next owner
// finds the prompt in the inbox with no evidence of dispatch. It used to
// send it again (the agent received it twice). Now the re-attached
// connection's replay shows the agent answering a prompt the stream does
// not know, and the prompt ends as delivery_unknown instead; a prompt
// accepted after the takeover is sent as usual.
func TestFakeLostDispatchRecordNotSentAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		a := h.start("a", nodeOpts{})
		a.put(t)
		h.openSession(a)
		// Redis's snapshot is taken right before the dispatch's append:
		// the prompt is in the inbox, read by a, not dispatched.
		loseDispatch := h.snapshotAtDispatch(a)
		lost := a.prompt(t, "lost [chunks=2]")
		h.waitCount("status:turn_ended", 1)
		a.store.pause() // the owner is gone (SIGKILL, then Redis restarted)
		h.store.expireLock(testWS)
		loseDispatch()
		b := h.start("b", nodeOpts{})
		waitFor(t, "the lost prompt ended", func() bool {
			return slices.Contains(stopReasons(h.events()), StopDeliveryUnknown)
		})
		after := b.prompt(t, "after [chunks=1]")
		waitFor(t, "the next prompt answered", func() bool { return len(h.sb.Prompts()) == 2 })
		h.waitCount("status:turn_ended", 2)
		if got := h.promptTexts(); !slices.Equal(got, []string{"lost [chunks=2]", "after [chunks=1]"}) {
			t.Fatalf("the agent received %v", got)
		}
		evs := h.events()
		checkIndexes(t, evs)
		if got := chatUsers(evs); !slices.Equal(got, []string{lost.ID, after.ID}) {
			t.Fatalf("chat.user %v", got)
		}
		if got := stopReasons(evs); !slices.Equal(got, []string{StopDeliveryUnknown, "end_turn"}) {
			t.Fatalf("stop reasons %v", got)
		}
		a.store.resume()
	})
}

// Redis lost the session's stream and its state altogether (the browser
// test's "lose-stream"): the owner's next dispatch is refused, the owner
// starts again, records history_rewound in a new generation, opens a new
// connection (the state no longer names one) and sends the prompt.
func TestFakeLostStreamAndStateStartsOwnerAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		a := h.start("a", nodeOpts{})
		a.put(t)
		h.openSession(a)
		a.prompt(t, "first [chunks=1]")
		h.waitCount("status:turn_ended", 1)
		h.store.deleteStream(testWS, DefaultSession)
		a.prompt(t, "second [chunks=1]")
		waitFor(t, "the second prompt answered", func() bool { return len(h.sb.Prompts()) == 2 })
		h.waitCount("status:turn_ended", 1) // the new stream's
		if got := describeAll(h.events()); !slices.Contains(got, "status:"+StatusHistoryRewound) {
			t.Fatalf("stream %v", got)
		}
	})
}

// The same with a turn in flight in what Redis kept: the replay brings that
// turn's end and, in the same batch, the agent's work on the next prompt,
// whose dispatch was lost. Found by the long campaign (seed 20261209).
func TestFakeLostDispatchBehindATurnInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		a := h.start("a", nodeOpts{})
		a.put(t)
		h.openSession(a)
		var streams map[string]*memStream
		var inbox *memInbox
		var armed, taken atomic.Bool
		a.store.hooks(func(c *memCall) error {
			// Mid first turn, once the second prompt is accepted.
			if armed.Load() && c.Method == "AppendParts" && !c.hasType(TypeChatUser) && taken.CompareAndSwap(false, true) {
				streams, inbox = h.store.snapshotStreams(testWS), h.store.snapshotInbox(testWS)
			}
			return nil
		}, nil)
		a.prompt(t, "first [chunks=4] [delay=50ms]")
		second := a.prompt(t, "second [chunks=2]")
		armed.Store(true)
		h.waitCount("status:turn_ended", 2)
		if !taken.Load() {
			t.Fatal("no snapshot taken mid-turn")
		}
		a.store.pause()
		h.store.expireLock(testWS)
		h.store.rewindStreams(streams)
		h.store.rewindInbox(testWS, inbox)
		h.start("b", nodeOpts{})
		waitFor(t, "the second prompt ended", func() bool {
			return slices.Contains(stopReasons(h.events()), StopDeliveryUnknown)
		})
		time.Sleep(3 * time.Second)
		if got := h.promptTexts(); !slices.Equal(got, []string{"first [chunks=4] [delay=50ms]", "second [chunks=2]"}) {
			t.Fatalf("the agent received %v", got)
		}
		if got := chatUsers(h.events()); !slices.Contains(got, second.ID) {
			t.Fatalf("chat.user %v", got)
		}
		a.store.resume()
	})
}

// Redis lost the record of a prompt this node had dispatched (its
// chat.user, its turn, its acknowledgement), and the owner kept its lock:
// its next append is refused, it starts again under a new epoch and claims
// the prompt from the inbox. The node remembers sending it, so it is not
// sent again; it used to be acknowledged with no record at all (the room
// never saw it: found by a lossy campaign, seed 20261210). Now its
// chat.user is written again with a turn_ended delivery_unknown.
func TestFakeLostRecordOfOwnDispatchRecordedAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		a := h.start("a", nodeOpts{})
		a.put(t)
		h.openSession(a)
		first := a.prompt(t, "first [chunks=1]")
		h.waitCount("status:turn_ended", 1)
		loseDispatch := h.snapshotAtDispatch(a)
		lost := a.prompt(t, "lost [chunks=2]")
		h.waitCount("status:turn_ended", 2)
		loseDispatch()
		third := a.prompt(t, "third [chunks=1]")
		waitFor(t, "the third prompt answered", func() bool {
			return slices.Contains(chatUsers(h.events()), third.ID) && slices.Contains(stopReasons(h.events()), "end_turn") && h.count("status:turn_ended") >= 3
		})
		time.Sleep(2 * time.Second)
		evs := h.events()
		checkIndexes(t, evs)
		if got := h.promptTexts(); !slices.Equal(got, []string{"first [chunks=1]", "lost [chunks=2]", "third [chunks=1]"}) {
			t.Fatalf("the agent received %v", got)
		}
		if got := chatUsers(evs); !slices.Equal(got, []string{first.ID, lost.ID, third.ID}) {
			t.Fatalf("chat.user %v, want %v", got, []string{first.ID, lost.ID, third.ID})
		}
		if got := stopReasons(evs); !slices.Equal(got, []string{"end_turn", StopDeliveryUnknown, "end_turn"}) {
			t.Fatalf("stop reasons %v: %v", got, describeAll(evs))
		}
	})
}

// The same loss with an agent that says nothing for 15 s (a slow first
// token, a long tool call): the re-attached connection's replay shows no
// work, so nothing used to tell the next owner that the prompt had been
// sent, and it sent it again. Now the prompt's dispatch marker comes back
// in the replay, and the prompt ends delivery_unknown, sent once.
func TestFakeLostDispatchOfASilentTurnNotSentAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		a := h.start("a", nodeOpts{})
		a.put(t)
		h.openSession(a)
		loseDispatch := h.snapshotAtDispatch(a)
		const silent = "silent [chunks=1] [delay=15000ms]"
		lost := a.prompt(t, silent)
		waitFor(t, "the prompt at the agent", func() bool { return len(h.sb.Prompts()) == 1 })
		time.Sleep(100 * time.Millisecond)
		a.store.pause() // the owner is gone (SIGKILL, then Redis restarted)
		h.store.expireLock(testWS)
		loseDispatch()
		h.start("b", nodeOpts{})
		waitFor(t, "the lost prompt ended", func() bool {
			return slices.Contains(stopReasons(h.events()), StopDeliveryUnknown)
		})
		time.Sleep(20 * time.Second) // the silent turn is over at the agent
		if got := h.promptTexts(); !slices.Equal(got, []string{silent}) {
			t.Fatalf("the agent received %v", got)
		}
		if got := chatUsers(h.events()); !slices.Equal(got, []string{lost.ID}) {
			t.Fatalf("chat.user %v", got)
		}
		a.store.resume()
	})
}

// The same with a turn in flight in what Redis kept: the prompt whose
// record was lost was dispatched after that turn ended. Its record used to
// be written at once, inside the turn the replay then finished (the long
// campaign, seed 20261209: a turn's reply cut short by another prompt's
// turn_ended); it is written after that turn's end now.
func TestFakeLostRecordOfOwnDispatchAfterTheTurnInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		a := h.start("a", nodeOpts{})
		a.put(t)
		h.openSession(a)
		var streams map[string]*memStream
		var inbox *memInbox
		var armed, taken atomic.Bool
		a.store.hooks(func(c *memCall) error {
			if armed.Load() && c.Method == "AppendParts" && !c.hasType(TypeChatUser) && taken.CompareAndSwap(false, true) {
				streams, inbox = h.store.snapshotStreams(testWS), h.store.snapshotInbox(testWS)
			}
			return nil
		}, nil)
		first := a.prompt(t, "first [chunks=6] [delay=100ms]")
		second := a.prompt(t, "second [chunks=1]")
		armed.Store(true)
		h.waitCount("status:turn_ended", 2)
		if !taken.Load() {
			t.Fatal("no snapshot taken mid-turn")
		}
		h.store.rewindStreams(streams)
		h.store.rewindInbox(testWS, inbox)
		third := a.prompt(t, "third [chunks=1]")
		waitFor(t, "the third prompt answered", func() bool {
			return slices.Contains(chatUsers(h.events()), third.ID) && h.count("status:turn_ended") >= 3 && len(h.sb.Prompts()) == 3
		})
		time.Sleep(2 * time.Second)
		evs := h.events()
		checkIndexes(t, evs)
		if got := h.promptTexts(); !slices.Equal(got, []string{"first [chunks=6] [delay=100ms]", "second [chunks=1]", "third [chunks=1]"}) {
			t.Fatalf("the agent received %v", got)
		}
		if got := chatUsers(evs); !slices.Equal(got, []string{first.ID, second.ID, third.ID}) {
			t.Fatalf("chat.user %v, want %v", got, []string{first.ID, second.ID, third.ID})
		}
		if got := stopReasons(evs); !slices.Equal(got, []string{"end_turn", StopDeliveryUnknown, "end_turn"}) {
			t.Fatalf("stop reasons %v: %v", got, describeAll(evs))
		}
		// Nothing of another prompt inside the first turn: all its chunks
		// between its start and its end.
		d := describeAll(evs)
		start, end := slices.Index(d, "status:turn_started"), slices.Index(d, "status:turn_ended")
		if in := d[start:end]; slices.Contains(in, TypeChatUser) || count(evs[start:end], "agent:session/update") != 6 {
			t.Fatalf("the first turn holds %v", in)
		}
	})
}

// The same, with a second new owner between: Redis lost the dispatch of a
// silent turn; owner b re-attaches, reads the prompt's dispatch marker
// from the replay and appends it, and stops (SIGSTOP) before it ends the
// prompt. Owner c re-attaches after the marker's answer, so the replay no
// longer shows it: c knows of it from the stream state b wrote with it.
// Before, c sent the prompt again (the CI campaign of 2026-12-07, seed
// 646294000: a failover, then two takeovers).
func TestFakeLostDispatchMarkerReadByAnOwnerThatStopped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		a := h.start("a", nodeOpts{})
		a.put(t)
		h.openSession(a)
		loseDispatch := h.snapshotAtDispatch(a)
		const silent = "silent [chunks=1] [delay=15000ms]"
		lost := a.prompt(t, silent)
		waitFor(t, "the prompt at the agent", func() bool { return len(h.sb.Prompts()) == 1 })
		time.Sleep(100 * time.Millisecond)
		a.store.pause()
		loseDispatch()
		b := h.start("b", nodeOpts{})
		var read atomic.Bool
		b.store.hooks(nil, func(c *memCall) error {
			if c.Method == "AppendParts" && hasMarkerAnswer(c) && read.CompareAndSwap(false, true) {
				b.store.pause() // b stops right after appending the marker's answer
				h.store.expireLock(testWS)
			}
			return nil
		})
		h.store.expireLock(testWS)
		waitFor(t, "b appended the marker's answer", read.Load)
		h.start("c", nodeOpts{})
		waitFor(t, "the lost prompt ended", func() bool {
			return slices.Contains(stopReasons(h.events()), StopDeliveryUnknown)
		})
		time.Sleep(20 * time.Second) // the silent turn is over at the agent
		if got := h.promptTexts(); !slices.Equal(got, []string{silent}) {
			t.Fatalf("the agent received %v", got)
		}
		if got := chatUsers(h.events()); !slices.Equal(got, []string{lost.ID}) {
			t.Fatalf("chat.user %v", got)
		}
		a.store.resume()
		b.store.resume()
	})
}

// hasMarkerAnswer reports whether append c holds an agent's answer to a
// dispatch marker.
func hasMarkerAnswer(c *memCall) bool {
	for _, r := range c.Records {
		var ev sessionEvent
		var env acp.Envelope
		if r.Type != TypeSessionEvent || json.Unmarshal(r.Body, &ev) != nil || json.Unmarshal(ev.Payload, &env) != nil {
			continue
		}
		if _, ok := markedPrompt(env); ok {
			return true
		}
	}
	return false
}

// Redis lost the dispatch of a silent turn, and the sandbox restarted too,
// so the agent's replay that holds the dispatch marker is gone with it;
// the owner that sent the prompt then lost the workspace (here: stopped).
// Only that owner knew, and it wrote what it sent to the workspace's
// evidence after the loss (every second while recent): the next owner
// reads it, and the prompt ends delivery_unknown instead of being sent a
// second time, with the history, to the restarted agent. Before, it was
// (the long campaign of 2026-12-07, seed 20261209: a lossy restart, a
// sandbox kill, two takeovers).
func TestFakeLostDispatchAndSandboxRestartNotSentAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		a := h.start("a", nodeOpts{})
		a.put(t)
		h.openSession(a)
		loseDispatch := h.snapshotAtDispatch(a)
		const silent = "silent [chunks=1] [delay=15000ms]"
		lost := a.prompt(t, silent)
		waitFor(t, "the prompt at the agent", func() bool { return len(h.sb.Prompts()) == 1 })
		loseDispatch() // Redis lost the dispatch
		h.store.d.mu.Lock()
		delete(h.store.d.sent, testWS) // and what was written of it so far
		h.store.d.mu.Unlock()
		time.Sleep(1500 * time.Millisecond) // a, still the owner, writes it again
		a.store.pause()
		h.sb.Restart() // the sandbox restarted: no replay, no marker
		h.store.expireLock(testWS)
		h.start("b", nodeOpts{})
		waitFor(t, "the lost prompt ended", func() bool {
			return slices.Contains(stopReasons(h.events()), StopDeliveryUnknown)
		})
		time.Sleep(20 * time.Second)
		if got := h.promptTexts(); !slices.Equal(got, []string{silent}) {
			t.Fatalf("the agent received %v", got)
		}
		if got := chatUsers(h.events()); !slices.Equal(got, []string{lost.ID}) {
			t.Fatalf("chat.user %v", got)
		}
		a.store.resume()
	})
}

// snapshotAtDispatch snapshots the test workspace's streams and inbox
// right before n's first dispatch; the function it returns rewinds them
// to it, as a Redis that lost that dispatch and what followed.
func (h *harness) snapshotAtDispatch(n *testNode) func() {
	var streams map[string]*memStream
	var inbox *memInbox
	var taken atomic.Bool
	n.store.hooks(func(c *memCall) error {
		if isDispatch(c) && taken.CompareAndSwap(false, true) {
			streams, inbox = h.store.snapshotStreams(testWS), h.store.snapshotInbox(testWS)
		}
		return nil
	}, nil)
	return func() {
		h.t.Helper()
		if !taken.Load() {
			h.t.Fatal("no dispatch to lose")
		}
		h.store.rewindStreams(streams)
		h.store.rewindInbox(testWS, inbox)
	}
}
