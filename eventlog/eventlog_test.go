package eventlog_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tandem-dev/tandem/eventlog"
	"github.com/tandem-dev/tandem/internal/redistest"
)

// The event log's tests form one conformance suite that runs against each
// Redis deployment Tandem supports (backend_test.go): one server, a Redis
// Cluster and a Sentinel-managed master, each through the client a node
// makes of its URL. Cases share their backend, so each names its workspaces
// with b.ws.
func TestLog(t *testing.T) {
	cases := []struct {
		name string
		fn   func(*testing.T, *backend)
	}{
		{"AppendAndRead", testAppendAndRead},
		{"StaleWriter", testStaleWriter},
		{"InvalidRecord", testInvalidRecord},
		{"ReadResets", testReadResets},
		{"ConcurrentWritersSameEpochNoGaps", testConcurrentWritersSameEpochNoGaps},
		{"Bell", testBell},
		{"AppendState", testAppendState},
		{"AppendParts", testAppendParts},
	}
	for _, bk := range backends {
		t.Run(bk.name, func(t *testing.T) {
			b := bk.start(t)
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) { tc.fn(t, b) })
			}
		})
	}
}

func newLog(b *backend, cfg eventlog.Config) *eventlog.Log { return eventlog.New(b.rdb, cfg) }

func rec(typ, body string) eventlog.Record {
	return eventlog.Record{Type: typ, Body: json.RawMessage(body)}
}

