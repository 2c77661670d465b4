// Package jsclient runs the JavaScript client's tests (clients/js/test,
// node --test) from go test, so that make test covers them. They start
// their own redis-server, Sandbox Agent server and Tandem nodes.
package jsclient

import (
	"context"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestJavaScriptClient(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Redis, the Sandbox Agent server and Tandem nodes")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is required for the JavaScript client's tests (clients/js/test): install Node.js 20 or newer")
	}
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Dir(file)
	// npm ci when node_modules is missing or older than the lock file.
	ensure := exec.Command("bash", filepath.Join(dir, "..", "..", "scripts", "ensure-js-client.sh"))
	if out, err := ensure.CombinedOutput(); err != nil {
		t.Fatalf("scripts/ensure-js-client.sh: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test", "--test-reporter=spec", "--test-concurrency=1", "test/")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	t.Logf("node --test clients/js/test:\n%s", out)
	if err != nil {
		t.Fatalf("node --test clients/js/test: %v", err)
	}
	if !strings.Contains(string(out), "ℹ fail 0") {
		t.Fatalf("node --test clients/js/test: no summary with 0 failures")
	}
}
