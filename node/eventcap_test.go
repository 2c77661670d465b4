package node_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tandem-dev/tandem/internal/nodetest"
	"github.com/tandem-dev/tandem/internal/redistest"
	"github.com/tandem-dev/tandem/internal/sandboxtest"
	"github.com/tandem-dev/tandem/node"
)

// An agent message over the byte cap is stored cut, with a marker and
// its full size; the turn still ends as the agent ended it.
func TestLargeAgentMessageStoredTruncated(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	sb := sandboxtest.Start(t, sandboxtest.Options{})
	n := nodetest.Start(t, rs.URL(), func(c *node.Config) {
		c.Sandbox = node.SandboxConfig{URL: sb.URL()}
		c.Workspace.MaxEventBytes = 4096
	})
	send(t, "PUT", n.URL+"/v1/workspaces/big", "", nil)
	text := strings.Repeat("abcdefghij", 2000) + " [chunks=1]"
	if code, body := send(t, "POST", n.URL+"/v1/workspaces/big/sessions/default/prompt", `{"text":"`+text+`"}`, nil); code != 202 {
		t.Fatalf("prompt: %d %s", code, body)
	}
	type item struct {
		Type    string          `json:"type"`
		Status  string          `json:"status"`
		Sender  string          `json:"sender"`
		Payload json.RawMessage `json:"payload"`
		Detail  map[string]any  `json:"detail"`
	}
	var items []item
	deadline := time.Now().Add(30 * time.Second)
	for done := false; !done && time.Now().Before(deadline); {
		items = nil
		_, body := get(t, n.URL+"/v1/workspaces/big/sessions/default/events?limit=1000", "")
		var p struct{ Items []item }
		if err := json.Unmarshal([]byte(body), &p); err != nil {
			t.Fatal(err)
		}
		items = p.Items
		for _, it := range items {
			done = done || it.Status == "turn_ended"
		}
		time.Sleep(100 * time.Millisecond)
	}
	cut := 0
	for _, it := range items {
		if it.Type != "session.event" || it.Sender != "agent" {
			continue
		}
		if len(it.Payload) > 4096 {
			t.Errorf("an agent envelope of %d bytes was stored", len(it.Payload))
		}
		var v struct {
			Params struct {
				Update struct {
					SessionUpdate string
					Content       struct{ Text string }
				}
			}
			Tandem struct {
				Truncated bool
				Bytes     int
			} `json:"_tandem"`
		}
		_ = json.Unmarshal(it.Payload, &v)
		if v.Tandem.Truncated {
			cut++
			if v.Tandem.Bytes <= 4096 || v.Params.Update.SessionUpdate != "agent_message_chunk" || !strings.HasPrefix(v.Params.Update.Content.Text, "You said: abcdefghij") {
				t.Errorf("truncated envelope: %+v, text %.40q", v.Tandem, v.Params.Update.Content.Text)
			}
		}
	}
	ended := false
	for _, it := range items {
		if it.Status == "turn_ended" {
			ended = it.Detail["stopReason"] == "end_turn"
		}
	}
	if cut == 0 || !ended {
		t.Errorf("%d truncated envelopes, turn ended with end_turn: %v", cut, ended)
	}
}
