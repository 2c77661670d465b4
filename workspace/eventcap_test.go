package workspace

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCapPayload(t *testing.T) {
	small := []byte(`{"jsonrpc":"2.0","method":"session/update","params":{}}`)
	if got := capPayload(small, 1024); string(got) != string(small) {
		t.Errorf("a small envelope changed: %s", got)
	}
	text := strings.Repeat("héllo wörld ", 20000)
	chunk, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "method": "session/update", "params": map[string]any{
		"sessionId": "s", "update": map[string]any{"sessionUpdate": "agent_message_chunk", "content": map[string]any{"type": "text", "text": text}}}})
	resp, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 7, "result": map[string]any{"blob": text}})
	for name, env := range map[string][]byte{"chunk": chunk, "response": resp} {
		for _, limit := range []int{4096, 65536} {
			got := capPayload(env, limit)
			if len(got) > limit {
				t.Errorf("%s at %d: %d bytes", name, limit, len(got))
			}
			var v struct {
				ID     json.RawMessage
				Method string
				Params struct {
					Update struct {
						SessionUpdate string
						Content       struct{ Text string }
					}
				}
				Tandem truncatedMarker `json:"_tandem"`
			}
			if err := json.Unmarshal(got, &v); err != nil {
				t.Fatalf("%s at %d: %v: %.200s", name, limit, err, got)
			}
			if !v.Tandem.Truncated || v.Tandem.Bytes != len(env) {
				t.Errorf("%s at %d: marker %+v, want the full size %d", name, limit, v.Tandem, len(env))
			}
			switch name {
			case "chunk":
				tx := v.Params.Update.Content.Text
				if v.Method != "session/update" || v.Params.Update.SessionUpdate != "agent_message_chunk" || !strings.HasPrefix(text, tx) || !utf8.ValidString(tx) || len(tx) < limit/2 {
					t.Errorf("chunk at %d: %s %q, text of %d bytes", limit, v.Method, v.Params.Update.SessionUpdate, len(tx))
				}
			case "response":
				if string(v.ID) != "7" {
					t.Errorf("response at %d: id %s", limit, v.ID)
				}
			}
		}
	}
	if got := capPayload(chunk, -1); len(got) != len(chunk) {
		t.Error("a negative bound cut")
	}
}
