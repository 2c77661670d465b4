package acp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeServer is a scripted stand-in for Sandbox Agent's ACP routes, for the
// failures the real one does not produce on demand.
type fakeServer struct {
	t  testing.TB
	ts *httptest.Server

	mu        sync.Mutex
	events    []string // data of each message; its id is index+1
	changed   chan struct{}
	posts     []string
	auth      []string
	lastIDs   []string // Last-Event-ID of each GET
	streamsOn int      // GETs being served

	hangPosts   bool // POSTs never answer
	respond     bool // a request gets its response appended to the stream
	breakAfter  int  // when > 0, each GET ends after this many events
	silent      bool // GETs send headers and nothing else
	contentType string
	dropOnce    int // when > 0, the first GET skips the event with this id, as a lagging live stream
	evicted     int // the events with ids up to this are no longer replayed
}

func newFakeServer(t testing.TB) *fakeServer {
	f := &fakeServer{t: t, changed: make(chan struct{}), respond: true, contentType: "text/event-stream"}
	f.ts = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.ts.Close)
	return f
}

func (f *fakeServer) client(t testing.TB, cfg Config) *Client {
	cfg.BaseURL = f.ts.URL
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (f *fakeServer) push(data string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, data)
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeServer) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	f.mu.Unlock()
	switch r.Method {
	case http.MethodPost:
		var b strings.Builder
		var env Envelope
		json.NewDecoder(r.Body).Decode(&env)
		raw, _ := json.Marshal(env)
		b.Write(raw)
		f.mu.Lock()
		f.posts = append(f.posts, b.String())
		f.mu.Unlock()
		if env.Kind() == KindRequest && f.respond {
			resp, _ := NewResponse(env.ID, map[string]string{"echo": env.Method}, nil)
			f.push(string(resp))
		}
		if f.hangPosts {
			<-r.Context().Done()
			return
		}
		w.WriteHeader(http.StatusAccepted)
	case http.MethodGet:
		if r.URL.Path == "/v1/health" {
			w.Write([]byte(`{"status":"ok"}`))
			return
		}
		f.stream(w, r)
	}
}

func (f *fakeServer) stream(w http.ResponseWriter, r *http.Request) {
	next := 0
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		next, _ = strconv.Atoi(id)
	}
	f.mu.Lock()
	f.lastIDs = append(f.lastIDs, r.Header.Get("Last-Event-ID"))
	f.streamsOn++
	drop := f.dropOnce
	f.dropOnce = 0
	next = max(next, f.evicted)
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.streamsOn--
		f.mu.Unlock()
	}()
	w.Header().Set("Content-Type", f.contentType)
	w.WriteHeader(http.StatusOK)
	w.(http.Flusher).Flush()
	sent := 0
	for {
		f.mu.Lock()
		events, changed := f.events, f.changed
		f.mu.Unlock()
		if f.silent {
			events = nil
		}
		for ; next < len(events); next++ {
			if f.breakAfter > 0 && sent == f.breakAfter {
				return
			}
			if next+1 == drop {
				continue
			}
			fmt.Fprintf(w, "event: message\r\nid: %d\r\ndata: %s\r\n\r\n", next+1, events[next])
			w.(http.Flusher).Flush()
			sent++
		}
		if f.breakAfter > 0 && sent == f.breakAfter {
			return
		}
		select {
		case <-changed:
		case <-r.Context().Done():
			return
		}
	}
}

func (f *fakeServer) activeStreams() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.streamsOn
}

func fakeContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestCallPostNeverAnswers: Sandbox Agent may never answer a POST whose agent
// reply is late; Call takes the response from the stream anyway.
func TestCallPostNeverAnswers(t *testing.T) {
	f := newFakeServer(t)
	f.hangPosts = true
	ctx := fakeContext(t)
	conn, err := f.client(t, Config{}).Dial(ctx, ConnConfig{ServerID: "s"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	res, err := conn.Call(ctx, "ping", nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(res) != `{"echo":"ping"}` {
		t.Fatalf("result %s", res)
	}
}

func TestConnReconnects(t *testing.T) {
	f := newFakeServer(t)
	f.breakAfter = 2
	ctx := fakeContext(t)
	var mu sync.Mutex
	var ids []string
	conn, err := f.client(t, Config{}).Dial(ctx, ConnConfig{ServerID: "s", LastEventID: "", OnMessage: func(ev Event, _ Envelope) error {
		mu.Lock()
		ids = append(ids, ev.ID)
		mu.Unlock()
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i := range 7 {
		f.push(fmt.Sprintf(`{"jsonrpc":"2.0","method":"n","params":{"i":%d}}`, i))
	}
	if _, err := conn.Call(ctx, "last", nil); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(ids, ","); got != "1,2,3,4,5,6,7,8" {
		t.Fatalf("ids %s", got)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if got := strings.Join(f.lastIDs, ","); !strings.HasPrefix(got, ",2,4,6") {
		t.Fatalf("Last-Event-IDs sent %q", got)
	}
}

// TestConnLagged: a Conn whose live stream skipped messages resumes and
// delivers them all, in order.
func TestConnLagged(t *testing.T) {
	f := newFakeServer(t)
	f.dropOnce = 3
	ctx := fakeContext(t)
	var ids []string
	conn, err := f.client(t, Config{}).Dial(ctx, ConnConfig{ServerID: "s", OnMessage: func(ev Event, _ Envelope) error {
		ids = append(ids, ev.ID)
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for range 4 {
		f.push(`{"jsonrpc":"2.0","method":"n"}`)
	}
	if _, err := conn.Call(ctx, "last", nil); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(ids, ","); got != "1,2,3,4,5" {
		t.Fatalf("ids %s", got)
	}
}

// TestConnEventsLost: a Conn resuming after messages the server no longer
// holds stops with ErrEventsLost, after one more try.
func TestConnEventsLost(t *testing.T) {
	f := newFakeServer(t)
	f.evicted = 3
	for range 5 {
		f.push(`{"jsonrpc":"2.0","method":"n"}`)
	}
	conn, err := f.client(t, Config{}).Dial(fakeContext(t), ConnConfig{ServerID: "s", LastEventID: "1"})
	if err != nil {
		t.Fatal(err)
	}
	<-conn.Done()
	if !errors.Is(conn.Err(), ErrEventsLost) {
		t.Fatalf("Err() = %v", conn.Err())
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.lastIDs) != 2 {
		t.Fatalf("%d GETs, want 2", len(f.lastIDs))
	}
}

func TestStreamErrors(t *testing.T) {
	noop := func(Event) error { return nil }
	t.Run("Idle", func(t *testing.T) {
		f := newFakeServer(t)
		f.silent = true
		start := time.Now()
		err := f.client(t, Config{StreamIdleTimeout: 100 * time.Millisecond}).Stream(fakeContext(t), "s", "", noop)
		if !errors.Is(err, errStreamIdle) {
			t.Fatalf("got %v", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("took %v", d)
		}
	})
	t.Run("Cancelled", func(t *testing.T) {
		f := newFakeServer(t)
		ctx, cancel := context.WithCancel(fakeContext(t))
		done := make(chan error)
		go func() { done <- f.client(t, Config{}).Stream(ctx, "s", "", noop) }()
		waitUntil(t, "the stream to open", func() bool { return f.activeStreams() == 1 })
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v", err)
		}
		waitUntil(t, "the server to see the stream closed", func() bool { return f.activeStreams() == 0 })
	})
	t.Run("ErrMalformedEvent", func(t *testing.T) {
		f := newFakeServer(t)
		f.push(`{"ok":1}`)
		f.push(`not json`)
		var n int
		err := f.client(t, Config{}).Stream(fakeContext(t), "s", "", func(Event) error { n++; return nil })
		if !errors.Is(err, ErrMalformedEvent) || n != 1 {
			t.Fatalf("got %v after %d events", err, n)
		}
	})
	t.Run("ErrStreamLagged", func(t *testing.T) {
		f := newFakeServer(t)
		f.dropOnce = 2
		for range 3 {
			f.push(`{}`)
		}
		var ids []string
		err := f.client(t, Config{}).Stream(fakeContext(t), "s", "", func(ev Event) error { ids = append(ids, ev.ID); return nil })
		if !errors.Is(err, ErrStreamLagged) || strings.Join(ids, ",") != "1" {
			t.Fatalf("got %v after %v", err, ids)
		}
	})
	t.Run("ErrEventsLost", func(t *testing.T) {
		f := newFakeServer(t)
		f.evicted = 2
		for range 3 {
			f.push(`{}`)
		}
		for _, last := range []string{"", "1"} {
			err := f.client(t, Config{}).Stream(fakeContext(t), "s", last, noop)
			if !errors.Is(err, ErrEventsLost) {
				t.Fatalf("after %q: got %v", last, err)
			}
		}
	})
	t.Run("ContentType", func(t *testing.T) {
		f := newFakeServer(t)
		f.contentType = "application/json"
		err := f.client(t, Config{}).Stream(fakeContext(t), "s", "", noop)
		if err == nil || !strings.Contains(err.Error(), "content type") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("EndedByServer", func(t *testing.T) {
		f := newFakeServer(t)
		f.breakAfter = 1
		f.push(`{}`)
		var ids []string
		err := f.client(t, Config{}).Stream(fakeContext(t), "s", "", func(ev Event) error { ids = append(ids, ev.ID); return nil })
		if err == nil || errors.Is(err, ErrUnknownConnection) || len(ids) != 1 {
			t.Fatalf("got %v after %v", err, ids)
		}
	})
}

func TestBearerToken(t *testing.T) {
	f := newFakeServer(t)
	c := f.client(t, Config{Token: "tok"})
	ctx := fakeContext(t)
	msg, _ := NewNotification("n", nil)
	c.Post(ctx, "s", "mock", msg)
	c.Health(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range f.auth {
		if a != "Bearer tok" {
			t.Fatalf("Authorization %q", a)
		}
	}
	if len(f.auth) != 2 {
		t.Fatalf("%d requests", len(f.auth))
	}
}

// TestNoGoroutineLeak runs Conns and Streams to their end and checks that the
// goroutines they started are gone.
func TestNoGoroutineLeak(t *testing.T) {
	f := newFakeServer(t)
	client := f.client(t, Config{})
	before := runtime.NumGoroutine()
	for range 5 {
		ctx, cancel := context.WithCancel(context.Background())
		conn, err := client.Dial(ctx, ConnConfig{ServerID: "s"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Call(ctx, "x", nil); err != nil {
			t.Fatal(err)
		}
		conn.Close()
		go func() { time.Sleep(10 * time.Millisecond); cancel() }()
		client.Stream(ctx, "s", "", func(Event) error { return nil })
	}
	waitUntil(t, "the streams to close", func() bool { return f.activeStreams() == 0 })
	client.http.CloseIdleConnections()
	waitUntil(t, fmt.Sprintf("goroutines back to %d", before), func() bool { return runtime.NumGoroutine() <= before })
}

func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestEnvelopeKind(t *testing.T) {
	tests := []struct {
		in   string
		want Kind
	}{
		{`{"jsonrpc":"2.0","id":1,"method":"m","params":{}}`, KindRequest},
		{`{"jsonrpc":"2.0","id":"a","method":"m"}`, KindRequest},
		{`{"jsonrpc":"2.0","method":"m"}`, KindNotification},
		{`{"jsonrpc":"2.0","id":1,"result":null}`, KindResponse},
		{`{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}`, KindResponse},
		{`{"jsonrpc":"2.0","id":1}`, KindInvalid},
		{`{}`, KindInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.want.String(), func(t *testing.T) {
			env, err := ParseEnvelope([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if env.Kind() != tt.want {
				t.Fatalf("%s: %v, want %v", tt.in, env.Kind(), tt.want)
			}
			// Round trip keeps the raw id.
			b, _ := json.Marshal(env)
			env2, _ := ParseEnvelope(b)
			if string(env2.ID) != string(env.ID) || env2.Kind() != env.Kind() {
				t.Fatalf("round trip %s -> %s", tt.in, b)
			}
		})
	}
	if _, err := ParseEnvelope([]byte(`[1]`)); err == nil {
		t.Fatal("an array parsed as an envelope")
	}
	if _, err := NewRequest(nil, "m", nil); err == nil {
		t.Fatal("a null request id was accepted")
	}
}
