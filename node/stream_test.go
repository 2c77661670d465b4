package node_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tandem-dev/tandem/eventlog"
	"github.com/tandem-dev/tandem/fanout"
	"github.com/tandem-dev/tandem/internal/nodetest"
	"github.com/tandem-dev/tandem/internal/redistest"
	"github.com/tandem-dev/tandem/internal/ssetest"
	"github.com/tandem-dev/tandem/node"
	"github.com/tandem-dev/tandem/streamclient"
)

func streamURL(n *nodetest.Node, ws, sid string) string {
	return n.URL + "/v1/workspaces/" + ws + "/sessions/" + sid + "/events/stream"
}

// Three clients start at the start, the middle and the latest event while
// 5,000 more are appended in bursts; one of them drops its connection every
// 500 events and resumes with Last-Event-ID. Each receives exactly the
// events after its cursor, in order, once.
func TestStreamClientsAtCursorsThroughBurstsAndReconnects(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	n := nodetest.Start(t, rs.URL(), nil)
	l := eventlog.New(rs.Client(t), eventlog.Config{})
	ctx := context.Background()
	ep := holdWorkspace(t, l, "w", "s")
	pre := appendN(t, l, "w", "s", ep, 0, 1000, 40)
	const total = 6000
	url := streamURL(n, "w", "s")
	deadline := time.Now().Add(90 * time.Second)

	var wg sync.WaitGroup
	results := make([][]ssetest.Event, 3)

	// A: from the start, with r3labs's client through streamclient.
	wg.Add(1)
	go func() {
		defer wg.Done()
		cctx, cancel := context.WithDeadline(ctx, deadline)
		defer cancel()
		err := streamclient.Follow(cctx, streamclient.Config{URL: url}, func(ev streamclient.Event) error {
			if ev.Type == "presence" {
				return nil
			}
			results[0] = append(results[0], ssetest.Event{ID: ev.ID, HasID: ev.ID != "", Type: ev.Type, Data: string(ev.Data)})
			if len(results[0]) == total {
				return io.EOF
			}
			return nil
		})
		if !errors.Is(err, io.EOF) {
			t.Errorf("client A: %v", err)
		}
	}()
	// B: from the middle, by ?cursor=.
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := ssetest.Dial(ctx, url+"?cursor="+pre[499].ID, "", nil)
		if err != nil {
			t.Errorf("client B: %v", err)
			return
		}
		defer c.Close()
		for len(results[1]) < total-500 {
			ev, err := c.Next()
			if err != nil {
				t.Errorf("client B: %v", err)
				return
			}
			if ev.Type != "" && ev.Type != "presence" {
				results[1] = append(results[1], ev)
			}
		}
	}()
	// C: from the latest, by Last-Event-ID, dropping every 500 events.
	wg.Add(1)
	go func() {
		defer wg.Done()
		cursor := pre[999].ID
		for len(results[2]) < total-1000 && time.Now().Before(deadline) {
			c, err := ssetest.Dial(ctx, url, cursor, nil)
			if err != nil {
				t.Errorf("client C: %v", err)
				return
			}
			for k := 0; k < 500 && len(results[2]) < total-1000; {
				ev, err := c.Next()
				if err != nil {
					t.Errorf("client C: %v", err)
					c.Close()
					return
				}
				if ev.Type == "" || ev.Type == "presence" {
					continue
				}
				results[2] = append(results[2], ev)
				cursor = ev.ID
				k++
			}
			c.Close()
		}
	}()

	// 5,000 events in bursts of 1 to 100, with pauses.
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 1000; i < total; {
		k := min(1+rng.IntN(100), total-i)
		appendN(t, l, "w", "s", ep, i, k, 40)
		i += k
		time.Sleep(time.Duration(rng.IntN(3)) * time.Millisecond)
	}
	wg.Wait()

	want := all(t, l, "w", "s")
	if len(want) != total {
		t.Fatalf("stream holds %d events", len(want))
	}
	checkReceived(t, "A (start)", results[0], want)
	checkReceived(t, "B (middle)", results[1], want[500:])
	checkReceived(t, "C (latest, reconnecting)", results[2], want[1000:])
}

