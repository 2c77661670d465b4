package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/tandem-dev/tandem/internal/ssetest"
)

func agentErrors(evs []ssetest.Event) []map[string]any {
	var out []map[string]any
	for _, b := range eventsOf(evs, "session.status") {
		if b["status"] == "agent_error" {
			d, _ := b["detail"].(map[string]any)
			out = append(out, d)
		}
	}
	return out
}

// Agent failures on the real Sandbox Agent: an agent the sandbox does not
// offer is refused with 400 unknown_agent listing those it does; an agent
// whose session/new fails (the scripted agent refuses a cwd that does not
// exist) gets one agent_error with the agent's message and code, the
// queued prompts end with stopReason "error", and while it keeps failing
// the stream does not grow by the retries.
func TestAgentFailuresVisibleAndBounded(t *testing.T) {
	e := newEnv(t)
	n := e.node("a", nil)
	const ws = "agents"
	call(t, "PUT", n.URL()+"/v1/workspaces/"+ws, nil, nil, nil)
	var p problem
	if code := call(t, "POST", n.URL()+"/v1/workspaces/"+ws+"/sessions", map[string]any{"id": "x", "agent": "nonesuch"}, nil, &p); code != 400 || !strings.HasSuffix(p.Type, ":unknown_agent") || !strings.Contains(p.Detail, "mock") || !strings.Contains(p.Detail, "claude") {
		t.Fatalf("an unknown agent: %d %+v", code, p)
	}
	if code := call(t, "PUT", n.URL()+"/v1/workspaces/"+ws, map[string]any{"agent": "nonesuch"}, nil, &p); code != 400 || !strings.HasSuffix(p.Type, ":unknown_agent") {
		t.Fatalf("PUT an unknown agent: %d %+v", code, p)
	}
	var sessions []string
	var info struct{ Sessions []string }
	call(t, "GET", n.URL()+"/v1/workspaces/"+ws, nil, nil, &info)
	sessions = info.Sessions
	if len(sessions) != 0 {
		t.Fatalf("a refused session was created: %v", sessions)
	}

	if code := call(t, "POST", n.URL()+"/v1/workspaces/"+ws+"/sessions", map[string]any{"id": "bad", "sessionInit": map[string]any{"cwd": "/nonexistent/tandem-e2e"}}, nil, nil); code != 201 {
		t.Fatalf("create session: %d", code)
	}
	c := follow(t, n, ws, "bad")
	p1 := prompt(t, n, ws, "bad", "one", nil)
	p2 := prompt(t, n, ws, "bad", "two", nil)
	start := time.Now()
	evs := c.waitFor(t, "both prompts ended", 40*time.Second, func(evs []ssetest.Event) bool { return turnEnded(p1.ID)(evs) && turnEnded(p2.ID)(evs) })
	t.Logf("the queued prompts ended %v after they were sent", time.Since(start))
	errs := agentErrors(evs)
	if len(errs) != 1 || errs[0]["code"] != float64(-32602) || !strings.Contains(errs[0]["message"].(string), "not a directory") || errs[0]["agent"] != "mock" {
		t.Fatalf("agent_error %v", errs)
	}
	entries := readStream(t, e.rdb, ws, "bad")
	checkStream(t, entries)
	for _, id := range []string{p1.ID, p2.ID} {
		d := statusDetail(entries, id, "turn_ended")
		if d["stopReason"] != "error" || !strings.Contains(d["reason"].(string), "not a directory") {
			t.Fatalf("turn_ended of %s: %v", id, d)
		}
		if statusDetail(entries, id, "turn_started") == nil || chatUsers(entries)[id] != 1 {
			t.Fatalf("prompt %s has no chat.user and turn_started", id)
		}
	}
	if got := e.promptsReceived(t); len(got) != 0 {
		t.Fatalf("the agent got prompts: %v", got)
	}

	// It keeps failing: a third prompt is tried again, the stream holds
	// none of the retries, only the prompt and its end.
	envelopes := func(es []streamEntry) int {
		k := 0
		for _, en := range es {
			if en.Type == "session.event" {
				k++
			}
		}
		return k
	}
	before := envelopes(entries)
	p3 := prompt(t, n, ws, "bad", "three", nil)
	c.waitFor(t, "the third prompt ended", 60*time.Second, turnEnded(p3.ID))
	entries = readStream(t, e.rdb, ws, "bad")
	if after := envelopes(entries); after != before {
		t.Fatalf("the retries grew the stream: %d envelopes, %d before", after, before)
	}
	if errs := agentErrors(c.snapshot()); len(errs) != 1 {
		t.Fatalf("%d agent_error events for one failure", len(errs))
	}
	time.Sleep(3 * time.Second)
	if n := len(readStream(t, e.rdb, ws, "bad")); n != len(entries) {
		t.Fatalf("the stream grew from %d to %d with nothing to do", len(entries), n)
	}
}
