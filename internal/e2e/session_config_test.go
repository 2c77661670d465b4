package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/tandem-dev/tandem/internal/ssetest"
)

func modeChanges(evs []ssetest.Event) []map[string]any {
	var out []map[string]any
	for _, b := range eventsOf(evs, "session.status") {
		if b["status"] == "mode_changed" {
			d, _ := b["detail"].(map[string]any)
			out = append(out, d)
		}
	}
	return out
}

func nModeChanges(n int) func([]ssetest.Event) bool {
	return func(evs []ssetest.Event) bool { return len(modeChanges(evs)) >= n }
}

func currentModeOf(t testing.TB, n *node, ws, sid string) string {
	t.Helper()
	var rec struct {
		Modes struct {
			CurrentModeID  string `json:"currentModeId"`
			AvailableModes []any  `json:"availableModes"`
		}
	}
	if code := call(t, "GET", n.URL()+"/v1/workspaces/"+ws+"/sessions/"+sid, nil, nil, &rec); code != 200 || len(rec.Modes.AvailableModes) != 2 {
		t.Fatalf("GET session: %d %+v", code, rec)
	}
	return rec.Modes.CurrentModeID
}

// The mode on the real Sandbox Agent: a session created with a mode gets
// it; a change through the other node is applied (the agent says so),
// visible to everyone with who made it, and in the SessionRecord; bad
// changes get 400 and change nothing; after the sandbox lost the session
// (restarted), the mode is applied again to the restored one.
func TestModeChangeVisibleAndReappliedAfterRestore(t *testing.T) {
	e := newEnv(t)
	a := e.node("a", nil)
	b := e.node("b", nil)
	const ws = "modes"
	call(t, "PUT", a.URL()+"/v1/workspaces/"+ws, nil, nil, nil)
	if code := call(t, "POST", a.URL()+"/v1/workspaces/"+ws+"/sessions", map[string]any{"id": "s1", "mode": "kode", "bogus": 1}, nil, nil); code != 400 {
		t.Fatalf("an unknown field: %d", code)
	}
	if code := call(t, "POST", a.URL()+"/v1/workspaces/"+ws+"/sessions", map[string]any{"id": "s1", "mode": "code", "sessionInit": map[string]any{"cwd": "/tmp", "mcpServers": []any{}}}, map[string]string{"X-User-Id": "ann"}, nil); code != 201 {
		t.Fatalf("create session: %d", code)
	}
	ca := follow(t, a, ws, "s1")
	cb := follow(t, b, ws, "s1")
	ca.waitFor(t, "the mode of creation", 20*time.Second, nModeChanges(1))
	if m := currentModeOf(t, b, ws, "s1"); m != "code" {
		t.Fatalf("mode %q, want code", m)
	}
	for _, body := range []any{map[string]any{"mode": "yolo"}, map[string]any{}, map[string]any{"mode": "ask", "x": 1}, map[string]any{"mode": ""}} {
		if code := call(t, "PATCH", b.URL()+"/v1/workspaces/"+ws+"/sessions/s1", body, nil, nil); code != 400 {
			t.Fatalf("PATCH %v: %d", body, code)
		}
	}
	if code := call(t, "PATCH", b.URL()+"/v1/workspaces/"+ws+"/sessions/nope", map[string]any{"mode": "ask"}, nil, nil); code != 404 {
		t.Fatalf("PATCH of an unknown session: %d", code)
	}
	if code := call(t, "PATCH", b.URL()+"/v1/workspaces/"+ws+"/sessions/s1", map[string]any{"mode": "ask"}, map[string]string{"X-User-Id": "bob"}, nil); code != 202 {
		t.Fatalf("PATCH mode: %d", code)
	}
	for _, c := range []*collector{ca, cb} {
		d := modeChanges(c.waitFor(t, "bob's mode change", 20*time.Second, nModeChanges(2)))
		if d[0]["mode"] != "code" || d[0]["by"] != "ann" || d[1]["mode"] != "ask" || d[1]["by"] != "bob" {
			t.Fatalf("mode_changed %v", d)
		}
	}
	if m := currentModeOf(t, a, ws, "s1"); m != "ask" {
		t.Fatalf("mode %q, want ask", m)
	}
	acc := prompt(t, b, ws, "s1", "which [modes] [chunks=1]", nil)
	ca.waitFor(t, "the turn", 20*time.Second, turnEnded(acc.ID))
	if reply, _ := agentReply(readStream(t, e.rdb, ws, "s1"), acc.ID); !strings.HasPrefix(reply, "mode: ask") {
		t.Fatalf("the agent said %q", reply)
	}
	call(t, "PATCH", a.URL()+"/v1/workspaces/"+ws+"/sessions/s1", map[string]any{"mode": "code"}, map[string]string{"X-User-Id": "carol"}, nil)
	ca.waitFor(t, "carol's mode change", 20*time.Second, nModeChanges(3))

	e.sandbox.Restart()
	evs := ca.waitFor(t, "the restore and the mode applied again", 30*time.Second, nModeChanges(4))
	if d := modeChanges(evs)[3]; d["mode"] != "code" || d["by"] != "carol" || d["reason"] == nil {
		t.Fatalf("mode_changed after the restore %v", d)
	}
	if !strings.Contains(statusesOf(evs), "session_restored") {
		t.Fatalf("no session_restored before the mode was applied again: %s", statusesOf(evs))
	}
	acc = prompt(t, b, ws, "s1", "and now [modes] [chunks=1]", nil)
	ca.waitFor(t, "the turn after the restore", 20*time.Second, turnEnded(acc.ID))
	if reply, _ := agentReply(readStream(t, e.rdb, ws, "s1"), acc.ID); !strings.HasPrefix(reply, "mode: code") {
		t.Fatalf("the agent said %q after the restore", reply)
	}
	if m := currentModeOf(t, a, ws, "s1"); m != "code" {
		t.Fatalf("mode %q after the restore, want code", m)
	}
	checkStream(t, readStream(t, e.rdb, ws, "s1"))
}

func statusesOf(evs []ssetest.Event) string {
	var s []string
	for _, b := range eventsOf(evs, "session.status") {
		s = append(s, b["status"].(string))
	}
	return strings.Join(s, " ")
}
