package fanout

import (
	"errors"
	"maps"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tandem-dev/tandem/eventlog"
)

// ids returns the ids of the events s was sent, and a "reset:<reason>"
// entry for each reset event, in order.
func ids(t *testing.T, s *fakeSink) []string {
	t.Helper()
	var out []string
	for _, ev := range parseWire(t, s.text()) {
		switch {
		case ev.event == "reset":
			out = append(out, "reset:"+ev.data)
		case ev.id != "":
			out = append(out, ev.id)
		}
	}
	return out
}

func cursors(gen string, from, to uint64) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, eventlog.Cursor{Gen: gen, Index: i}.String())
	}
	return out
}

func sameList(t *testing.T, name string, got, want []string) {
	t.Helper()
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("%s:\n got  %v\n want %v", name, got, want)
	}
}

func TestFeedDeliversInOrderToEveryClient(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := startHub(t, Config{})
		th.log.append("w", "s", 5) // history before anyone connects
		attached := []*fakeSink{newSink(true), newSink(true), newSink(true)}
		for _, s := range attached {
			th.serve(t, s, Stream{})
		}
		blocking := newSink(false) // a response that cannot be hijacked
		done := th.serve(t, blocking, Stream{})
		synctest.Wait()
		for i := range 10 {
			th.ring("w", "s", 3)
			if i%3 == 0 {
				synctest.Wait()
			}
		}
		synctest.Wait()
		for i, s := range append(attached, blocking) {
			wire := parseWire(t, s.text())
			if len(wire) == 0 || wire[0].retry != "2000" {
				t.Fatalf("client %d: stream starts with %+v, want retry: 2000", i, wire[:min(1, len(wire))])
			}
			checkEvents(t, "client", s, "g1", 0, 35)
		}
		if f := th.lookup("w", "s"); len(f.attached) != 3 {
			t.Fatalf("%d clients attached, want 3 (the blocking one stays in its loop)", len(f.attached))
		}
		select {
		case err := <-done:
			t.Fatalf("the blocking client's Serve returned %v while its stream lasts", err)
		default:
		}
		if got := th.obs.snapshot().delivered; got < 4*35 {
			t.Fatalf("delivered %d events, want at least %d", got, 4*35)
		}
	})
}

func TestSlowClientCatchesUpInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := startHub(t, Config{RingSize: 4})
		fast, slow := newSink(true), newSink(true)
		th.serve(t, fast, Stream{})
		th.serve(t, slow, Stream{User: "bob"})
		synctest.Wait()
		readsBefore, _ := th.log.counts()

		slow.setRoom(10) // its socket takes 10 bytes of the next frame
		slow.hold()      // and its own goroutine's writes wait
		th.ring("w", "s", 20)
		synctest.Wait()
		checkEvents(t, "fast client", fast, "g1", 0, 20)
		if got := ids(t, slow); len(got) != 0 {
			t.Fatalf("slow client got %v while its socket was full", got)
		}
		f := th.lookup("w", "s")
		f.mu.Lock()
		_, attached := f.attached[th.anyClient(t, "bob")]
		f.mu.Unlock()
		if attached {
			t.Fatal("slow client still attached with a full socket")
		}

		// It drains: the rest of its frame, then 2…20 from the Source (the
		// ring holds only 17…20), then it is attached again.
		slow.setRoom(-1)
		slow.release()
		synctest.Wait()
		checkEvents(t, "slow client", slow, "g1", 0, 20)
		if reads, _ := th.log.counts(); reads == readsBefore {
			t.Fatal("slow client caught up without reading the Source")
		}
		th.ring("w", "s", 5)
		synctest.Wait()
		checkEvents(t, "fast client", fast, "g1", 0, 25)
		checkEvents(t, "slow client", slow, "g1", 0, 25)
		f.mu.Lock()
		n := len(f.attached)
		f.mu.Unlock()
		if n != 2 {
			t.Fatalf("%d clients attached after catching up, want 2", n)
		}
		if o := th.obs.snapshot(); o.fallbacks < 2 {
			t.Fatalf("fallbacks %d, want the detach and the read from the Source", o.fallbacks)
		}
	})
}

// anyClient returns a client of user.
func (th *testHub) anyClient(t *testing.T, user string) *client {
	t.Helper()
	th.mu.Lock()
	defer th.mu.Unlock()
	for c := range th.clients {
		if c.user == user {
			return c
		}
	}
	t.Fatalf("no client of %s", user)
	return nil
}

