package workspace

import (
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// An agent that advertises an auth method reading environment variables
// is authenticated with it before session/new, as the SDK's
// autoAuthenticate does, and works.
func TestFakeAutoAuthenticate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		h.sb.SetAuthMethods(map[string]any{"id": "api-key", "name": "API key", "type": "env_var", "varName": "MOCK_API_KEY"})
		a := h.start("a", nodeOpts{})
		a.put(t)
		a.prompt(t, "hi [chunks=1]")
		h.waitCount("status:turn_ended", 1)
		if d := statusDetails(h.events(), StatusTurnEnded); d[0]["stopReason"] != "end_turn" {
			t.Fatalf("turn_ended %v", d)
		}
		if n := h.count("client:authenticate"); n != 1 {
			t.Fatalf("%d authenticate requests in %v", n, describeAll(h.events()))
		}
		if n := h.count("status:" + StatusAgentError); n != 0 {
			t.Fatalf("%d agent_error", n)
		}
	})
}

// An agent that needs a method Tandem cannot use keeps failing session/new:
// one agent_error naming the methods, the retries do not grow the stream,
// and after three failures the queued prompts end with stopReason error;
// once the agent can start again, the next prompt works and a new
// failure is reported again.
func TestFakeAgentErrorOnceAndQueuedPromptsEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		h.sb.SetAuthMethods(map[string]any{"id": "oauth", "name": "Log in with a browser"})
		a := h.start("a", nodeOpts{})
		a.put(t)
		p1 := a.prompt(t, "one [chunks=1]")
		p2 := a.prompt(t, "two [chunks=1]")
		h.waitCount("status:turn_ended", 2)
		evs := h.events()
		errs := statusDetails(evs, StatusAgentError)
		if len(errs) != 1 || errs[0]["code"] != float64(-32000) || !strings.Contains(errs[0]["message"].(string), "oauth") {
			t.Fatalf("agent_error %v", errs)
		}
		d := statusDetails(evs, StatusTurnEnded)
		if d[0]["promptId"] != p1.ID || d[1]["promptId"] != p2.ID || d[0]["stopReason"] != "error" || d[1]["stopReason"] != "error" {
			t.Fatalf("turn_ended %v", d)
		}
		if n := h.count("client:initialize"); n != 1 {
			t.Fatalf("%d initialize in the stream: the retries grew it (%v)", n, describeAll(evs))
		}
		if len(h.sb.Received("initialize")) < 3 {
			t.Fatalf("%d attempts, want 3", len(h.sb.Received("initialize")))
		}
		if ps := h.sb.Prompts(); len(ps) != 0 {
			t.Fatalf("the agent got prompts %v", ps)
		}
		n := len(h.events())
		time.Sleep(30 * time.Second)
		if len(h.events()) != n {
			t.Fatalf("the stream grew with nothing queued: %v", describeAll(h.events()[n:]))
		}
		if _, pending := h.store.inboxView(testWS); len(pending) != 0 {
			t.Fatalf("inbox entries pending: %v", pending)
		}

		// The agent can start again.
		h.sb.SetAuthMethods()
		p3 := a.prompt(t, "three [chunks=1]")
		waitFor(t, "the third prompt's end", func() bool {
			for _, d := range statusDetails(h.events(), StatusTurnEnded) {
				if d["promptId"] == p3.ID {
					return d["stopReason"] == "end_turn"
				}
			}
			return false
		})
		if h.store.state(testWS, DefaultSession)[stateAgentError] != "" {
			t.Fatal("the failure is still recorded after the agent started")
		}
	})
}
