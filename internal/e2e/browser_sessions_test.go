package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tandem-dev/tandem/internal/sandboxtest/mockagent"
)

// TestBrowserSessions drives three pages in headless Chromium
// (internal/e2e/browser/sessions.test.mjs) against redis-server, the
// Sandbox Agent server with the scripted agent and two nodes: ann's page
// on node a, bob's and cat's on node b. Ann creates a session; the other
// two see it in their session lists within a second, without reloading,
// switch to it and see the same transcript; its address opens the same
// view; an admin ends a session and it leaves every list.
func TestBrowserSessions(t *testing.T) {
	nodeBin, dir, artifacts := browserPrereqs(t)
	e := newEnv(t)
	a := e.node("a", nil)
	b := e.node("b", nil)
	const ws = "sessions-browser"
	if code := call(t, "PUT", a.URL()+"/v1/workspaces/"+ws, nil, nil, nil); code != 201 {
		t.Fatalf("PUT workspace: %d", code)
	}
	if code := call(t, "POST", a.URL()+"/v1/workspaces/"+ws+"/sessions", map[string]string{"id": "default"}, nil, nil); code != 201 {
		t.Fatalf("create session: %d", code)
	}

	prompt1 := "hello in s2 [chunks=6] [delay=30ms]"
	long := "a long turn in s2 [chunks=30] [delay=150ms]"
	queued := "bob has second thoughts [chunks=2]"
	kept := "cat asks a question [chunks=2] [delay=10ms]"
	// Markdown with a code block, a table, a list, links and payloads
	// that must not run, in the prompt and so in the agent's answer.
	md := "Here is the plan [diff] [chunks=8]\n\n```js\nconst riders = 2;\n```\n\n| rider | seat |\n|---|---|\n| ann | front |\n| bob | back |\n\n" +
		"- first\n- second\n\nSee [the docs](https://example.com/docs) and [bad link](javascript:window.__pwned='link').\n\n" +
		"<script>window.__pwned = 'script'</script>\n<img src=x onerror=\"window.__pwned = 'img'\">\n<p style=\"color:red\" onclick=\"window.__pwned = 'click'\">styled</p>"
	runNodeTest(t, nodeBin, dir, "sessions.test.mjs", 4*time.Minute,
		"TANDEM_ANN_URL="+a.URL(),
		"TANDEM_BOB_URL="+b.URL(),
		"TANDEM_WS="+ws,
		"TANDEM_PROMPT1="+prompt1,
		"TANDEM_REPLY1="+mockagent.Reply(prompt1),
		"TANDEM_LONG="+long,
		"TANDEM_QUEUED="+queued,
		"TANDEM_KEPT="+kept,
		"TANDEM_KEPT_REPLY="+mockagent.Reply(kept),
		"TANDEM_MD="+md,
		"TANDEM_ARTIFACTS="+artifacts,
	)

	entries := readStream(t, e.rdb, ws, "s2")
	checkStream(t, entries)
	counts := e.promptsReceived(t)
	for _, p := range []string{prompt1, long, kept, md} {
		if counts[p] != 1 {
			t.Errorf("the agent received %q %d times, want once", p, counts[p])
		}
	}
	// Withdrawn on the page: it never reached the agent.
	if counts[queued] != 0 {
		t.Errorf("the withdrawn prompt %q reached the agent %d times", queued, counts[queued])
	}
	if n := chatUsers(entries); len(n) != 4 {
		t.Errorf("chat.user entries in s2: %v, want 4 prompts, each once", n)
	}
	// Typing is presence: nothing of it in any stream.
	for _, sid := range []string{"default", "s2", "~ws"} {
		all := readStream(t, e.rdb, ws, sid)
		if sid != "default" && len(all) == 0 {
			t.Errorf("stream %s is empty", sid)
		}
		for _, en := range all {
			if b, _ := json.Marshal(en.Body); en.Type == "presence" || strings.Contains(string(b), "typing") {
				t.Errorf("stream %s holds %s %s", sid, en.Type, b)
			}
		}
	}
	for id, c := range chatUsers(entries) {
		if c != 1 {
			t.Errorf("prompt %s has %d chat.user entries", id, c)
		}
	}
}
