package acp_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-dev/tandem/acp"
	"github.com/tandem-dev/tandem/internal/sandboxtest"
	"github.com/tandem-dev/tandem/internal/sandboxtest/mockagent"
)

var connSeq atomic.Int64

// serverID is a connection id unique to this test binary's run.
func serverID(t testing.TB) string {
	return fmt.Sprintf("t%d-%d", time.Now().UnixNano()%1e9, connSeq.Add(1))
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newClient(t testing.TB, srv *sandboxtest.Server) *acp.Client {
	t.Helper()
	c, err := acp.New(acp.Config{BaseURL: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// recorder keeps every message a Conn hands to OnMessage.
type recorder struct {
	mu     sync.Mutex
	events []acp.Event
	envs   []acp.Envelope
	notify chan struct{}
}

func newRecorder() *recorder { return &recorder{notify: make(chan struct{}, 1)} }

func (r *recorder) OnMessage(ev acp.Event, env acp.Envelope) error {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.envs = append(r.envs, env)
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
	return nil
}

func (r *recorder) snapshot() ([]acp.Event, []acp.Envelope) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]acp.Event(nil), r.events...), append([]acp.Envelope(nil), r.envs...)
}

// waitFor waits until cond holds on the recorded envelopes.
func (r *recorder) waitFor(t testing.TB, what string, cond func([]acp.Envelope) bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if _, envs := r.snapshot(); cond(envs) {
			return
		}
		select {
		case <-r.notify:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// dialNew creates a connection with the mock agent and initializes it.
func dialNew(t testing.TB, ctx context.Context, c *acp.Client, rec *recorder) (*acp.Conn, string) {
	t.Helper()
	cfg := acp.ConnConfig{ServerID: serverID(t), Agent: "mock"}
	if rec != nil {
		cfg.OnMessage = rec.OnMessage
	}
	conn, err := c.Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := conn.Call(ctx, acp.MethodInitialize, acp.InitializeParams{ProtocolVersion: acp.ProtocolVersion}); err != nil {
		t.Fatalf("initialize: %v", err)
	}
	res, err := conn.Call(ctx, acp.MethodSessionNew, acp.NewSessionParams{Cwd: "/tmp"})
	if err != nil {
		t.Fatalf("session/new: %v", err)
	}
	var ns acp.NewSessionResult
	if err := json.Unmarshal(res, &ns); err != nil || ns.SessionID == "" {
		t.Fatalf("session/new result %s", res)
	}
	return conn, ns.SessionID
}

func prompt(sessionID, text string) acp.PromptParams {
	return acp.PromptParams{SessionID: sessionID, Prompt: []acp.ContentBlock{acp.TextBlock(text)}}
}

func stopReason(t testing.TB, res json.RawMessage) string {
	t.Helper()
	var pr acp.PromptResult
	if err := json.Unmarshal(res, &pr); err != nil {
		t.Fatalf("prompt result %s: %v", res, err)
	}
	return pr.StopReason
}

// chunks returns the texts of the agent_message_chunk updates of a session.
func chunks(t testing.TB, envs []acp.Envelope, sessionID string) []string {
	t.Helper()
	var out []string
	for _, env := range envs {
		if env.Method != acp.MethodSessionUpdate {
			continue
		}
		var n acp.SessionNotification
		if err := json.Unmarshal(env.Params, &n); err != nil {
			t.Fatal(err)
		}
		var u struct {
			SessionUpdate string           `json:"sessionUpdate"`
			Content       acp.ContentBlock `json:"content"`
		}
		if json.Unmarshal(n.Update, &u) == nil && n.SessionID == sessionID && u.SessionUpdate == "agent_message_chunk" {
			out = append(out, u.Content.Text)
		}
	}
	return out
}

func checkConsecutive(t testing.TB, events []acp.Event, after int) {
	t.Helper()
	for i, ev := range events {
		if ev.ID != strconv.Itoa(after+i+1) {
			t.Fatalf("event %d has id %q, want %d", i, ev.ID, after+i+1)
		}
	}
}

func TestConnPrompt(t *testing.T) {
	srv := sandboxtest.Start(t, sandboxtest.Options{})
	ctx := testContext(t)
	rec := newRecorder()
	conn, sid := dialNew(t, ctx, newClient(t, srv), rec)

	text := "[chunks=6][delay=5ms] hello tandem"
	res, err := conn.Call(ctx, acp.MethodSessionPrompt, prompt(sid, text))
	if err != nil {
		t.Fatal(err)
	}
	if got := stopReason(t, res); got != acp.StopEndTurn {
		t.Fatalf("stopReason %q", got)
	}
	events, envs := rec.snapshot()
	// OnMessage saw the response before Call returned, and it was the last
	// message of the turn.
	if last := envs[len(envs)-1]; last.Kind() != acp.KindResponse || string(last.Result) != string(res) {
		t.Fatalf("last message seen %+v, want the prompt response", last)
	}
	got := chunks(t, envs, sid)
	if want := mockagent.Chunks(text); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("chunks %q, want %q", got, want)
	}
	if strings.Join(got, "") != mockagent.Reply(text) {
		t.Fatalf("reply %q", strings.Join(got, ""))
	}
	checkConsecutive(t, events, 0)
	if conn.LastEventID() != events[len(events)-1].ID {
		t.Fatalf("LastEventID %q, want %q", conn.LastEventID(), events[len(events)-1].ID)
	}
	// Responses to initialize, session/new and the prompt all came on the stream.
	var responses int
	for _, env := range envs {
		if env.Kind() == acp.KindResponse {
			responses++
		}
	}
	if responses != 3 {
		t.Fatalf("%d responses on the stream, want 3", responses)
	}
}

func TestConnErrors(t *testing.T) {
	srv := sandboxtest.Start(t, sandboxtest.Options{})
	ctx := testContext(t)
	conn, _ := dialNew(t, ctx, newClient(t, srv), nil)

	t.Run("RPCError", func(t *testing.T) {
		_, err := conn.Call(ctx, "session/load", map[string]any{})
		var rpcErr *acp.RPCError
		if !errors.As(err, &rpcErr) || rpcErr.Code != -32601 {
			t.Fatalf("got %v, want method not found", err)
		}
	})
	t.Run("OnSendError", func(t *testing.T) {
		errStale := errors.New("stale writer")
		c2, err := newClient(t, srv).Dial(ctx, acp.ConnConfig{ServerID: serverID(t), Agent: "mock",
			OnSend: func(context.Context, []byte) error { return errStale }})
		if err != nil {
			t.Fatal(err)
		}
		defer c2.Close()
		if _, err := c2.Call(ctx, acp.MethodInitialize, acp.InitializeParams{ProtocolVersion: 1}); !errors.Is(err, errStale) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("ErrUnsupportedAgent", func(t *testing.T) {
		c2, err := newClient(t, srv).Dial(ctx, acp.ConnConfig{ServerID: serverID(t), Agent: "nope"})
		if err != nil {
			t.Fatal(err)
		}
		defer c2.Close()
		_, err = c2.Call(ctx, acp.MethodInitialize, acp.InitializeParams{ProtocolVersion: 1})
		var se *acp.StatusError
		if !errors.As(err, &se) || se.Status != 400 {
			t.Fatalf("got %v, want a 400", err)
		}
	})
	t.Run("ErrClosed", func(t *testing.T) {
		c2, _ := dialNew(t, ctx, newClient(t, srv), nil)
		c2.Close()
		if _, err := c2.Call(ctx, acp.MethodInitialize, nil); !errors.Is(err, acp.ErrClosed) {
			t.Fatalf("got %v", err)
		}
		if !errors.Is(c2.Err(), acp.ErrClosed) {
			t.Fatalf("Err() = %v", c2.Err())
		}
	})
}

// TestAbandonedPost checks that a response is matched by id from the stream
// when the POST that carried the request was given up.
func TestAbandonedPost(t *testing.T) {
	srv := sandboxtest.Start(t, sandboxtest.Options{})
	ctx := testContext(t)
	client := newClient(t, srv)

	t.Run("Client", func(t *testing.T) {
		conn, sid := dialNew(t, ctx, client, nil)
		conn.Close() // detach only: post to its connection directly
		id := conn.ServerID()
		msg, _ := acp.NewRequest("abandoned-1", acp.MethodSessionPrompt, prompt(sid, "[chunks=3][delay=100ms] late"))
		pctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
		_, _, err := client.Post(pctx, id, "", msg)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("post: %v, want a deadline", err)
		}
		sctx, scancel := context.WithCancel(ctx)
		defer scancel()
		var got []string
		err = client.Stream(sctx, id, "", func(ev acp.Event) error {
			env, _ := acp.ParseEnvelope(ev.Data)
			got = append(got, chunks(t, []acp.Envelope{env}, sid)...)
			if env.Kind() == acp.KindResponse && string(env.ID) == `"abandoned-1"` {
				if stopReason(t, env.Result) != acp.StopEndTurn {
					t.Errorf("response %s", ev.Data)
				}
				scancel()
			}
			return nil
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("stream: %v", err)
		}
		if strings.Join(got, "") != mockagent.Reply("late") {
			t.Fatalf("chunks %q", got)
		}
	})

	t.Run("Conn", func(t *testing.T) {
		rec := newRecorder()
		conn, sid := dialNew(t, ctx, client, rec)
		cctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
		_, err := conn.Call(cctx, acp.MethodSessionPrompt, prompt(sid, "[chunks=3][delay=100ms] late"))
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("call: %v", err)
		}
		// The turn goes on; its response reaches OnMessage.
		rec.waitFor(t, "the prompt response", func(envs []acp.Envelope) bool {
			last := envs[len(envs)-1]
			return last.Kind() == acp.KindResponse && strings.Contains(string(last.Result), acp.StopEndTurn)
		})
		// The Conn still works.
		res, err := conn.Call(ctx, acp.MethodSessionPrompt, prompt(sid, "[delay=0ms]again"))
		if err != nil || stopReason(t, res) != acp.StopEndTurn {
			t.Fatalf("next prompt: %s, %v", res, err)
		}
	})
}

func TestCancel(t *testing.T) {
	srv := sandboxtest.Start(t, sandboxtest.Options{})
	ctx := testContext(t)
	rec := newRecorder()
	conn, sid := dialNew(t, ctx, newClient(t, srv), rec)

	type result struct {
		res json.RawMessage
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := conn.Call(ctx, acp.MethodSessionPrompt, prompt(sid, "[chunks=60][delay=20ms] a long answer that we are going to cancel"))
		done <- result{res, err}
	}()
	rec.waitFor(t, "a first chunk", func(envs []acp.Envelope) bool { return len(chunks(t, envs, sid)) > 0 })
	start := time.Now()
	if err := conn.Notify(ctx, acp.MethodSessionCancel, acp.CancelParams{SessionID: sid}); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if got := stopReason(t, r.res); got != acp.StopCancelled {
		t.Fatalf("stopReason %q, want cancelled", got)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("cancel took %v", d)
	}
	_, envs := rec.snapshot()
	if n := len(chunks(t, envs, sid)); n >= 60 {
		t.Fatalf("%d chunks despite the cancel", n)
	}
}

// TestStreamResume stops reading the stream at every message in turn and
// resumes with Last-Event-ID: together the pieces are the whole stream.
func TestStreamResume(t *testing.T) {
	srv := sandboxtest.Start(t, sandboxtest.Options{})
	ctx := testContext(t)
	client := newClient(t, srv)
	rec := newRecorder()
	conn, sid := dialNew(t, ctx, client, rec)
	if _, err := conn.Call(ctx, acp.MethodSessionPrompt, prompt(sid, "[tool][chunks=7][delay=0ms] resume me")); err != nil {
		t.Fatal(err)
	}
	all, _ := rec.snapshot()

	errStop := errors.New("stop")
	var got []acp.Event
	last := ""
	for range len(all) {
		err := client.Stream(ctx, conn.ServerID(), last, func(ev acp.Event) error {
			got = append(got, ev)
			last = ev.ID
			return errStop // one message per connection
		})
		if !errors.Is(err, errStop) {
			t.Fatalf("stream after %q: %v", last, err)
		}
	}
	if len(got) != len(all) {
		t.Fatalf("%d events, want %d", len(got), len(all))
	}
	for i := range all {
		if got[i].ID != all[i].ID || string(got[i].Data) != string(all[i].Data) {
			t.Fatalf("event %d: %s %s, want %s %s", i, got[i].ID, got[i].Data, all[i].ID, all[i].Data)
		}
	}

	t.Run("LiveAfterReplay", func(t *testing.T) {
		// A stream resumed at the end gets the next turn live, nothing twice.
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		var live []acp.Event
		streamDone := make(chan error, 1)
		go func() {
			streamDone <- client.Stream(sctx, conn.ServerID(), last, func(ev acp.Event) error {
				live = append(live, ev)
				if env, _ := acp.ParseEnvelope(ev.Data); env.Kind() == acp.KindResponse {
					cancel()
				}
				return nil
			})
		}()
		if _, err := conn.Call(ctx, acp.MethodSessionPrompt, prompt(sid, "[delay=1ms] more")); err != nil {
			t.Fatal(err)
		}
		if err := <-streamDone; !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
		n, _ := strconv.Atoi(last)
		checkConsecutive(t, live, n)
		if len(live) != mockagent.DefaultChunks+1 {
			t.Fatalf("%d live events, want %d", len(live), mockagent.DefaultChunks+1)
		}
	})

	t.Run("ConnResumes", func(t *testing.T) {
		// A second Conn attached after message 3 sees exactly the rest.
		rec2 := newRecorder()
		c2, err := client.Dial(ctx, acp.ConnConfig{ServerID: conn.ServerID(), LastEventID: "3", OnMessage: rec2.OnMessage, FirstID: 1000})
		if err != nil {
			t.Fatal(err)
		}
		defer c2.Close()
		want, _ := rec.snapshot()
		rec2.waitFor(t, "the replay", func(envs []acp.Envelope) bool { return len(envs) >= len(want)-3 })
		got, _ := rec2.snapshot()
		checkConsecutive(t, got, 3)
		if len(got) != len(want)-3 {
			t.Fatalf("%d events, want %d", len(got), len(want)-3)
		}
		// And it can drive the session: its request ids do not clash.
		res, err := c2.Call(ctx, acp.MethodSessionPrompt, prompt(sid, "[delay=0ms] from the second"))
		if err != nil || stopReason(t, res) != acp.StopEndTurn {
			t.Fatalf("prompt: %s %v", res, err)
		}
	})
}

func TestUnknownConnection(t *testing.T) {
	srv := sandboxtest.Start(t, sandboxtest.Options{})
	ctx := testContext(t)
	client := newClient(t, srv)
	noop := func(acp.Event) error { return nil }

	t.Run("NeverCreated", func(t *testing.T) {
		if err := client.Stream(ctx, "never-created", "", noop); !errors.Is(err, acp.ErrUnknownConnection) {
			t.Fatalf("stream: %v", err)
		}
		msg, _ := acp.NewNotification(acp.MethodSessionCancel, acp.CancelParams{SessionID: "x"})
		if _, _, err := client.Post(ctx, "never-created", "", msg); !errors.Is(err, acp.ErrUnknownConnection) {
			t.Fatalf("post: %v", err)
		}
		if _, err := client.Dial(ctx, acp.ConnConfig{ServerID: "never-created"}); !errors.Is(err, acp.ErrUnknownConnection) {
			t.Fatalf("dial: %v", err)
		}
	})

	t.Run("AfterDelete", func(t *testing.T) {
		conn, _ := dialNew(t, ctx, client, nil)
		start := time.Now()
		if err := client.Delete(ctx, conn.ServerID()); err != nil {
			t.Fatalf("delete: %v", err)
		}
		if d := time.Since(start); d > 2500*time.Millisecond {
			t.Fatalf("delete took %v", d)
		}
		conns, err := client.Connections(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range conns {
			if c.ServerID == conn.ServerID() {
				t.Fatal("still listed after Delete")
			}
		}
		if err := client.Stream(ctx, conn.ServerID(), "", noop); !errors.Is(err, acp.ErrUnknownConnection) {
			t.Fatalf("stream: %v", err)
		}
		select {
		case <-conn.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("Conn still running")
		}
		// The agent's exit is reported first, when the stream still carries it.
		if err := conn.Err(); !errors.Is(err, acp.ErrUnknownConnection) && !errors.Is(err, acp.ErrAgentExited) {
			t.Fatalf("Err() = %v", err)
		}
		if _, err := conn.Call(ctx, acp.MethodInitialize, nil); err == nil {
			t.Fatal("call on a deleted connection")
		}
	})

	t.Run("DeleteUnknown", func(t *testing.T) {
		if err := client.Delete(ctx, "never-created"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("AfterServerRestart", func(t *testing.T) {
		conn, _ := dialNew(t, ctx, client, nil)
		srv.Restart()
		select {
		case <-conn.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("Conn did not notice the restart")
		}
		if err := conn.Err(); !errors.Is(err, acp.ErrUnknownConnection) {
			t.Fatalf("Err() = %v", err)
		}
		if err := client.Stream(ctx, conn.ServerID(), "", noop); !errors.Is(err, acp.ErrUnknownConnection) {
			t.Fatalf("stream: %v", err)
		}
		if _, err := client.Dial(ctx, acp.ConnConfig{ServerID: conn.ServerID(), LastEventID: "2"}); !errors.Is(err, acp.ErrUnknownConnection) {
			t.Fatalf("dial: %v", err)
		}
	})
}

func TestAgentExited(t *testing.T) {
	srv := sandboxtest.Start(t, sandboxtest.Options{})
	ctx := testContext(t)
	rec := newRecorder()
	conn, sid := dialNew(t, ctx, newClient(t, srv), rec)
	_, err := conn.Call(ctx, acp.MethodSessionPrompt, prompt(sid, "[crash]"))
	// The exit notification usually fails the call; a POST answered 502
	// (the agent's stdin is closed) may come first.
	var se *acp.StatusError
	if !errors.Is(err, acp.ErrAgentExited) && !(errors.As(err, &se) && se.Status == 502) {
		t.Fatalf("call: %v, want ErrAgentExited", err)
	}
	<-conn.Done()
	if !errors.Is(conn.Err(), acp.ErrAgentExited) {
		t.Fatalf("Err() = %v", conn.Err())
	}
	_, envs := rec.snapshot()
	if last := envs[len(envs)-1]; last.Method != acp.MethodAgentExited {
		t.Fatalf("last message %+v, want the exit notification", last)
	}
}

// TestSlowConsumer: Sandbox Agent drops live messages for a reader that falls
// behind; a Conn whose OnMessage is slow still sees every message, in order.
func TestSlowConsumer(t *testing.T) {
	srv := sandboxtest.Start(t, sandboxtest.Options{})
	ctx := testContext(t)
	var (
		mu  sync.Mutex
		ids []acp.Event
	)
	rec := newRecorder()
	conn, sid := dialNew(t, ctx, newClient(t, srv), nil)
	conn.Close()
	var gets atomic.Int64
	counting, err := acp.New(acp.Config{BaseURL: srv.URL(), HTTPClient: &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.Method == http.MethodGet {
			gets.Add(1)
		}
		return http.DefaultTransport.RoundTrip(r)
	})}})
	if err != nil {
		t.Fatal(err)
	}
	conn, err = counting.Dial(ctx, acp.ConnConfig{ServerID: conn.ServerID(), LastEventID: conn.LastEventID(), FirstID: 100,
		OnMessage: func(ev acp.Event, env acp.Envelope) error {
			mu.Lock()
			ids = append(ids, ev)
			mu.Unlock()
			time.Sleep(time.Millisecond)
			return rec.OnMessage(ev, env)
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	text := "[chunks=900][delay=0ms]" + strings.Repeat("z", 900)
	if _, err := conn.Call(ctx, acp.MethodSessionPrompt, prompt(sid, text)); err != nil {
		t.Fatal(err)
	}
	// Whether the server dropped messages depends on timing; say how often
	// the stream was resumed.
	t.Logf("%d messages over %d stream requests", len(ids), gets.Load())
	mu.Lock()
	defer mu.Unlock()
	checkConsecutive(t, ids, 2) // after the responses to initialize and session/new
	_, envs := rec.snapshot()
	if got := strings.Join(chunks(t, envs, sid), ""); got != mockagent.Reply(text) {
		t.Fatalf("reply of %d runes, want %d", len([]rune(got)), len([]rune(mockagent.Reply(text))))
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestEventsLost(t *testing.T) {
	srv := sandboxtest.Start(t, sandboxtest.Options{})
	ctx := testContext(t)
	client := newClient(t, srv)
	conn, sid := dialNew(t, ctx, client, nil)
	// More messages than the server's replay buffer of 1024.
	text := "[chunks=1100][delay=0ms]" + strings.Repeat("x", 1100)
	if _, err := conn.Call(ctx, acp.MethodSessionPrompt, prompt(sid, text)); err != nil {
		t.Fatal(err)
	}
	for _, last := range []string{"", "2"} {
		err := client.Stream(ctx, conn.ServerID(), last, func(acp.Event) error { return nil })
		if !errors.Is(err, acp.ErrEventsLost) {
			t.Fatalf("stream after %q: %v, want ErrEventsLost", last, err)
		}
	}
	c2, err := client.Dial(ctx, acp.ConnConfig{ServerID: conn.ServerID(), LastEventID: "2"})
	if err != nil {
		t.Fatal(err)
	}
	<-c2.Done()
	if !errors.Is(c2.Err(), acp.ErrEventsLost) {
		t.Fatalf("Conn: %v, want ErrEventsLost", c2.Err())
	}
	// Resuming within the buffer still works.
	n, _ := strconv.Atoi(conn.LastEventID())
	errStop := errors.New("stop")
	err = client.Stream(ctx, conn.ServerID(), strconv.Itoa(n-10), func(ev acp.Event) error {
		if ev.ID != strconv.Itoa(n-9) {
			t.Errorf("first event %s, want %d", ev.ID, n-9)
		}
		return errStop
	})
	if !errors.Is(err, errStop) {
		t.Fatal(err)
	}
}