func TestMissedDoorbellIsFilledFromSource(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := startHub(t, Config{})
		s := newSink(true)
		th.serve(t, s, Stream{})
		synctest.Wait()
		th.ring("w", "s", 1)
		synctest.Wait()

		// 2 and 3 were never rung: 4 does not follow the ring, which makes
		// the feed catch up from the Source.
		evs, gen := th.log.append("w", "s", 3)
		th.Ring("w", evs[2], gen)
		synctest.Wait()
		checkEvents(t, "gap", s, "g1", 0, 4)

		// 5 is never rung and nothing follows it: the audit finds it.
		th.log.append("w", "s", 1)
		synctest.Wait()
		checkEvents(t, "before the audit", s, "g1", 0, 4)
		time.Sleep(6 * time.Second)
		synctest.Wait()
		checkEvents(t, "after the audit", s, "g1", 0, 5)
	})
}

func TestResetOnCursorThatCannotResume(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := startHub(t, Config{})
		th.log.append("w", "s", 20)
		th.log.trim("w", "s", 11)
		oldest := eventlog.Cursor{Gen: "g1", Index: 11}.String()

		expired, unknown, exact := newSink(true), newSink(true), newSink(true)
		th.serve(t, expired, Stream{After: eventlog.Cursor{Gen: "g1", Index: 3}, Resumed: true})
		th.serve(t, unknown, Stream{After: eventlog.Cursor{Gen: "gX", Index: 5}, Resumed: true})
		th.serve(t, exact, Stream{After: eventlog.Cursor{Gen: "g1", Index: 15}, Resumed: true})
		synctest.Wait()
		sameList(t, "expired cursor", ids(t, expired),
			append([]string{`reset:{"reason":"cursor_expired","oldest":"` + oldest + `"}`}, cursors("g1", 11, 20)...))
		sameList(t, "unknown cursor", ids(t, unknown),
			append([]string{`reset:{"reason":"cursor_unknown","oldest":"` + oldest + `"}`}, cursors("g1", 11, 20)...))
		sameList(t, "exact cursor", ids(t, exact), cursors("g1", 16, 20))
		if o := th.obs.snapshot(); o.exact != 1 || o.resets != 2 {
			t.Fatalf("Resumed exact %d, reset %d; want 1 and 2", o.exact, o.resets)
		}

		// Redis loses the stream while they are attached: the next event
		// is of a new generation, and every client is told so and goes on
		// from its start.
		th.log.lose("w", "s", "g2")
		th.ring("w", "s", 3)
		synctest.Wait()
		for name, s := range map[string]*fakeSink{"expired": expired, "unknown": unknown, "exact": exact} {
			got := ids(t, s)
			sameList(t, name+" after the loss", got[len(got)-4:],
				append([]string{`reset:{"reason":"cursor_unknown","oldest":"` + eventlog.Cursor{Gen: "g2", Index: 1}.String() + `"}`}, cursors("g2", 1, 3)...))
		}
	})
}

// TestRingNoticesRewrittenIndexes: Redis loses acknowledged writes and
// the stream is written again under the lost entries' indexes (same
// generation). Attached clients past the surviving head get one reset and
// then the stream as Redis holds it; a client before the loss goes on
// with the new entries; none is sent a lost entry as if it were current.
func TestRingNoticesRewrittenIndexes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := startHub(t, Config{})
		th.log.tagAppends("w", "s", "a1")
		th.ring("w", "s", 5)
		behind, ahead := newSink(true), newSink(true)
		th.serve(t, ahead, Stream{})
		synctest.Wait()
		// behind stopped reading at 3 and comes back later.
		th.log.rewind("w", "s", 3, "b2")
		th.ring("w", "s", 3) // 4, 5, 6 again, other entries
		synctest.Wait()
		got := ids(t, ahead)
		want := append(tagged("g1", "a1", 1, 5), `reset:{"reason":"history_rewound","oldest":"`+eventlog.Cursor{Gen: "g1", Index: 1}.String()+`"}`)
		want = append(append(want, tagged("g1", "a1", 1, 3)...), tagged("g1", "b2", 4, 6)...)
		sameList(t, "attached client", got, want)

		th.serve(t, behind, Stream{After: eventlog.Cursor{Gen: "g1", Index: 3, Tag: "a1"}, Resumed: true})
		synctest.Wait()
		sameList(t, "client resuming before the loss", ids(t, behind), tagged("g1", "b2", 4, 6))
		// A client resuming from a lost entry the ring holds no more.
		lost := newSink(true)
		th.serve(t, lost, Stream{After: eventlog.Cursor{Gen: "g1", Index: 5, Tag: "a1"}, Resumed: true})
		synctest.Wait()
		if got := ids(t, lost); len(got) == 0 || !strings.HasPrefix(got[0], `reset:{"reason":"history_rewound"`) {
			t.Fatalf("client resuming from a lost entry got %v; want a reset first", got)
		}
	})
}

func tagged(gen, tag string, from, to uint64) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, eventlog.Cursor{Gen: gen, Index: i, Tag: tag}.String())
	}
	return out
}

