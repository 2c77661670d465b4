package e2e

import (
	"strings"
	"testing"
	"time"
)

// Before each prompt the owner sends the agent a dispatch marker, an ACP
// extension request whose answer (method not found, from an agent that
// does not know it) is the evidence, in Sandbox Agent's replay buffer,
// that the prompt was being sent (workspace/marker.go). Against the real
// Sandbox Agent server: the answer comes back on the connection's stream,
// is stored before the turn's output, and does not delay the prompt by the
// marker's bound (2 s).
func TestDispatchMarkerAnsweredThroughSandboxAgent(t *testing.T) {
	e := newEnv(t)
	a := e.node("a", nil)
	const ws = "marker"
	call(t, "PUT", a.URL()+"/v1/workspaces/"+ws, nil, nil, nil)
	c := follow(t, a, ws, "default")
	sent := time.Now()
	p := prompt(t, a, ws, "default", "hello [chunks=2] [delay=0ms]", nil)
	c.waitFor(t, "the turn's end", 30*time.Second, turnEnded(p.ID))
	if took := time.Since(sent); took > 1500*time.Millisecond {
		t.Errorf("the turn took %v: the marker's answer did not come back", took)
	}
	entries := readStream(t, e.rdb, ws, "default")
	checkStream(t, entries)
	marker, firstChunk := -1, -1
	for i, en := range entries {
		if en.Type != "session.event" || en.Body["sender"] != "agent" {
			continue
		}
		pl, _ := en.Body["payload"].(map[string]any)
		if id, _ := pl["id"].(string); id == "tandem.dispatch."+p.ID {
			if _, ok := pl["error"]; !ok {
				t.Errorf("the marker's answer %v: want the agent's method-not-found error", pl)
			}
			marker = i
		}
		if firstChunk < 0 && chunk(en.Body) != "" {
			firstChunk = i
		}
	}
	if marker < 0 || firstChunk < 0 || marker > firstChunk {
		var b strings.Builder
		for _, en := range entries {
			b.WriteString(en.Raw + "\n")
		}
		t.Fatalf("marker at %d, first chunk at %d; stream:\n%s", marker, firstChunk, b.String())
	}
	if got, ok := agentReply(entries, p.ID); !ok || got != "You said: hello" {
		t.Fatalf("reply %q (ended %v)", got, ok)
	}
}