func testAppendAndRead(t *testing.T, b *backend) {
	ctx := context.Background()
	l := newLog(b, eventlog.Config{})
	w1 := b.ws("w1")
	ep, err := l.AcquireEpoch(ctx, w1)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := l.Append(ctx, w1, "s1", ep, rec("chat.user", `{"userId":"ann","text":"hi"}`))
	if err != nil {
		t.Fatal(err)
	}
	batch, err := l.Append(ctx, w1, "s1", ep,
		eventlog.Record{Type: "session.event", Body: json.RawMessage(`{ "sender": "agent" }`), Source: "7"},
		rec("session.status", `{"status":"turn_ended"}`))
	if err != nil {
		t.Fatal(err)
	}
	all := append(evs, batch...)
	for i, ev := range all {
		if ev.Index != uint64(i+1) {
			t.Fatalf("event %d has index %d", i, ev.Index)
		}
	}
	page, head, err := l.Read(ctx, w1, "s1", eventlog.Cursor{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if head.Index != 3 || head.Gen == "" {
		t.Fatalf("head = %+v", head)
	}
	if len(page) != 3 {
		t.Fatalf("read %d events, want 3", len(page))
	}
	for i := range page {
		got, _ := json.Marshal(page[i])
		want, _ := json.Marshal(all[i])
		if string(got) != string(want) {
			t.Errorf("event %d read back as %s, appended as %s", i, got, want)
		}
	}
	if got := string(page[1].Body); got != `{"sender":"agent"}` {
		t.Errorf("body not compacted: %s", got)
	}
	var flat map[string]any
	if err := json.Unmarshal(page[0].AppendJSON(nil), &flat); err != nil {
		t.Fatal(err)
	}
	if flat["userId"] != "ann" || flat["type"] != "chat.user" || flat["eventIndex"] != 1.0 || flat["sessionId"] != "s1" || flat["id"] != page[0].ID {
		t.Errorf("API form = %v", flat)
	}
	src, err := l.SourcePosition(ctx, w1, "s1")
	if err != nil || src != "7" {
		t.Errorf("source position = %q, %v; want 7", src, err)
	}

	// Strictly after a cursor.
	c, err := eventlog.ParseCursor(page[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	rest, _, err := l.Read(ctx, w1, "s1", c, 10)
	if err != nil || len(rest) != 2 || rest[0].Index != 2 {
		t.Fatalf("read after %s: %d events, %v", c, len(rest), err)
	}
	// At the head: nothing, no error.
	none, _, err := l.Read(ctx, w1, "s1", head, 10)
	if err != nil || len(none) != 0 {
		t.Fatalf("read at head: %d events, %v", len(none), err)
	}
}

func testStaleWriter(t *testing.T, b *backend) {
	ctx := context.Background()
	l := newLog(b, eventlog.Config{})
	w, never := b.ws("w"), b.ws("never")
	t.Run("an epoch a failover lost is never handed out again", func(t *testing.T) {
		// The fence as a replica had it before the failover, which lost
		// the acquisition of ep2 (an INCR, before): the next acquisition
		// must not be ep2 again, or ep2's holder and the next owner would
		// both pass the fence.
		w := b.ws("lostfence")
		ep1, err := l.AcquireEpoch(ctx, w)
		if err != nil {
			t.Fatal(err)
		}
		ep2, err := l.AcquireEpoch(ctx, w)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[uint64]bool{ep1: true, ep2: true}
		for i := 0; i < 200; i++ {
			if err := b.rdb.Set(ctx, eventlog.FenceKey(w), ep1, 0).Err(); err != nil {
				t.Fatal(err)
			}
			ep3, err := l.AcquireEpoch(ctx, w)
			if err != nil {
				t.Fatal(err)
			}
			if seen[ep3] || ep3 <= ep1 {
				t.Fatalf("acquisition %d after the fence was rolled back to %d: epoch %d again (issued: %v)", i, ep1, ep3, seen)
			}
			seen[ep3] = true
			if _, err := l.Append(ctx, w, "s", ep2, rec("chat.user", `{"n":1}`)); !errors.Is(err, eventlog.ErrStaleWriter) {
				t.Fatalf("the holder of the lost epoch %d appended after %d was acquired: %v", ep2, ep3, err)
			}
		}
		if ep := ep1; ep >= 1<<53 {
			t.Fatalf("epoch %d is beyond 2^53: JavaScript clients would round it", ep)
		}
	})
	t.Run("ErrStaleWriter after a new epoch", func(t *testing.T) {
		ep1, _ := l.AcquireEpoch(ctx, w)
		if _, err := l.Append(ctx, w, "s", ep1, rec("chat.user", `{"n":1}`)); err != nil {
			t.Fatal(err)
		}
		ep2, err := l.AcquireEpoch(ctx, w)
		if err != nil || ep2 <= ep1 {
			t.Fatalf("epoch 2 = %d after %d, %v; want a larger one", ep2, ep1, err)
		}
		_, err = l.Append(ctx, w, "s", ep1, rec("chat.user", `{"n":2}`), rec("chat.user", `{"n":3}`))
		if !errors.Is(err, eventlog.ErrStaleWriter) {
			t.Fatalf("stale append: err = %v, want ErrStaleWriter", err)
		}
		evs, head, err := l.Read(ctx, w, "s", eventlog.Cursor{}, 10)
		if err != nil || len(evs) != 1 || head.Index != 1 {
			t.Fatalf("after the stale append: %d events, head %d, %v; want 1", len(evs), head.Index, err)
		}
		if _, err := l.Append(ctx, w, "s", ep2, rec("chat.user", `{"n":4}`)); err != nil {
			t.Fatalf("new writer: %v", err)
		}
		evs, _, _ = l.Read(ctx, w, "s", eventlog.Cursor{}, 10)
		if len(evs) != 2 || evs[1].Index != 2 || evs[1].Epoch != ep2 {
			t.Fatalf("new writer's event: %+v", evs)
		}
	})
	t.Run("ErrStaleWriter without any epoch", func(t *testing.T) {
		_, err := l.Append(ctx, never, "s", 0, rec("chat.user", `{}`))
		if !errors.Is(err, eventlog.ErrStaleWriter) {
			t.Fatalf("err = %v, want ErrStaleWriter", err)
		}
		if n, _ := l.Client().Exists(ctx, eventlog.StreamKey(never, "s")).Result(); n != 0 {
			t.Fatal("a refused append created the stream")
		}
	})
}

func testInvalidRecord(t *testing.T, b *backend) {
	ctx := context.Background()
	l := newLog(b, eventlog.Config{})
	w := b.ws("w")
	ep, _ := l.AcquireEpoch(ctx, w)
	for _, r := range []eventlog.Record{
		{Type: "", Body: json.RawMessage(`{}`)},
		{Type: "Bad-Type", Body: json.RawMessage(`{}`)},
		{Type: "x\nevent: y", Body: json.RawMessage(`{}`)},
		{Type: "chat.user", Body: json.RawMessage(`[1]`)},
		{Type: "chat.user", Body: json.RawMessage(`{"a":`)},
		{Type: "chat.user", Body: json.RawMessage(`{"id":"spoofed"}`)},
		{Type: "chat.user", Body: json.RawMessage(`null`)},
		{Type: "chat.user", Source: "1\n2"},
	} {
		if _, err := l.Append(ctx, w, "s", ep, rec("chat.user", `{}`), r); !errors.Is(err, eventlog.ErrInvalidRecord) {
			t.Errorf("Append(%+v) = %v, want ErrInvalidRecord", r, err)
		}
	}
	if head, _ := l.Head(ctx, w, "s"); head.Index != 0 {
		t.Fatalf("refused batches appended %d events", head.Index)
	}
}

func testReadResets(t *testing.T, b *backend) {
	ctx := context.Background()
	l := newLog(b, eventlog.Config{MaxLen: 10})
	w := b.ws("w")
	ep, _ := l.AcquireEpoch(ctx, w)
	for i := 0; i < 300; i++ {
		if _, err := l.Append(ctx, w, "s", ep, rec("chat.user", fmt.Sprintf(`{"n":%d}`, i))); err != nil {
			t.Fatal(err)
		}
	}
	head, _ := l.Head(ctx, w, "s")
	t.Run("ErrCursorExpired", func(t *testing.T) {
		_, _, err := l.Read(ctx, w, "s", eventlog.Cursor{Gen: head.Gen, Index: 5}, 10)
		var re *eventlog.ResetError
		if !errors.As(err, &re) || !errors.Is(err, eventlog.ErrCursorExpired) {
			t.Fatalf("err = %v, want a ResetError for ErrCursorExpired", err)
		}
		if re.Oldest.Index <= 6 || re.Continue.Index != re.Oldest.Index-1 || re.Oldest.Gen != head.Gen {
			t.Fatalf("reset = %+v", re)
		}
		evs, _, err := l.Read(ctx, w, "s", re.Continue, 1000)
		if err != nil || len(evs) == 0 || evs[0].Index != re.Oldest.Index || evs[len(evs)-1].Index != 300 {
			t.Fatalf("continuing: %v", err)
		}
	})
	t.Run("ErrCursorExpired from the start", func(t *testing.T) {
		_, _, err := l.Read(ctx, w, "s", eventlog.Cursor{}, 10)
		if !errors.Is(err, eventlog.ErrCursorExpired) {
			t.Fatalf("err = %v, want ErrCursorExpired", err)
		}
	})
	t.Run("ErrCursorUnknown for another generation", func(t *testing.T) {
		_, _, err := l.Read(ctx, w, "s", eventlog.Cursor{Gen: "abc", Index: 299}, 10)
		if !errors.Is(err, eventlog.ErrCursorUnknown) {
			t.Fatalf("err = %v, want ErrCursorUnknown", err)
		}
	})
	t.Run("ErrCursorUnknown past the head", func(t *testing.T) {
		_, _, err := l.Read(ctx, w, "s", eventlog.Cursor{Gen: head.Gen, Index: 301}, 10)
		if !errors.Is(err, eventlog.ErrCursorUnknown) {
			t.Fatalf("err = %v, want ErrCursorUnknown", err)
		}
	})
	t.Run("ErrCursorUnknown after Redis lost the stream", func(t *testing.T) {
		b.wipe(t) // everything is gone
		ep, err := l.AcquireEpoch(ctx, w)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Append(ctx, w, "s", ep, rec("chat.user", `{}`)); err != nil {
			t.Fatal(err)
		}
		_, _, err = l.Read(ctx, w, "s", head, 10)
		var re *eventlog.ResetError
		if !errors.As(err, &re) || !errors.Is(err, eventlog.ErrCursorUnknown) {
			t.Fatalf("old cursor on a new stream: err = %v, want ErrCursorUnknown", err)
		}
		if re.Oldest.Index != 1 || re.Oldest.Gen == head.Gen {
			t.Fatalf("reset = %+v", re)
		}
	})
}

func testConcurrentWritersSameEpochNoGaps(t *testing.T, b *backend) {
	ctx := context.Background()
	l := newLog(b, eventlog.Config{})
	w := b.ws("w")
	ep, _ := l.AcquireEpoch(ctx, w)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				if _, err := l.Append(ctx, w, "s", ep, rec("chat.user", `{}`), rec("chat.user", `{}`)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	var all []eventlog.Event
	after := eventlog.Cursor{}
	for {
		evs, _, err := l.Read(ctx, w, "s", after, 333)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			break
		}
		all = append(all, evs...)
		after, _ = eventlog.ParseCursor(evs[len(evs)-1].ID)
	}
	if len(all) != 800 {
		t.Fatalf("%d events, want 800", len(all))
	}
	for i, ev := range all {
		if ev.Index != uint64(i+1) {
			t.Fatalf("event %d has index %d", i, ev.Index)
		}
	}
}

type bellRecorder struct {
	mu         sync.Mutex
	events     []eventlog.Event
	subscribed []string
	signals    []string
	ch         chan struct{}
}

func (b *bellRecorder) Ring(ws string, ev eventlog.Event, gen string) {
	b.mu.Lock()
	b.events = append(b.events, ev)
	b.mu.Unlock()
	b.ch <- struct{}{}
}

func (b *bellRecorder) Signal(ws, msg string) {
	b.mu.Lock()
	b.signals = append(b.signals, msg)
	b.mu.Unlock()
	b.ch <- struct{}{}
}

func (b *bellRecorder) Subscribed(ws string) {
	b.mu.Lock()
	b.subscribed = append(b.subscribed, ws)
	b.mu.Unlock()
	b.ch <- struct{}{}
}

func testBell(t *testing.T, b *backend) {
	ctx, cancel := context.WithCancel(context.Background())
	rdb := b.rdb
	l := eventlog.New(rdb, eventlog.Config{})
	w := b.ws("w")
	rec0 := &bellRecorder{ch: make(chan struct{}, 100)}
	bell := eventlog.NewBell(rdb, rec0)
	done := make(chan error)
	go func() { done <- bell.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after cancel")
		}
	}()
	wait := func(what string) {
		t.Helper()
		select {
		case <-rec0.ch:
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s within 10s", what)
		}
	}
	if err := bell.Subscribe(ctx, w); err != nil {
		t.Fatal(err)
	}
	wait("subscription")
	ep, _ := l.AcquireEpoch(ctx, w)
	appended, err := l.Append(ctx, w, "s", ep, eventlog.Record{Type: "session.event", Body: json.RawMessage(`{"x":"a\nb"}`), Source: "42"})
	if err != nil {
		t.Fatal(err)
	}
	wait("ring")
	rec0.mu.Lock()
	got := rec0.events[0]
	rec0.mu.Unlock()
	wantJSON, _ := json.Marshal(appended[0])
	gotJSON, _ := json.Marshal(got)
	if string(wantJSON) != string(gotJSON) || got.Source != "42" || got.Epoch != ep {
		t.Fatalf("rang %s (src %q, epoch %d), appended %s", gotJSON, got.Source, got.Epoch, wantJSON)
	}

	// A restart of the Redis that serves the channel: the bell
	// resubscribes and says so.
	b.restart(t, eventlog.FenceKey(w))
	wait("resubscription")
	rec0.mu.Lock()
	n := len(rec0.subscribed)
	rec0.mu.Unlock()
	if n != 2 {
		t.Fatalf("Subscribed called %d times, want 2", n)
	}
	if _, err := l.Append(ctx, w, "s", ep, rec("chat.user", `{}`)); err != nil {
		t.Fatal(err)
	}
	wait("ring after restart")

	// Signals reach Signal, not Ring.
	if err := eventlog.Signal(ctx, rdb, w, "inbox"); err != nil {
		t.Fatal(err)
	}
	wait("signal")
	rec0.mu.Lock()
	sig := rec0.signals
	rec0.mu.Unlock()
	if len(sig) != 1 || sig[0] != "inbox" {
		t.Fatalf("signals = %q", sig)
	}

	// Two holders: the channel stays subscribed until both let go.
	if err := bell.Subscribe(ctx, w); err != nil {
		t.Fatal(err)
	}
	if err := bell.Unsubscribe(ctx, w); err != nil {
		t.Fatal(err)
	}
	if err := eventlog.Signal(ctx, rdb, w, "still"); err != nil {
		t.Fatal(err)
	}
	wait("signal while one holder is left")
	if err := bell.Unsubscribe(ctx, w); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if b.numSub(ctx, eventlog.NotifyChannel(w)) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("still subscribed after the last holder let go")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testAppendState(t *testing.T, b *backend) {
	ctx := context.Background()
	l := newLog(b, eventlog.Config{})
	w := b.ws("w")
	ep, _ := l.AcquireEpoch(ctx, w)
	if _, err := l.AppendState(ctx, w, "s", ep, map[string]string{"conn": "c1", "turn": `{"req":5}`},
		eventlog.Record{Type: "session.event", Body: json.RawMessage(`{}`), Source: "3"}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.AppendState(ctx, w, "s", ep, map[string]string{"turn": ""}); err != nil {
		t.Fatal(err)
	}
	st, err := l.State(ctx, w, "s")
	if err != nil {
		t.Fatal(err)
	}
	if st["conn"] != "c1" || st["turn"] != "" || st["src"] != "3" || st["n"] != "1" || st["gen"] == "" {
		t.Fatalf("state = %v", st)
	}
	t.Run("ErrStaleWriter leaves the state alone", func(t *testing.T) {
		if _, err := l.AcquireEpoch(ctx, w); err != nil {
			t.Fatal(err)
		}
		_, err := l.AppendState(ctx, w, "s", ep, map[string]string{"conn": "stale"})
		if !errors.Is(err, eventlog.ErrStaleWriter) {
			t.Fatalf("err = %v", err)
		}
		if st, _ := l.State(ctx, w, "s"); st["conn"] != "c1" {
			t.Fatalf("stale writer changed the state: %v", st)
		}
	})
	t.Run("ErrInvalidRecord for reserved fields", func(t *testing.T) {
		for _, k := range []string{"n", "gen", "src", "Bad", ""} {
			if _, err := l.AppendState(ctx, w, "s", ep+1, map[string]string{k: "x"}); !errors.Is(err, eventlog.ErrInvalidRecord) {
				t.Errorf("field %q: err = %v", k, err)
			}
		}
	})
}

func testAppendParts(t *testing.T, b *backend) {
	ctx := context.Background()
	l := newLog(b, eventlog.Config{})
	w := b.ws("parts")
	ep, _ := l.AcquireEpoch(ctx, w)
	if _, err := l.Append(ctx, w, "a", ep, rec("chat.user", `{"n":0}`)); err != nil {
		t.Fatal(err)
	}
	out, err := l.AppendParts(ctx, w, ep, []eventlog.Part{
		{Session: "a", Records: []eventlog.Record{rec("chat.user", `{"n":1}`), rec("chat.user", `{"n":2}`)}},
		{Session: "b", State: map[string]string{"turn": "x"}, Records: []eventlog.Record{{Type: "session.event", Body: json.RawMessage(`{}`), Source: "9"}}},
		{Session: "a", Records: []eventlog.Record{rec("chat.user", `{"n":3}`)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 3 || out[0][0].Index != 2 || out[0][1].Index != 3 || out[1][0].Index != 1 || out[2][0].Index != 4 {
		t.Fatalf("indices %+v", out)
	}
	sa, _, _ := l.Read(ctx, w, "a", eventlog.Cursor{}, 10)
	sb, _, _ := l.Read(ctx, w, "b", eventlog.Cursor{}, 10)
	if len(sa) != 4 || len(sb) != 1 || string(sa[3].Body) != `{"n":3}` {
		t.Fatalf("streams: a %d events, b %d", len(sa), len(sb))
	}
	if st, _ := l.State(ctx, w, "b"); st["turn"] != "x" || st["src"] != "9" {
		t.Fatalf("state of b: %v", st)
	}
	t.Run("ErrStaleWriter rejects every part", func(t *testing.T) {
		l.AcquireEpoch(ctx, w)
		_, err := l.AppendParts(ctx, w, ep, []eventlog.Part{{Session: "a", Records: []eventlog.Record{rec("chat.user", `{}`)}}, {Session: "c", Records: []eventlog.Record{rec("chat.user", `{}`)}}})
		if !errors.Is(err, eventlog.ErrStaleWriter) {
			t.Fatalf("err = %v", err)
		}
		if h, _ := l.Head(ctx, w, "a"); h.Index != 4 {
			t.Fatalf("a grew to %d", h.Index)
		}
		if h, _ := l.Head(ctx, w, "c"); h.Index != 0 {
			t.Fatal("c was written")
		}
	})
}

// Appends through the pipeline: many writers at once, every event lands
// once in order per session, and calls after the pipeline stopped still go
// out.
func TestAppendPipeline(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	l := eventlog.New(redistest.Start(t, redistest.Options{}).Client(t), eventlog.Config{})
	done := make(chan error, 1)
	go func() { done <- l.RunPipeline(ctx) }()
	ep, _ := l.AcquireEpoch(ctx, "pw")
	var wg sync.WaitGroup
	for g := 0; g < 40; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				if _, err := l.Append(ctx, "pw", fmt.Sprintf("s%d", g), ep, rec("chat.user", fmt.Sprintf(`{"n":%d}`, i))); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for g := 0; g < 40; g++ {
		evs, _, err := l.Read(ctx, "pw", fmt.Sprintf("s%d", g), eventlog.Cursor{}, 100)
		if err != nil || len(evs) != 50 {
			t.Fatalf("session %d: %d events, %v", g, len(evs), err)
		}
		for i, ev := range evs {
			if string(ev.Body) != fmt.Sprintf(`{"n":%d}`, i) {
				t.Fatalf("session %d event %d: %s", g, i, ev.Body)
			}
		}
	}
	// Many writers on one session: calls on one stream are held back to
	// later batches, none is lost or doubled.
	var wg2 sync.WaitGroup
	for g := 0; g < 10; g++ {
		wg2.Add(1)
		go func() {
			defer wg2.Done()
			for i := 0; i < 30; i++ {
				if _, err := l.Append(ctx, "pw", "hot", ep, rec("chat.user", `{}`)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg2.Wait()
	hot, _, err := l.Read(ctx, "pw", "hot", eventlog.Cursor{}, 1000)
	if err != nil || len(hot) != 300 || hot[299].Index != 300 {
		t.Fatalf("hot session: %d events, %v", len(hot), err)
	}
	cancel()
	<-done
	if _, err := l.Append(context.Background(), "pw", "after", ep, rec("chat.user", `{}`)); err != nil {
		t.Fatalf("append after the pipeline stopped: %v", err)
	}
}
