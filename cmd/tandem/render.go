package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
)

// renderer writes a session's events to a terminal as a conversation, the
// way the web client shows it: people's prompts ("ann: hello"), the
// agent's reply assembled from its chunks as they arrive, tool calls, turn
// boundaries and notices. It holds no more than the turn in progress.
type renderer struct {
	w        io.Writer
	last     byte   // the last byte written, to end an open line
	open     string // "text" or "thought" while agent output is being written
	started  map[string]int64
	tools    map[string]tool
	presence string
}

type tool struct{ title, status string }

func newRenderer(w io.Writer) *renderer {
	return &renderer{w: w, last: '\n', started: map[string]int64{}, tools: map[string]tool{}}
}

// event is what the renderer reads of an event's data; every type's fields
// together.
type event struct {
	CreatedAt int64           `json:"createdAt"`
	UserID    string          `json:"userId"`
	Text      string          `json:"text"`
	Sender    string          `json:"sender"`
	Payload   json.RawMessage `json:"payload"`
	Status    string          `json:"status"`
	Detail    detail          `json:"detail"`
	Reason    string          `json:"reason"` // reset
	Users     []struct {
		UserID      string `json:"userId"`
		Connections int    `json:"connections"`
	} `json:"users"` // presence
}

// detail is a session.status entry's detail; fields of another type than
// expected read as empty.
type detail map[string]any

func (d detail) str(k string) string {
	s, _ := d[k].(string)
	return s
}

// envelope is the part of an ACP JSON-RPC message shown.
type envelope struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params struct {
		Update struct {
			SessionUpdate string          `json:"sessionUpdate"`
			Content       json.RawMessage `json:"content"`
			ToolCallID    string          `json:"toolCallId"`
			Title         string          `json:"title"`
			Status        string          `json:"status"`
		} `json:"update"`
	} `json:"params"`
	Error *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// Render writes one event (its SSE type and data).
func (r *renderer) Render(typ string, data []byte) {
	var ev event
	if err := json.Unmarshal(data, &ev); err != nil {
		r.line("? %s event with unreadable data", typ)
		return
	}
	switch typ {
	case "chat.user":
		r.line("%s: %s", or(ev.UserID, "anonymous"), ev.Text)
	case "session.event":
		r.sessionEvent(ev)
	case "session.status":
		r.status(ev)
	case "reset":
		r.line("! the stream could not resume at your cursor (%s): it continues from the oldest event kept", ev.Reason)
	case "presence":
		r.here(ev)
	case "permission.requested", "permission.resolved":
		r.permission(typ, data)
	default:
		r.line("? %s event", typ)
	}
}

func (r *renderer) status(ev event) {
	d := ev.Detail
	prompt, stop, reason := d.str("promptId"), d.str("stopReason"), d.str("reason")
	switch ev.Status {
	case "turn_started":
		r.started[prompt] = ev.CreatedAt
		if u := d.str("userId"); u != "" {
			r.line("── turn started for %s", u)
		} else {
			r.line("── turn started")
		}
	case "turn_ended":
		took := ""
		if t, ok := r.started[prompt]; ok && ev.CreatedAt >= t {
			took = fmt.Sprintf(", %.1f s", float64(ev.CreatedAt-t)/1000)
			delete(r.started, prompt)
		}
		switch {
		case stop == "cancelled":
			r.line("── turn cancelled%s", took)
		case stop == "error" || (stop == "" && reason != ""):
			r.line("── turn failed: %s%s", or(reason, "error"), took)
		default:
			r.line("── turn ended (%s%s)", or(stop, "end_turn"), took)
		}
	case "owner_changed":
		r.line("* node %s now runs the session", or(d.str("node"), "?"))
	case "sandbox_unhealthy":
		n, _ := d["failures"].(float64)
		r.line("* the sandbox is not responding (%d failed health checks); restarting it", int(n))
	case "sandbox_recovered":
		r.line("* the sandbox is healthy again")
	case "session_restored":
		r.line("* the agent's connection was lost; the session was restored with its history")
	case "session_destroyed":
		r.line("* the session was ended")
	default:
		if !r.configStatus(ev) {
			r.line("* session status: %s", or(ev.Status, "unknown"))
		}
	}
}

func (r *renderer) sessionEvent(ev event) {
	// The client's own envelopes (initialize, session/prompt…) are not
	// conversation: the prompt is shown by its chat.user.
	if ev.Sender != "agent" {
		return
	}
	var env envelope
	if json.Unmarshal(ev.Payload, &env) != nil {
		return
	}
	if bytes.HasPrefix(env.ID, []byte(`"tandem.`)) {
		return // the agent's answer to one of Tandem's own markers
	}
	if env.Error != nil {
		r.line("agent error: %s", or(env.Error.Message, fmt.Sprintf("code %d", env.Error.Code)))
		return
	}
	if env.Method != "session/update" {
		return
	}
	u := env.Params.Update
	switch u.SessionUpdate {
	case "agent_message_chunk":
		r.agent("text", "agent: ", contentText(u.Content))
	case "agent_thought_chunk":
		r.agent("thought", "agent (thinking): ", contentText(u.Content))
	case "tool_call", "tool_call_update":
		t := r.tools[u.ToolCallID]
		next := tool{title: or(u.Title, t.title), status: or(u.Status, t.status)}
		if next.status == "" {
			next.status = "pending"
		}
		if next == t {
			return
		}
		r.tools[u.ToolCallID] = next
		r.line("  [tool] %s: %s", or(next.title, u.ToolCallID), next.status)
		if next.status == "completed" || next.status == "failed" {
			delete(r.tools, u.ToolCallID)
		}
	}
}

// agent writes agent output, continuing the open line of the same kind.
func (r *renderer) agent(kind, prefix, text string) {
	if text == "" {
		return
	}
	if r.open != kind {
		r.endLine()
		r.write(prefix)
		r.open = kind
	}
	r.write(text)
}

func (r *renderer) here(ev event) {
	users := make([]string, 0, len(ev.Users))
	for _, u := range ev.Users {
		s := u.UserID
		if u.Connections > 1 {
			s += fmt.Sprintf(" (%d)", u.Connections)
		}
		users = append(users, s)
	}
	sort.Strings(users)
	now := strings.Join(users, ", ")
	if now == r.presence {
		return
	}
	r.presence = now
	r.line("* here: %s", or(now, "nobody"))
}

// line writes a line of its own, ending any open agent output first.
func (r *renderer) line(format string, args ...any) {
	r.endLine()
	r.write(fmt.Sprintf(format, args...) + "\n")
}

func (r *renderer) endLine() {
	if r.last != '\n' {
		r.write("\n")
	}
	r.open = ""
}

func (r *renderer) write(s string) {
	if s == "" {
		return
	}
	io.WriteString(r.w, s) //nolint:errcheck // a closed terminal ends the command through its signal
	r.last = s[len(s)-1]
}

// Flush ends an open line (when the stream ends).
func (r *renderer) Flush() { r.endLine() }

// contentText is the text of an ACP content block or of a list of them.
func contentText(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return ""
	}
	if raw[0] == '[' {
		var list []json.RawMessage
		if json.Unmarshal(raw, &list) != nil {
			return ""
		}
		var b strings.Builder
		for _, c := range list {
			b.WriteString(contentText(c))
		}
		return b.String()
	}
	var c struct{ Type, Text string }
	if json.Unmarshal(raw, &c) != nil || c.Type != "text" {
		return ""
	}
	return c.Text
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
