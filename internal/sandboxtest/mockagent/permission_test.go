package mockagent

import (
	"encoding/json"
	"strings"
	"testing"
)

// [permission] asks before the text and says the option chosen; a
// cancelled answer ends the turn cancelled.
func TestPermissionDirective(t *testing.T) {
	h := start(t)
	sid := h.newSession()
	for _, tc := range []struct {
		answer map[string]any
		first  string
		stop   string
	}{
		{map[string]any{"outcome": map[string]any{"outcome": "selected", "optionId": "reject-once"}}, "permission: reject-once\n", "end_turn"},
		{map[string]any{"outcome": map[string]any{"outcome": "cancelled"}}, "permission: cancelled", "cancelled"},
	} {
		h.request(7, "session/prompt", map[string]any{"sessionId": sid, "prompt": text("write [permission] [chunks=1] [delay=0ms]")})
		req := h.next()
		var p struct {
			Params struct {
				SessionID string           `json:"sessionId"`
				Options   []map[string]any `json:"options"`
				ToolCall  map[string]any   `json:"toolCall"`
			} `json:"params"`
		}
		_ = json.Unmarshal([]byte(req.raw), &p)
		if req.Method != "session/request_permission" || len(req.ID) == 0 || p.Params.SessionID != sid || len(p.Params.Options) != 4 || p.Params.ToolCall["kind"] != "edit" {
			t.Fatalf("first message %s", req.raw)
		}
		h.send(map[string]any{"jsonrpc": "2.0", "id": req.ID, "result": tc.answer})
		res, before := h.response("7")
		if got := stopReason(t, res); got != tc.stop {
			t.Fatalf("stop %s", got)
		}
		if c := chunkTexts(t, sid, before); len(c) == 0 || c[0] != tc.first {
			t.Fatalf("chunks %q", c)
		}
	}
}

// session/new advertises two modes; session/set_mode changes the mode,
// says so with current_mode_update, and [modes] says it in the reply.
func TestModes(t *testing.T) {
	h := start(t)
	h.request("s", "session/new", map[string]any{"cwd": "/tmp", "mcpServers": []any{}})
	m, _ := h.response(`"s"`)
	var r struct {
		SessionID string
		Modes     struct {
			CurrentModeID  string `json:"currentModeId"`
			AvailableModes []struct{ ID string }
		}
	}
	if err := json.Unmarshal(m.Result, &r); err != nil || r.Modes.CurrentModeID != "ask" || len(r.Modes.AvailableModes) != 2 {
		t.Fatalf("session/new %s", m.raw)
	}
	h.request(2, "session/set_mode", map[string]any{"sessionId": r.SessionID, "modeId": "nope"})
	if res, _ := h.response("2"); res.Error == nil {
		t.Fatalf("unknown mode accepted: %s", res.raw)
	}
	h.request(3, "session/set_mode", map[string]any{"sessionId": r.SessionID, "modeId": "code"})
	if res, _ := h.response("3"); res.Error != nil {
		t.Fatalf("set_mode: %s", res.raw)
	}
	if u := h.next(); u.Params.Update.SessionUpdate != "current_mode_update" {
		t.Fatalf("after set_mode: %s", u.raw)
	}
	h.request(4, "session/prompt", map[string]any{"sessionId": r.SessionID, "prompt": text("hi [modes] [chunks=1] [delay=0ms]")})
	res, before := h.response("4")
	stopReason(t, res)
	if c := chunkTexts(t, r.SessionID, before); len(c) == 0 || !strings.HasPrefix(c[0], "mode: code") {
		t.Fatalf("chunks %q", c)
	}
}