func count(t *testing.T, s *fakeSink, comment string) int {
	t.Helper()
	n := 0
	for _, ev := range parseWire(t, s.text()) {
		if ev.comment == comment && ev.id == "" && ev.event == "" && ev.retry == "" {
			n++
		}
	}
	return n
}

func TestKeepaliveOfIdleStreams(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := startHub(t, Config{})
		attached, blocking := newSink(true), newSink(false)
		th.serve(t, attached, Stream{})
		th.serve(t, blocking, Stream{})
		synctest.Wait()

		time.Sleep(14*time.Second + 500*time.Millisecond)
		synctest.Wait()
		if a, b := count(t, attached, "keepalive"), count(t, blocking, "keepalive"); a != 0 || b != 0 {
			t.Fatalf("keepalives before 15 s idle: %d attached, %d blocking", a, b)
		}
		// The blocking client's own timer fires at 15 s; the sweeper, once
		// a second, finds the attached one idle for 15 s at 16 s.
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if a, b := count(t, attached, "keepalive"), count(t, blocking, "keepalive"); a != 1 || b != 1 {
			t.Fatalf("keepalives at 16.5 s: %d attached, %d blocking; want 1 each", a, b)
		}
		time.Sleep(16 * time.Second)
		synctest.Wait()
		if a, b := count(t, attached, "keepalive"), count(t, blocking, "keepalive"); a != 2 || b != 2 {
			t.Fatalf("keepalives at 32.5 s: %d attached, %d blocking; want 2 each", a, b)
		}

		// An event resets the idle time.
		time.Sleep(10 * time.Second)
		th.ring("w", "s", 1)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if a, b := count(t, attached, "keepalive"), count(t, blocking, "keepalive"); a != 2 || b != 2 {
			t.Fatalf("keepalives 10 s after an event: %d attached, %d blocking; want still 2 each", a, b)
		}
	})
}

func TestPresenceCounts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := startHub(t, Config{})
		ann1, ann2, bob, annV := newSink(true), newSink(true), newSink(true), newSink(false)
		th.serve(t, ann1, Stream{User: "ann"})
		th.serve(t, ann2, Stream{User: "ann"})
		th.serve(t, bob, Stream{User: "bob"})
		th.serve(t, annV, Stream{Workspace: "v", User: "ann"})
		synctest.Wait()
		want := map[string]map[string]int{"w": {"ann": 2, "bob": 1}, "v": {"ann": 1}}
		if got := th.Presence(); !equalPresence(got, want) {
			t.Fatalf("presence %v, want %v", got, want)
		}
		select {
		case <-th.PresenceChanged():
		default:
			t.Fatal("PresenceChanged not signalled")
		}

		// A client that leaves is noticed by the sweeper within a second.
		ann2.leave()
		time.Sleep(1500 * time.Millisecond)
		synctest.Wait()
		want = map[string]map[string]int{"w": {"ann": 1, "bob": 1}, "v": {"ann": 1}}
		if got := th.Presence(); !equalPresence(got, want) {
			t.Fatalf("presence after one left %v, want %v", got, want)
		}
		if !ann2.isClosed() {
			t.Fatal("the connection of the client that left is not closed")
		}
		if o := th.obs.snapshot(); o.clients != 3 {
			t.Fatalf("observed %d clients, want 3", o.clients)
		}

		// A broadcast reaches the workspace's clients, also ones that
		// come later, and replaces the one before.
		th.Broadcast("w", "presence", []byte(`{"users":1}`))
		th.Broadcast("w", "presence", []byte(`{"users":2}`))
		synctest.Wait()
		late := newSink(true)
		th.serve(t, late, Stream{User: "cy"})
		synctest.Wait()
		for name, s := range map[string]*fakeSink{"ann": ann1, "bob": bob, "late": late} {
			var got []string
			for _, ev := range parseWire(t, s.text()) {
				if ev.event == "presence" {
					if ev.id != "" {
						t.Fatalf("%s: presence with id %q", name, ev.id)
					}
					got = append(got, ev.data)
				}
			}
			if len(got) == 0 || got[len(got)-1] != `{"users":2}` {
				t.Fatalf("%s: presence events %v, want the last to be users 2", name, got)
			}
		}
		if n := strings.Count(annV.text(), "presence"); n != 0 {
			t.Fatal("a broadcast of w reached a client of v")
		}
	})
}

func equalPresence(a, b map[string]map[string]int) bool {
	return maps.EqualFunc(a, b, func(x, y map[string]int) bool { return maps.Equal(x, y) })
}

