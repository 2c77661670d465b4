package e2e

import (
	"testing"
	"time"

	"github.com/tandem-dev/tandem/internal/sandboxtest/mockagent"
)

// TestBrowserExample runs the browser client of Sandbox Agent's
// multiplayer guide (the seed of issue 17), ported to @tandem-dev/client
// and served by the node at /static/examples/multiplayer.html, in
// headless Chromium (internal/e2e/browser/example.test.mjs) against
// redis-server, the Sandbox Agent server with the scripted agent and one
// node: the page's prompt comes back to it as chat.user and session.event,
// and a second page in the same workspace sees it and sends its own.
func TestBrowserExample(t *testing.T) {
	nodeBin, dir, artifacts := browserPrereqs(t)
	e := newEnv(t)
	n := e.node("ex", nil)

	// The guide's prompt, as its example sends it; then a second user's.
	const prompt1 = "Propose a refactor plan for auth middleware."
	const prompt2 = "and from another tab [chunks=4] [delay=20ms]"

	runNodeTest(t, nodeBin, dir, "example.test.mjs", 2*time.Minute,
		"TANDEM_URL="+n.URL(),
		"TANDEM_PROMPT="+prompt1,
		"TANDEM_REPLY="+mockagent.Reply(prompt1),
		"TANDEM_PROMPT2="+prompt2,
		"TANDEM_REPLY2="+mockagent.Reply(prompt2),
		"TANDEM_ARTIFACTS="+artifacts,
	)

	// What the pages received is the stream; each prompt reached the agent once.
	checkStream(t, readStream(t, e.rdb, "workspace-42", "default"))
	counts := e.promptsReceived(t)
	for _, p := range []string{prompt1, prompt2} {
		if counts[p] != 1 {
			t.Errorf("the agent received %q %d times", p, counts[p])
		}
	}
}
