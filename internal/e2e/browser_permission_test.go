package e2e

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBrowserPermission drives two pages in headless Chromium
// (internal/e2e/browser/permission.test.mjs) against redis-server, the
// Sandbox Agent server with the scripted agent and two nodes: ann's page
// on node a, bob's on node b. The agent asks for a permission; both pages
// show the card; bob approves from his; ann's card shows who chose what,
// live, and the agent goes on with that option. Then bob picks a mode in
// the session header and ann's header follows.
func TestBrowserPermission(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("%s is missing: run `make deps` (apt-get install chromium)", chromiumPath)
	}
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is missing: the browser tests need Node.js 20+ and npm")
	}
	dir := filepath.Join(repoRoot(), "internal", "e2e", "browser")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core", "package.json")); err != nil {
		t.Fatal("internal/e2e/browser/node_modules/playwright-core is missing: run `make deps` (npm ci in internal/e2e/browser)")
	}
	artifacts := filepath.Join(repoRoot(), "internal", "e2e", "artifacts")
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	a := e.node("a", nil)
	b := e.node("b", nil)
	const ws = "perm-browser"
	if code := call(t, "PUT", a.URL()+"/v1/workspaces/"+ws, nil, nil, nil); code != 201 {
		t.Fatalf("PUT workspace: %d", code)
	}
	if code := call(t, "POST", a.URL()+"/v1/workspaces/"+ws+"/sessions", map[string]string{"id": "default"}, nil, nil); code != 201 {
		t.Fatalf("create session: %d", code)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, nodeBin, "--test-reporter=spec", "permission.test.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"TANDEM_CHROMIUM="+chromiumPath,
		"TANDEM_ANN_URL="+a.URL(),
		"TANDEM_BOB_URL="+b.URL(),
		"TANDEM_WS="+ws,
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
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		t.Log(sc.Text())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("permission.test.mjs failed: %v", err)
	}

	// What the pages showed is what the stream holds: bob answered once.
	entries := readStream(t, e.rdb, ws, "default")
	checkStream(t, entries)
	var resolved []streamEntry
	for _, en := range entries {
		if en.Type == "permission.resolved" {
			resolved = append(resolved, en)
		}
	}
	if len(resolved) != 1 || resolved[0].Body["by"] != "bob" || resolved[0].Body["optionId"] != "allow-always" {
		t.Fatalf("permission.resolved %+v", resolved)
	}
	if awaited, unawaited, res := e.agentResponses(t); awaited != 1 || unawaited != 0 || !strings.Contains(res[0], "allow-always") {
		t.Fatalf("the agent got %d answers (%d unawaited): %v", awaited, unawaited, res)
	}
}