func TestCloseEndsStreams(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := startHub(t, Config{RingSize: 2})
		attached, blocking, detached := newSink(true), newSink(false), newSink(true)
		th.serve(t, attached, Stream{})
		done := th.serve(t, blocking, Stream{})
		th.serve(t, detached, Stream{})
		synctest.Wait()
		detached.setRoom(0)
		detached.hold() // its own goroutine is in the middle of a write
		th.ring("w", "s", 5)
		synctest.Wait()

		th.stop()
		for name, s := range map[string]*fakeSink{"attached": attached, "blocking": blocking, "detached": detached} {
			if !s.isClosed() {
				t.Fatalf("%s client's connection not closed by Run's end", name)
			}
		}
		if err := <-done; err != nil {
			t.Fatalf("Serve of the blocking client: %v", err)
		}
		if err := <-th.serve(t, newSink(true), Stream{}); !errors.Is(err, ErrClosed) {
			t.Fatalf("Serve after Run: %v, want ErrClosed", err)
		}
		if got := th.Presence(); len(got) != 0 {
			t.Fatalf("presence after Run %v, want none", got)
		}
	})
}

func TestStreamsPerUserAndExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := startHub(t, Config{MaxStreamsPerUser: 2})
		a, b := newSink(true), newSink(false)
		th.serve(t, a, Stream{Expires: time.Now().Add(3 * time.Second)})
		bdone := th.serve(t, b, Stream{Expires: time.Now().Add(3 * time.Second)})
		synctest.Wait()
		if err := <-th.serve(t, newSink(true), Stream{}); !errors.Is(err, ErrTooManyStreams) {
			t.Fatalf("third stream: %v, want ErrTooManyStreams", err)
		}
		if err := <-th.serve(t, newSink(true), Stream{User: "bob"}); err != nil {
			t.Fatalf("another user's stream: %v", err)
		}
		time.Sleep(4 * time.Second)
		synctest.Wait()
		if !a.isClosed() || !b.isClosed() {
			t.Fatalf("streams past their expiry still open: attached %v, blocking %v", !a.isClosed(), !b.isClosed())
		}
		if err := <-bdone; err != nil {
			t.Fatal(err)
		}
		if err := <-th.serve(t, newSink(true), Stream{}); err != nil {
			t.Fatalf("a stream once the others ended: %v", err)
		}
	})
}

func TestSourceDownThenBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := startHub(t, Config{})
		th.log.append("w", "s", 3)
		th.log.fail(errors.New("redis down"))
		attached, blocking := newSink(true), newSink(false)
		th.serve(t, attached, Stream{})
		th.serve(t, blocking, Stream{})
		time.Sleep(3 * time.Second)
		synctest.Wait()
		if o := th.obs.snapshot(); o.errors == 0 {
			t.Fatal("no error observed while the Source fails")
		}
		th.log.fail(nil)
		time.Sleep(3 * time.Second) // the clients' backoff, the audit
		synctest.Wait()
		checkEvents(t, "attached", attached, "g1", 0, 3)
		checkEvents(t, "blocking", blocking, "g1", 0, 3)
		th.ring("w", "s", 2)
		synctest.Wait()
		checkEvents(t, "attached", attached, "g1", 0, 5)
		checkEvents(t, "blocking", blocking, "g1", 0, 5)
	})
}

func TestIdleFeedLingersThenGoes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := startHub(t, Config{Linger: 5 * time.Second})
		s := newSink(true)
		th.serve(t, s, Stream{})
		synctest.Wait()
		th.ring("w", "s", 2)
		synctest.Wait()
		if !th.bell.isSubscribed("w") {
			t.Fatal("doorbell of w not subscribed")
		}
		s.leave()
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if th.lookup("w", "s") == nil {
			t.Fatal("feed gone before Linger")
		}
		// A client reconnecting meanwhile is served from the feed's ring.
		_, lastsBefore := th.log.counts()
		again := newSink(true)
		th.serve(t, again, Stream{After: eventlog.Cursor{Gen: "g1", Index: 1}, Resumed: true})
		synctest.Wait()
		checkEvents(t, "reconnected", again, "g1", 1, 2)
		if _, lasts := th.log.counts(); lasts != lastsBefore {
			t.Fatal("the lingering feed was filled again from the Source")
		}
		again.leave()
		time.Sleep(8 * time.Second)
		synctest.Wait()
		if th.lookup("w", "s") != nil {
			t.Fatal("feed still there after Linger")
		}
		if th.bell.isSubscribed("w") {
			t.Fatal("doorbell of w still subscribed without feeds")
		}
	})
}

func TestConfig(t *testing.T) {
	if err := (Config{Keepalive: -1}).Validate(); err == nil {
		t.Fatal("negative Keepalive accepted")
	}
	if err := (Config{}).Validate(); err != nil {
		t.Fatal(err)
	}
	c := Config{}.withDefaults()
	if c.Keepalive != 15*time.Second || c.Retry != 2*time.Second || c.RingSize != 512 {
		t.Fatalf("defaults %+v", c)
	}
	if err := New(newFakeLog(), Config{}).Run(t.Context()); err == nil {
		t.Fatal("Run without a doorbell succeeded")
	}
}
