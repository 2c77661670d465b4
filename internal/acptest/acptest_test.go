package acptest_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tandem-dev/tandem/acp"
	"github.com/tandem-dev/tandem/internal/acptest"
)

// dial opens a new connection with an agent session on sb, recording the
// messages it reads.
func dial(t *testing.T, ctx context.Context, sb *acptest.Server, id string, got *[]acp.Event, mu *sync.Mutex) (*acp.Client, *acp.Conn, string) {
	t.Helper()
	client, err := acp.New(acp.Config{BaseURL: sb.URL, HTTPClient: sb.Client()})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := client.Dial(ctx, acp.ConnConfig{ServerID: id, Agent: "mock", OnMessage: func(ev acp.Event, _ acp.Envelope) error {
		mu.Lock()
		*got = append(*got, ev)
		mu.Unlock()
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := conn.Call(ctx, acp.MethodInitialize, acp.InitializeParams{ProtocolVersion: 1}); err != nil {
		t.Fatal(err)
	}
	res, err := conn.Call(ctx, acp.MethodSessionNew, acp.NewSessionParams{Cwd: "/tmp"})
	if err != nil {
		t.Fatal(err)
	}
	var nr acp.NewSessionResult
	if err := json.Unmarshal(res, &nr); err != nil || nr.SessionID == "" {
		t.Fatalf("session/new: %s %v", res, err)
	}
	return client, conn, nr.SessionID
}

// A prompt is answered with its chunks then end_turn, all on the stream,
// inside a synctest bubble (no real I/O, no real time).
func TestPromptTurn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sb := acptest.New()
		defer sb.Close()
		var mu sync.Mutex
		var got []acp.Event
		_, conn, sid := dial(t, t.Context(), sb, "c1", &got, &mu)
		start := time.Now()
		res, err := conn.Call(t.Context(), acp.MethodSessionPrompt, acp.PromptParams{SessionID: sid, Prompt: []acp.ContentBlock{acp.TextBlock("hello [chunks=3] [delay=100ms]")}})
		if err != nil {
			t.Fatal(err)
		}
		if string(res) != `{"stopReason":"end_turn"}` {
			t.Fatalf("result %s", res)
		}
		if d := time.Since(start); d != 300*time.Millisecond {
			t.Fatalf("the turn took %v of fake time, want 300ms", d)
		}
		mu.Lock()
		defer mu.Unlock()
		text := ""
		for _, ev := range got {
			var env struct {
				Params struct {
					Update struct {
						Content struct{ Text string }
					}
				}
			}
			_ = json.Unmarshal(ev.Data, &env)
			text += env.Params.Update.Content.Text
		}
		if want := acptest.Reply("hello [chunks=3]"); text != want {
			t.Fatalf("reply %q, want %q", text, want)
		}
		if len(got) != 2+3+1 || got[len(got)-1].ID != "6" {
			t.Fatalf("%d messages, last %+v", len(got), got[len(got)-1])
		}
		if p := sb.Prompts(); len(p) != 1 || p[0].Text() != "hello [chunks=3] [delay=100ms]" || p[0].SessionID != sid {
			t.Fatalf("prompts %+v", p)
		}
	})
}

// Cancel ends a hanging turn with stopReason cancelled.
func TestCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sb := acptest.New()
		defer sb.Close()
		var mu sync.Mutex
		var got []acp.Event
		_, conn, sid := dial(t, t.Context(), sb, "c1", &got, &mu)
		go func() {
			time.Sleep(time.Minute)
			conn.Notify(t.Context(), acp.MethodSessionCancel, acp.CancelParams{SessionID: sid})
		}()
		res, err := conn.Call(t.Context(), acp.MethodSessionPrompt, acp.PromptParams{SessionID: sid, Prompt: []acp.ContentBlock{acp.TextBlock("[hang]")}})
		if err != nil || string(res) != `{"stopReason":"cancelled"}` {
			t.Fatalf("got %s, %v", res, err)
		}
	})
}

// A restarted server forgets the connection: the Conn stops with
// ErrUnknownConnection, and re-attaching fails the same way.
func TestRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sb := acptest.New()
		defer sb.Close()
		var mu sync.Mutex
		var got []acp.Event
		client, conn, _ := dial(t, t.Context(), sb, "c1", &got, &mu)
		sb.Restart()
		<-conn.Done()
		if !errors.Is(conn.Err(), acp.ErrUnknownConnection) {
			t.Fatalf("Err() = %v", conn.Err())
		}
		if _, err := client.Dial(t.Context(), acp.ConnConfig{ServerID: "c1", LastEventID: "1"}); !errors.Is(err, acp.ErrUnknownConnection) {
			t.Fatalf("re-attach: %v", err)
		}
	})
}

// A second reader resumes after Last-Event-ID; a permission request waits
// for the client's answer; health follows SetHealthy; Delete removes.
func TestResumePermissionHealthDelete(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sb := acptest.New()
		defer sb.Close()
		var mu sync.Mutex
		var got []acp.Event
		client, conn, sid := dial(t, t.Context(), sb, "c1", &got, &mu)
		var got2 []string
		var perm sync.WaitGroup
		perm.Add(1)
		conn2, err := client.Dial(t.Context(), acp.ConnConfig{ServerID: "c1", LastEventID: "2", OnMessage: func(ev acp.Event, env acp.Envelope) error {
			mu.Lock()
			got2 = append(got2, ev.ID)
			mu.Unlock()
			if env.Method == "session/request_permission" {
				go func() {
					defer perm.Done()
					if err := conn.Reply(context.Background(), env.ID, map[string]any{"outcome": map[string]any{"outcome": "selected", "optionId": "allow-once"}}, nil); err != nil {
						t.Error(err)
					}
				}()
			}
			return nil
		}})
		if err != nil {
			t.Fatal(err)
		}
		defer conn2.Close()
		res, err := conn.Call(t.Context(), acp.MethodSessionPrompt, acp.PromptParams{SessionID: sid, Prompt: []acp.ContentBlock{acp.TextBlock("[permission] [chunks=1]")}})
		if err != nil || string(res) != `{"stopReason":"end_turn"}` {
			t.Fatalf("got %s, %v", res, err)
		}
		perm.Wait()
		synctest.Wait()
		mu.Lock()
		if len(got2) != 4 || got2[0] != "3" { // the request, "permission: allow-once", the text, the response
			t.Fatalf("second reader got ids %v", got2)
		}
		mu.Unlock()
		if r := sb.Received(""); len(r) != 1 {
			t.Fatalf("responses received %+v", r)
		}
		if err := client.Health(t.Context()); err != nil {
			t.Fatal(err)
		}
		sb.SetHealthy(false)
		if err := client.Health(t.Context()); err == nil {
			t.Fatal("unhealthy server answered ok")
		}
		if err := client.Delete(t.Context(), "c1"); err != nil {
			t.Fatal(err)
		}
		if c := sb.Connections(); len(c) != 0 {
			t.Fatalf("connections after delete: %v", c)
		}
	})
}
