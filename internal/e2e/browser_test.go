package e2e

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/tandem-dev/tandem/eventlog"
	"github.com/tandem-dev/tandem/internal/sandboxtest/mockagent"
)

// chromiumPath is Debian's Chromium; `make deps` installs it.
const chromiumPath = "/usr/bin/chromium"

// TestBrowserRoom drives the web client in headless Chromium
// (internal/e2e/browser/room.test.mjs, playwright-core) against a real stack:
// redis-server, the Sandbox Agent server with the scripted agent, and
// nodes b1 and a2 in none mode, plus node j with JWTs. Ann's page talks to
// a2; Bob's goes through a switchable proxy to b1, which also owns the
// workspace, so that killing b1 in the middle of a reply cuts Bob's
// stream and the agent's owner at once. The script asks for the kill and
// the switch over a small control endpoint served here.
//
// It needs Chromium and the npm packages of internal/e2e/browser (`make deps`
// installs both); without them it fails, it never skips.
func TestBrowserRoom(t *testing.T) {
	nodeBin, dir, artifacts := browserPrereqs(t)

	e := newEnv(t)
	secret := "browser-test-secret-0123456789abcdef"
	b1 := e.node("b1", nil)
	a2 := e.node("a2", nil)
	j := e.node("j", map[string]string{"TANDEM_AUTH": "jwt", "TANDEM_JWT_SECRET": secret})

	// The room, owned by b1.
	const ws = "room"
	if code := call(t, "PUT", b1.URL()+"/v1/workspaces/"+ws, nil, nil, nil); code != 201 {
		t.Fatalf("PUT workspace: %d", code)
	}
	if code := call(t, "POST", b1.URL()+"/v1/workspaces/"+ws+"/sessions", map[string]string{"id": "default"}, nil, nil); code != 201 {
		t.Fatalf("create session: %d", code)
	}
	if owner := waitOwner(t, b1, ws, "", 10*time.Second); owner != "b1" {
		t.Fatalf("owner is %s, want b1", owner)
	}

	// The JWT node's workspace, created by an admin; carol is a member.
	mint := func(sub, role string, wss ...string) string {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"sub": sub, "role": role, "workspaces": wss,
			"exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(),
		}).SignedString([]byte(secret))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	const jws = "jwt-room"
	if code := call(t, "PUT", j.URL()+"/v1/workspaces/"+jws, nil, map[string]string{"Authorization": "Bearer " + mint("root", "admin", "*")}, nil); code != 201 {
		t.Fatalf("PUT %s on the JWT node: %d", jws, code)
	}

	proxy := startSwitchProxy(t, b1.addr)

	// The script's requests: kill b1 (and take the proxy down, so that
	// Bob's EventSource gets 502s and gives up), then move it to a2.
	mux := http.NewServeMux()
	mux.HandleFunc("POST /kill-b1", func(w http.ResponseWriter, r *http.Request) {
		proxy.setTarget("")
		b1.kill()
		t.Logf("control: b1 killed; the proxy answers 502")
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("POST /switch-to-a2", func(w http.ResponseWriter, r *http.Request) {
		proxy.setTarget(a2.addr)
		t.Logf("control: the proxy forwards to a2")
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("POST /drop-bob", func(w http.ResponseWriter, r *http.Request) {
		proxy.setTarget(a2.addr) // same node: only the connections drop
		t.Logf("control: bob's connections dropped")
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("POST /lose-stream", func(w http.ResponseWriter, r *http.Request) {
		// As if Redis lost the session's stream: the next event starts a
		// new generation, and every cursor of the old one gets a reset.
		if err := e.rdb.Del(r.Context(), eventlog.StreamKey(ws, "default"), eventlog.StateKey(ws, "default")).Err(); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		t.Logf("control: the session's stream was deleted")
		io.WriteString(w, "ok\n")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctl := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go ctl.Serve(ln)
	t.Cleanup(func() { ctl.Close() })

	prompt1 := "hello from ann [chunks=12] [delay=60ms] [tool]"
	prompt2 := "tell us a long story about two riders on a tandem bicycle climbing at dawn [chunks=40] [delay=100ms]"
	prompt3 := "hi from carol [chunks=4] [delay=20ms]"
	prompt4 := "after a dropped connection [chunks=5] [delay=20ms]"
	prompt5 := "after the stream was lost [chunks=5] [delay=20ms]"

	runNodeTest(t, nodeBin, dir, "room.test.mjs", 4*time.Minute,
		"TANDEM_ANN_URL="+a2.URL(),
		"TANDEM_BOB_URL="+proxy.URL(),
		"TANDEM_JWT_URL="+j.URL(),
		"TANDEM_JWT_TOKEN="+mint("carol", "member", "jwt-*"),
		"TANDEM_CONTROL_URL=http://"+ln.Addr().String(),
		"TANDEM_WS="+ws,
		"TANDEM_JWT_WS="+jws,
		"TANDEM_PROMPT1="+prompt1,
		"TANDEM_REPLY1="+mockagent.Reply(prompt1),
		"TANDEM_PROMPT2="+prompt2,
		"TANDEM_REPLY2="+mockagent.Reply(prompt2),
		"TANDEM_PROMPT3="+prompt3,
		"TANDEM_REPLY3="+mockagent.Reply(prompt3),
		"TANDEM_PROMPT4="+prompt4,
		"TANDEM_REPLY4="+mockagent.Reply(prompt4),
		"TANDEM_PROMPT5="+prompt5,
		"TANDEM_REPLY5="+mockagent.Reply(prompt5),
		"TANDEM_ARTIFACTS="+artifacts,
	)

	// What the pages showed agrees with the stream itself.
	entries := readStream(t, e.rdb, ws, "default")
	checkStream(t, entries)
	counts := e.promptsReceived(t)
	for _, p := range []string{prompt1, prompt2, prompt4, prompt5} {
		if counts[p] != 1 {
			t.Errorf("the agent received %q %d times", p, counts[p])
		}
	}
}

// browserPrereqs checks what the browser tests need (Debian's Chromium,
// Node.js, internal/e2e/browser's packages) and returns node's path, the
// tests' directory and the directory of their screenshots.
func browserPrereqs(t *testing.T) (nodeBin, dir, artifacts string) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("%s is missing: run `make browser-deps` (apt-get install chromium)", chromiumPath)
	}
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is missing: the browser tests need Node.js 20+ and npm")
	}
	dir = filepath.Join(repoRoot(), "internal", "e2e", "browser")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core", "package.json")); err != nil {
		t.Fatal("internal/e2e/browser/node_modules/playwright-core is missing: run `make browser-deps` (npm ci in internal/e2e/browser)")
	}
	artifacts = filepath.Join(repoRoot(), "internal", "e2e", "artifacts")
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	return nodeBin, dir, artifacts
}

// runNodeTest runs script (node --test) in dir with env added to the
// test's, Chromium's path among it, logging its output, within timeout;
// the test fails with it.
func runNodeTest(t *testing.T, nodeBin, dir, script string, timeout time.Duration, env ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, nodeBin, "--test-reporter=spec", script)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "TANDEM_CHROMIUM="+chromiumPath, "NO_COLOR=1"), env...)
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
		t.Fatalf("%s failed after %v: %v", script, time.Since(start).Round(time.Millisecond), err)
	}
	t.Logf("%s passed in %v", script, time.Since(start).Round(time.Millisecond))
}
