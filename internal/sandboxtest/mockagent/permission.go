package mockagent

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
)

// What the agent asks of its client, and the modes and models it offers.

// PermissionOptions are the options of the request a [permission] prompt
// makes.
var PermissionOptions = []map[string]any{
	{"optionId": "allow-once", "name": "Allow once", "kind": "allow_once"},
	{"optionId": "allow-always", "name": "Always allow", "kind": "allow_always"},
	{"optionId": "reject-once", "name": "Reject", "kind": "reject_once"},
	{"optionId": "reject-always", "name": "Always reject", "kind": "reject_always"},
}

// Modes are the session modes the agent advertises; the first is current
// in a new session.
var Modes = []map[string]any{
	{"id": "ask", "name": "Ask", "description": "asks before it changes anything"},
	{"id": "code", "name": "Code", "description": "writes code"},
}

// Models are the models the agent advertises; the first is current.
var Models = []map[string]any{
	{"modelId": "mock-small", "name": "Mock small"},
	{"modelId": "mock-large", "name": "Mock large"},
}

// requests are the agent's own requests waiting for the client's answer.
type requests struct {
	mu      sync.Mutex
	seq     int
	waiting map[string]chan json.RawMessage
}

// ask sends a request to the client and waits for its result (nil when ctx
// ends first).
func (a *agent) ask(ctx context.Context, method string, params any) (json.RawMessage, json.RawMessage) {
	a.reqs.mu.Lock()
	a.reqs.seq++
	id := json.RawMessage(strconv.Itoa(1_000_000 + a.reqs.seq))
	ch := make(chan json.RawMessage, 1)
	if a.reqs.waiting == nil {
		a.reqs.waiting = map[string]chan json.RawMessage{}
	}
	a.reqs.waiting[string(id)] = ch
	a.reqs.mu.Unlock()
	b, _ := json.Marshal(params)
	a.write(envelope{ID: id, Method: method, Params: b})
	select {
	case r := <-ch:
		return id, r
	case <-ctx.Done():
		a.reqs.mu.Lock()
		delete(a.reqs.waiting, string(id))
		a.reqs.mu.Unlock()
		return id, nil
	}
}

// answered takes the client's response to one of the agent's requests;
// a response to none (a second one) is logged and dropped.
func (a *agent) answered(line []byte, id json.RawMessage) {
	a.reqs.mu.Lock()
	ch := a.reqs.waiting[string(id)]
	delete(a.reqs.waiting, string(id))
	a.reqs.mu.Unlock()
	var r struct {
		Result json.RawMessage `json:"result"`
	}
	_ = json.Unmarshal(line, &r)
	a.logLine(map[string]any{"kind": "response", "id": id, "awaited": ch != nil, "result": r.Result})
	if ch != nil {
		ch <- r.Result
	}
}

// askPermission asks for the permission of a [permission] prompt and
// returns the chosen optionId, or "" for cancelled.
func (a *agent) askPermission(ctx context.Context, sessionID, toolID string) string {
	path := "/tmp/tandem-mock/" + toolID + ".txt"
	_, res := a.ask(ctx, "session/request_permission", map[string]any{
		"sessionId": sessionID,
		"toolCall": map[string]any{
			"toolCallId": toolID, "title": "Write " + path, "kind": "edit", "status": "pending",
			"rawInput":  map[string]any{"path": path, "content": "hello\n"},
			"content":   []any{map[string]any{"type": "diff", "path": path, "oldText": nil, "newText": "hello\n"}},
			"locations": []any{map[string]any{"path": path}},
		},
		"options": PermissionOptions,
	})
	var out struct {
		Outcome struct {
			Outcome  string `json:"outcome"`
			OptionID string `json:"optionId"`
		} `json:"outcome"`
	}
	if res == nil || json.Unmarshal(res, &out) != nil || out.Outcome.Outcome != "selected" {
		return ""
	}
	return out.Outcome.OptionID
}

// logLine writes one line to the prompt log, if any.
func (a *agent) logLine(v any) {
	if a.promptLog == nil {
		return
	}
	line, _ := json.Marshal(v)
	a.wmu.Lock()
	_, _ = a.promptLog.Write(append(line, '\n'))
	a.wmu.Unlock()
}

// setMode is session/set_mode (and session/set_model with model set).
func (a *agent) setMode(env envelope, model bool) {
	var p struct {
		SessionID string `json:"sessionId"`
		ModeID    string `json:"modeId"`
		ModelID   string `json:"modelId"`
	}
	if err := json.Unmarshal(env.Params, &p); err != nil {
		a.fail(env.ID, codeInvalidParams, "invalid params: "+err.Error())
		return
	}
	list, key, want := Modes, "id", p.ModeID
	if model {
		list, key, want = Models, "modelId", p.ModelID
	}
	known := false
	for _, m := range list {
		known = known || m[key] == want
	}
	a.mu.Lock()
	s := a.sessions[p.SessionID]
	if s != nil && known {
		if model {
			s.model = want
		} else {
			s.mode = want
		}
	}
	a.mu.Unlock()
	switch {
	case s == nil:
		a.fail(env.ID, codeInvalidParams, "unknown session: "+p.SessionID)
	case !known:
		a.fail(env.ID, codeInvalidParams, "unknown "+key+": "+want)
	default:
		a.result(env.ID, map[string]any{})
		if !model {
			a.notify("session/update", map[string]any{"sessionId": p.SessionID, "update": map[string]any{"sessionUpdate": "current_mode_update", "currentModeId": want}})
		}
	}
}