// Two nodes on one Redis: a client of node B sees the events appended
// through node A's Redis client with the same order and cursors as a client
// of node A.
func TestStreamTwoNodesSameOrderAndCursors(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	a := nodetest.Start(t, rs.URL(), nil)
	b := nodetest.Start(t, rs.URL(), nil)
	l := eventlog.New(rs.Client(t), eventlog.Config{})
	ctx := context.Background()
	ep := holdWorkspace(t, l, "w2", "s")
	ca, err := ssetest.Dial(ctx, streamURL(a, "w2", "s"), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	cb, err := ssetest.Dial(ctx, streamURL(b, "w2", "s"), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()
	var evs []eventlog.Event
	for i := 0; i < 1000; i += 10 {
		evs = append(evs, appendN(t, l, "w2", "s", ep, i, 10, 10)...)
	}
	deadline := time.Now().Add(30 * time.Second)
	var ga, gb []ssetest.Event
	if err := collect(ca, evs[len(evs)-1].ID, deadline, &ga); err != nil {
		t.Fatalf("node A client: %v", err)
	}
	if err := collect(cb, evs[len(evs)-1].ID, deadline, &gb); err != nil {
		t.Fatalf("node B client: %v", err)
	}
	checkReceived(t, "client of A", ga, evs)
	checkReceived(t, "client of B", gb, evs)
}

// A client reading at about 1 KB/s does not slow a fast client, the node's
// memory stays bounded while 20 MB go by, and the slow client still
// receives everything in order once it reads again.
func TestStreamSlowClientDoesNotSlowFastOne(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	n := nodetest.Start(t, rs.URL(), nil)
	l := eventlog.New(rs.Client(t), eventlog.Config{})
	ctx := context.Background()
	ep := holdWorkspace(t, l, "w3", "s")
	url := streamURL(n, "w3", "s")

	slow := dialSlow(t, n.Addr, "/v1/workspaces/w3/sessions/s/events/stream")
	fast, err := ssetest.Dial(ctx, url, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Close()

	// The slow client reads 1 KB a second until told to speed up.
	var slowMu sync.Mutex
	slowRead := 0
	speedUp := make(chan struct{})
	slowDone := make(chan []digest, 1)
	go func() {
		r := &throttled{c: slow, speedUp: speedUp, n: &slowRead, mu: &slowMu}
		c := ssetest.FromReader(r)
		var got []digest
		for {
			ev, err := c.Next()
			if err != nil {
				slowDone <- got
				return
			}
			if ev.Type != "" && ev.Type != "presence" {
				got = append(got, digestSSE(ev))
				if len(got) == 5000 {
					slowDone <- got
					return
				}
			}
		}
	}()

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	var want []digest
	for i := 0; i < 5000; i += 50 {
		for _, ev := range appendN(t, l, "w3", "s", ep, i, 50, 4000) {
			want = append(want, digestOf(ev))
		}
	}
	appended := time.Since(start)
	var got []digest
	for len(got) < len(want) {
		ev, err := fast.Next()
		if err != nil {
			t.Fatalf("fast client: %v", err)
		}
		if ev.Type != "" && ev.Type != "presence" {
			got = append(got, digestSSE(ev))
		}
	}
	fastDone := time.Since(start)
	checkDigests(t, "fast client", got, want)
	slowMu.Lock()
	slowBytes := slowRead
	slowMu.Unlock()
	t.Logf("appended 20 MB in %v; the fast client had it all after %v; the slow one had read %d bytes", appended, fastDone, slowBytes)
	if slowBytes > 4<<20 {
		t.Fatalf("the slow client read %d bytes: it was not slow, the test proves nothing", slowBytes)
	}

	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	growth := int64(after.HeapInuse) - int64(before.HeapInuse)
	t.Logf("heap in use grew by %d KiB", growth>>10)
	if growth > 8<<20 {
		t.Errorf("heap grew by %d MiB while 20 MB streamed past a stalled client: memory is not bounded", growth>>20)
	}

	close(speedUp)
	select {
	case sg := <-slowDone:
		checkDigests(t, "slow client", sg, want)
	case <-time.After(60 * time.Second):
		t.Fatal("the slow client did not catch up within 60s")
	}
}

// dialSlow opens a stream over a socket with a small receive buffer, so
// that not reading fills it quickly.
func dialSlow(t *testing.T, addr, path string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n", path, addr)
	return c
}

// throttled reads 1 KB a second until speedUp is closed.
type throttled struct {
	c       net.Conn
	speedUp chan struct{}
	mu      *sync.Mutex
	n       *int
}

func (r *throttled) Read(p []byte) (int, error) {
	select {
	case <-r.speedUp:
	default:
		if len(p) > 1024 {
			p = p[:1024]
		}
		select {
		case <-r.speedUp:
		case <-time.After(time.Second):
		}
	}
	k, err := r.c.Read(p)
	r.mu.Lock()
	*r.n += k
	r.mu.Unlock()
	return k, err
}

// Redis restarted (appendonly) in the middle of a stream: clients get
// every event, none twice.
func TestStreamSurvivesRedisRestart(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{AppendOnly: true})
	n := nodetest.Start(t, rs.URL(), nil)
	rdb := rs.Client(t)
	l := eventlog.New(rdb, eventlog.Config{})
	ctx := context.Background()
	ep := holdWorkspace(t, l, "w4", "s")
	url := streamURL(n, "w4", "s")

	// Appends one event at a time; after an error it finds out whether
	// the event landed before it tries again, as a careful writer does.
	total := 2000
	appended := 0
	appendOne := func(i int) {
		for attempt := 0; ; attempt++ {
			_, err := l.Append(ctx, "w4", "s", ep, eventlog.Record{Type: "chat.user", Body: body(i, 10)})
			if err == nil {
				return
			}
			if attempt > 200 {
				t.Fatalf("append %d: %v", i, err)
			}
			time.Sleep(50 * time.Millisecond)
			if head, err := l.Head(ctx, "w4", "s"); err == nil && head.Index == uint64(i+1) {
				return // it landed; the reply was lost
			}
		}
	}
	var mu sync.Mutex
	got := map[string][]ssetest.Event{}
	var wg sync.WaitGroup
	done := make(chan struct{})
	for _, name := range []string{"start", "resumer"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cursor := ""
			for {
				c, err := ssetest.Dial(ctx, url, cursor, nil)
				if err != nil {
					select {
					case <-done:
						return
					case <-time.After(100 * time.Millisecond):
						continue
					}
				}
				go func() { <-done; c.Close() }()
				for {
					ev, err := c.Next()
					if err != nil {
						break
					}
					if ev.Type == "" || ev.Type == "presence" {
						continue
					}
					mu.Lock()
					got[name] = append(got[name], ev)
					k := len(got[name])
					mu.Unlock()
					cursor = ev.ID
					if name == "resumer" && k%300 == 0 {
						break // drop and resume across the restart too
					}
				}
				c.Close()
				select {
				case <-done:
					return
				default:
				}
			}
		}()
	}
	for i := 0; i < total; i++ {
		if i == total/2 {
			rs.Restart(t)
		}
		appendOne(i)
		appended++
	}
	want := all(t, l, "w4", "s")
	if len(want) != total {
		t.Fatalf("stream holds %d events after %d appends", len(want), total)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		ok := len(got["start"]) >= total && len(got["resumer"]) >= total
		mu.Unlock()
		if ok {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	close(done)
	wg.Wait()
	checkReceived(t, "client from the start", got["start"], want)
	checkReceived(t, "resuming client", got["resumer"], want)
}

// A cursor whose events were trimmed gets a reset event, then the stream
// from the oldest retained event; a cursor of a stream Redis lost gets a
// reset with cursor_unknown, then the new stream.
func TestStreamResets(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	n := nodetest.Start(t, rs.URL(), nil)
	l := eventlog.New(rs.Client(t), eventlog.Config{MaxLen: 50})
	ctx := context.Background()
	ep := holdWorkspace(t, l, "w5", "s")
	evs := appendN(t, l, "w5", "s", ep, 0, 500, 5)
	kept := all(t, l, "w5", "s")

	t.Run("cursor_expired", func(t *testing.T) {
		c, err := ssetest.Dial(ctx, streamURL(n, "w5", "s"), evs[10].ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		first := nextEvent(t, c)
		if first.Type != "reset" || first.HasID {
			t.Fatalf("first event = %+v, want a reset without id", first)
		}
		var r struct{ Reason, Oldest string }
		json.Unmarshal([]byte(first.Data), &r)
		if r.Reason != "cursor_expired" || r.Oldest != kept[0].ID {
			t.Fatalf("reset = %+v, want cursor_expired from %s", r, kept[0].ID)
		}
		var got []ssetest.Event
		if err := collect(c, kept[len(kept)-1].ID, time.Now().Add(10*time.Second), &got); err != nil {
			t.Fatal(err)
		}
		checkReceived(t, "after reset", got, kept)
	})

	t.Run("cursor_unknown", func(t *testing.T) {
		c, err := ssetest.Dial(ctx, streamURL(n, "w5", "s"), kept[len(kept)-1].ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// Redis loses everything; a new writer starts the stream again.
		rs.Restart(t)
		ep := holdWorkspace(t, l, "w5", "s")
		fresh := appendN(t, l, "w5", "s", ep, 0, 3, 5)
		first := nextEvent(t, c)
		if first.Type != "reset" {
			// The node may have closed the connection while Redis was
			// away; the client resumes with its Last-Event-ID.
			t.Fatalf("first event = %+v, want reset", first)
		}
		var r struct{ Reason, Oldest string }
		json.Unmarshal([]byte(first.Data), &r)
		if r.Reason != "cursor_unknown" || r.Oldest != fresh[0].ID {
			t.Fatalf("reset = %+v, want cursor_unknown from %s", r, fresh[0].ID)
		}
		var got []ssetest.Event
		if err := collect(c, fresh[2].ID, time.Now().Add(10*time.Second), &got); err != nil {
			t.Fatal(err)
		}
		checkReceived(t, "new stream", got, fresh)
	})
}

func nextEvent(t *testing.T, c *ssetest.Conn) ssetest.Event {
	t.Helper()
	for {
		ev, err := c.Next()
		if err != nil {
			t.Fatalf("next event: %v", err)
		}
		if ev.Type != "" && ev.Type != "presence" {
			return ev
		}
	}
}

// Shutdown ends open streams promptly, so that clients reconnect to
// another node.
func TestShutdownEndsStreamsPromptly(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	n := nodetest.Start(t, rs.URL(), func(c *node.Config) { c.Fanout = fanout.Config{} })
	ctx := context.Background()
	holdWorkspace(t, eventlog.New(rs.Client(t), eventlog.Config{}), "w6", "s0", "s1", "s2")
	var conns []*ssetest.Conn
	for i := 0; i < 20; i++ {
		c, err := ssetest.Dial(ctx, streamURL(n, "w6", fmt.Sprintf("s%d", i%3)), "", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	time.Sleep(200 * time.Millisecond) // let them attach
	start := time.Now()
	n.Stop(t)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("shutdown took %v with open streams", d)
	}
	for i, c := range conns {
		done := make(chan error, 1)
		go func() {
			for {
				if _, err := c.Next(); err != nil {
					done <- err
					return
				}
			}
		}()
		select {
		case err := <-done:
			if !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "reset") && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("stream %d ended with %v", i, err)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("stream %d still open after shutdown", i)
		}
	}
	// And the port is closed.
	if _, err := http.Get(n.URL + "/healthz"); err == nil {
		t.Error("node still answers after shutdown")
	}
}

// A client that connects to a workspace its node already owns (so the
// doorbell channel is already subscribed, by the owner) is served live at
// once: the feed must not wait for the periodic audit to become ready.
func TestStreamLiveWhenNodeOwnsWorkspace(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	n := nodetest.Start(t, rs.URL(), func(c *node.Config) { c.BenchRoutes = true })
	api(t, "PUT", n.URL+"/v1/workspaces/owned", nil, nil)
	bench := func(count int) {
		t.Helper()
		if code := api(t, "POST", n.URL+"/v1/workspaces/owned/sessions/default/bench/append", map[string]int{"count": count, "batch": 1, "size": 10}, nil); code != 200 {
			t.Fatalf("bench append: %d", code)
		}
	}
	bench(1) // the node owns the workspace, and listens to its doorbell
	c, err := ssetest.Dial(context.Background(), n.URL+"/v1/workspaces/owned/sessions/default/events/stream", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	nextEvent(t, c) // the first event, from history
	for i := 0; i < 5; i++ {
		start := time.Now()
		bench(1)
		nextEvent(t, c)
		if d := time.Since(start); d > 500*time.Millisecond {
			t.Fatalf("event %d took %v to arrive: the feed is not live", i, d)
		}
	}
}
