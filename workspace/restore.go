package workspace

// Restore: the history a restored session's next prompt carries.

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/tandem-dev/tandem/acp"
)

// history is the text block a restored session's next prompt starts with:
// the conversation of the last HistoryEvents events, at most HistoryChars
// characters.
func (o *owner) history(ctx context.Context, sid string) string {
	evs, _, err := o.log().Last(ctx, o.ws, sid, 4*o.m.cfg.HistoryEvents)
	if err != nil || len(evs) == 0 {
		return ""
	}
	var lines []string
	var agent strings.Builder
	flush := func() {
		if agent.Len() > 0 {
			lines = append(lines, "assistant: "+agent.String())
			agent.Reset()
		}
	}
	n := 0
	for i := len(evs) - 1; i >= 0 && n < o.m.cfg.HistoryEvents; i-- {
		switch evs[i].Type {
		case TypeChatUser, TypeSessionEvent:
			n++
		}
	}
	for _, ev := range evs[len(evs)-n:] {
		switch ev.Type {
		case TypeChatUser:
			flush()
			var b struct{ UserID, Text string }
			_ = json.Unmarshal(ev.Body, &b)
			lines = append(lines, b.UserID+": "+b.Text)
		case TypeSessionEvent:
			if t := chunkText(ev.Body); t != "" {
				agent.WriteString(t)
			}
		}
	}
	flush()
	if len(lines) == 0 {
		return ""
	}
	text := strings.Join(lines, "\n")
	if len(text) > o.m.cfg.HistoryChars {
		text = text[len(text)-o.m.cfg.HistoryChars:]
	}
	return "Conversation so far (restored after the agent connection was lost):\n" + text
}

// chunkText returns the text of an agent_message_chunk session.event.
func chunkText(body json.RawMessage) string {
	var ev struct {
		Sender  string
		Payload struct {
			Method string
			Params struct {
				Update struct {
					SessionUpdate string
					Content       struct{ Type, Text string }
				}
			}
		}
	}
	if json.Unmarshal(body, &ev) != nil || ev.Sender != "agent" || ev.Payload.Method != acp.MethodSessionUpdate {
		return ""
	}
	if ev.Payload.Params.Update.SessionUpdate != "agent_message_chunk" || ev.Payload.Params.Update.Content.Type != "text" {
		return ""
	}
	return ev.Payload.Params.Update.Content.Text
}
