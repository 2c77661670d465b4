package e2e

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
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
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("%s is missing: run `make browser-deps` (apt-get install chromium)", chromiumPath)
	}
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is missing: the browser tests need Node.js 20+ and npm")
	}
	dir := filepath.Join(repoRoot(), "internal", "e2e", "browser")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core", "package.json")); err != nil {
		t.Fatal("internal/e2e/browser/node_modules/playwright-core is missing: run `make browser-deps` (npm ci in internal/e2e/browser)")
	}
	artifacts := filepath.Join(repoRoot(), "internal", "e2e", "artifacts")
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	n := e.node("ex", nil)

	// The guide's prompt, as its example sends it; then a second user's.
	const prompt1 = "Propose a refactor plan for auth middleware."
	const prompt2 = "and from another tab [chunks=4] [delay=20ms]"

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, nodeBin, "--test-reporter=spec", "example.test.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"TANDEM_CHROMIUM="+chromiumPath,
		"TANDEM_URL="+n.URL(),
		"TANDEM_PROMPT="+prompt1,
		"TANDEM_REPLY="+mockagent.Reply(prompt1),
		"TANDEM_PROMPT2="+prompt2,
		"TANDEM_REPLY2="+mockagent.Reply(prompt2),
		"TANDEM_ARTIFACTS="+artifacts,
		"NO_COLOR=1",
	)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		t.Log(sc.Text())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("example.test.mjs failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
	}

	// What the pages received is the stream; each prompt reached the agent once.
	checkStream(t, readStream(t, e.rdb, "workspace-42", "default"))
	counts := e.promptsReceived(t)
	for _, p := range []string{prompt1, prompt2} {
		if counts[p] != 1 {
			t.Errorf("the agent received %q %d times", p, counts[p])
		}
	}
}
