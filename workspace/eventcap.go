package workspace

import (
	"encoding/json"
	"unicode/utf8"
)

// defaultMaxEventBytes bounds what one agent message adds to a stream:
// far below the ACP reader's 64 MiB line cap and Redis's 32 MiB pub/sub
// output buffer (the doorbell publishes every entry whole), and
// below what a page or a client wants at once.
const defaultMaxEventBytes = 1 << 20

// truncatedMarker is added to an ACP envelope stored cut: "_tandem":
// {"truncated": true, "bytes": <the envelope's full size>}.
type truncatedMarker struct {
	Truncated bool `json:"truncated"`
	Bytes     int  `json:"bytes"`
}

// capPayload returns an agent's ACP envelope to store: as it is when it
// fits in limit bytes, else cut to fit with a marker saying so and the
// full size. A message chunk (session/update whose update.content.text
// is text) keeps its shape and the start of its text; anything else
// keeps its jsonrpc, id and method only. The owner acts on the envelope
// as received; only what is stored is cut.
func capPayload(payload []byte, limit int) []byte {
	if limit <= 0 || len(payload) <= limit {
		return payload
	}
	marker := truncatedMarker{Truncated: true, Bytes: len(payload)}
	var env map[string]json.RawMessage
	if json.Unmarshal(payload, &env) == nil {
		if out, ok := capText(env, marker, limit); ok {
			return out
		}
	}
	short := map[string]any{"jsonrpc": "2.0", "_tandem": marker}
	for _, k := range []string{"id", "method"} {
		if v, ok := env[k]; ok && len(v) <= 1024 {
			short[k] = v
		}
	}
	b, _ := json.Marshal(short)
	return b
}

// capText cuts the text of a message chunk so that the envelope fits.
func capText(env map[string]json.RawMessage, marker truncatedMarker, limit int) ([]byte, bool) {
	var params map[string]json.RawMessage
	var update map[string]json.RawMessage
	var content map[string]json.RawMessage
	var text string
	if json.Unmarshal(env["params"], &params) != nil || json.Unmarshal(params["update"], &update) != nil ||
		json.Unmarshal(update["content"], &content) != nil || json.Unmarshal(content["text"], &text) != nil {
		return nil, false
	}
	m, _ := json.Marshal(marker)
	env["_tandem"] = m
	// What the envelope takes without its text, then as much text as fits
	// (JSON escaping can only make it longer: cut, measure, cut again).
	keep := len(text)
	for range 8 {
		keep = max(0, min(keep, len(text)))
		for keep > 0 && keep < len(text) && !utf8.RuneStart(text[keep]) {
			keep--
		}
		content["text"], _ = json.Marshal(text[:keep])
		update["content"], _ = json.Marshal(content)
		params["update"], _ = json.Marshal(update)
		env["params"], _ = json.Marshal(params)
		out, _ := json.Marshal(env)
		if len(out) <= limit || keep == 0 {
			return out, len(out) <= limit
		}
		keep -= len(out) - limit
	}
	return nil, false
}

// maxEventBytes is the owner's bound on a stored agent message (the
// default for an owner without a manager, as some tests build).
func (o *owner) maxEventBytes() int {
	if o.m == nil {
		return defaultMaxEventBytes
	}
	return o.m.cfg.MaxEventBytes
}
