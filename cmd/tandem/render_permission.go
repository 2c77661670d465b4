package main

import (
	"encoding/json"
	"fmt"
	"strings"
)

// permissionEvent is what the renderer reads of permission.requested and
// permission.resolved.
type permissionEvent struct {
	RequestID string `json:"requestId"`
	ToolCall  struct {
		Title    string `json:"title"`
		Kind     string `json:"kind"`
		RawInput struct {
			Command any    `json:"command"`
			Path    string `json:"path"`
		} `json:"rawInput"`
	} `json:"toolCall"`
	Options []struct {
		OptionID string `json:"optionId"`
		Name     string `json:"name"`
	} `json:"options"`
	OptionID string `json:"optionId"`
	Outcome  string `json:"outcome"`
	By       string `json:"by"`
	Reason   string `json:"reason"`
}

// permission writes a request, with its options and how to answer it, or
// its resolution.
func (r *renderer) permission(typ string, data []byte) {
	var p permissionEvent
	if json.Unmarshal(data, &p) != nil {
		r.line("? %s event with unreadable data", typ)
		return
	}
	if typ == "permission.requested" {
		what := or(p.ToolCall.Title, "a tool call")
		if p.ToolCall.Kind != "" {
			what += " (" + p.ToolCall.Kind + ")"
		}
		r.line("? the agent asks: %s", what)
		switch c := p.ToolCall.RawInput.Command.(type) {
		case string:
			r.line("    $ %s", c)
		case []any:
			var parts []string
			for _, x := range c {
				parts = append(parts, fmt.Sprint(x))
			}
			r.line("    $ %s", strings.Join(parts, " "))
		}
		if p.ToolCall.RawInput.Path != "" {
			r.line("    %s", p.ToolCall.RawInput.Path)
		}
		var opts []string
		for _, o := range p.Options {
			opts = append(opts, o.OptionID+" ("+or(o.Name, o.OptionID)+")")
		}
		r.line("    request %s, options: %s", p.RequestID, strings.Join(opts, ", "))
		r.line("    answer with: tandem approve WORKSPACE [SESSION] %s OPTION_ID", p.RequestID)
		return
	}
	how := "cancelled"
	if p.Outcome == "selected" {
		how = "chose " + p.OptionID
	}
	if p.Reason != "" {
		how += " (" + p.Reason + ")"
	}
	r.line("* %s %s for request %s", or(p.By, "someone"), how, p.RequestID)
}

// configStatus writes the session.status entries of the agent's
// configuration and failures; false for another status.
func (r *renderer) configStatus(ev event) bool {
	d := ev.Detail
	again := ""
	if s := d.str("reason"); s != "" {
		again = " (" + s + ")"
	}
	switch ev.Status {
	case "mode_changed":
		r.line("* %s set the mode to %s%s", or(d.str("by"), "someone"), d.str("mode"), again)
	case "model_changed":
		r.line("* %s set the model to %s%s", or(d.str("by"), "someone"), d.str("model"), again)
	case "config_changed":
		r.line("* %s set %s to %s%s", or(d.str("by"), "someone"), d.str("configId"), d.str("value"), again)
	case "config_failed":
		msg := ""
		if e, ok := d["error"].(map[string]any); ok {
			msg, _ = e["message"].(string)
		}
		r.line("! the agent refused a change by %s: %s", or(d.str("by"), "someone"), or(msg, "error"))
	case "agent_error":
		r.line("! the agent could not start: %s", or(d.str("message"), "error"))
	default:
		return false
	}
	return true
}
