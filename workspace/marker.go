package workspace

// Dispatch markers: evidence outside Redis that a prompt was sent.
//
// An ACP session/prompt cannot be deduplicated, and its only trace in
// Redis is the dispatch's append (chat.user, turn_started, the request).
// When Redis loses that append (a restart from an older snapshot, a
// failover to a replica that had not received it), a new owner on another
// node finds the prompt in the inbox with no evidence of dispatch. If the
// agent has said nothing of it yet (a slow first token, a silent tool
// call), nothing tells it the prompt was sent, and sending it again makes
// the agent run it twice.
//
// So, right before the prompt, the owner sends the agent an ACP extension
// request (a method starting with "_", which an agent that does not know
// it answers with "method not found", as JSON-RPC requires), whose id
// names the prompt's inbox id. The agent's answer lands in Sandbox
// Agent's replay buffer before the prompt is sent. The dispatch's append
// precedes the marker, so a new owner that lost the append re-attaches
// from a source position before the marker's answer, and the replay shows
// it: that prompt may have reached the agent, and it ends as
// delivery_unknown instead of being sent again. No marker in the replay:
// the prompt was never sent.

import (
	"encoding/json"
	"strings"

	"github.com/tandem-dev/tandem/acp"
)

// methodDispatchMarker is the extension method of dispatch markers.
const methodDispatchMarker = "_tandem/dispatch"

// markerPrefix starts the JSON-RPC id of a dispatch marker; the prompt's
// inbox id follows.
const markerPrefix = "tandem.dispatch."

// markerEnvelope is the marker of prompt inbox, dispatched as request req.
func markerEnvelope(inbox string, req int64) []byte {
	env, _ := acp.NewRequest(markerPrefix+inbox, methodDispatchMarker, map[string]any{"promptId": inbox, "requestId": req})
	return env
}

// markedPrompt reports the inbox id of the prompt whose dispatch marker
// env answers.
func markedPrompt(env acp.Envelope) (string, bool) {
	if env.Kind() != acp.KindResponse || len(env.ID) == 0 || env.ID[0] != '"' {
		return "", false
	}
	var id string
	if json.Unmarshal(env.ID, &id) != nil {
		return "", false
	}
	return strings.CutPrefix(id, markerPrefix)
}
