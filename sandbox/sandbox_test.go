package sandbox_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tandem-dev/tandem/acp"
	"github.com/tandem-dev/tandem/internal/sandboxtest"
	"github.com/tandem-dev/tandem/internal/sandboxtest/mockagent"
	"github.com/tandem-dev/tandem/sandbox"
)

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestStatic(t *testing.T) {
	srv := sandboxtest.Start(t, sandboxtest.Options{KeepBuiltinMock: true})
	ctx := testContext(t)
	s := &sandbox.Static{URL: srv.URL()}
	t.Run("OK", func(t *testing.T) {
		if err := s.EnsureServer(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ErrCannotRestart", func(t *testing.T) {
		srv.Kill()
		if err := s.EnsureServer(ctx); !errors.Is(err, sandbox.ErrCannotRestart) {
			t.Fatalf("got %v", err)
		}
	})
}

// groupMembers lists the processes of process group pgid.
func groupMembers(t testing.TB, pgid int) []int {
	t.Helper()
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", d.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp …; comm may contain spaces.
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(f) > 2 && f[0] != "Z" && f[2] == strconv.Itoa(pgid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// allStopped reports whether every thread of process pid is stopped.
func allStopped(t testing.TB, pid int) bool {
	t.Helper()
	tasks, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "task"))
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "task", task.Name(), "stat"))
		if err != nil {
			continue
		}
		if f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:])); len(f) == 0 || f[0] != "T" {
			return false
		}
	}
	return true
}

func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startAgent opens an ACP connection, which makes the server start an agent
// process, and checks that the agent is ours.
func startAgent(t testing.TB, ctx context.Context, url, token string) {
	t.Helper()
	client, err := acp.New(acp.Config{BaseURL: url, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := client.Dial(ctx, acp.ConnConfig{ServerID: "agent-check", Agent: sandbox.MockAgent})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Call(ctx, acp.MethodInitialize, acp.InitializeParams{ProtocolVersion: 1}); err != nil {
		t.Fatal(err)
	}
	res, err := conn.Call(ctx, acp.MethodSessionNew, acp.NewSessionParams{Cwd: "/tmp"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(res), "mock_") {
		t.Fatalf("session/new answered %s: not tandem-mockagent", res)
	}
	_ = mockagent.Reply // the agent behind "mock" is package mockagent's
}

func TestLocal(t *testing.T) {
	ctx := testContext(t)
	local, err := sandbox.NewLocal(sandbox.LocalConfig{
		Bin:           sandboxtest.Binary(t),
		DataDir:       t.TempDir(),
		AgentLauncher: sandboxtest.MockAgent(t),
		MinBackoff:    20 * time.Millisecond,
		StopGrace:     time.Second,
		Logger:        slog.New(slog.NewTextHandler(testWriter{t}, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	// EnsureServer before Run waits for it.
	early := make(chan error, 1)
	go func() { early <- local.EnsureServer(ctx) }()
	runCtx, stop := context.WithCancel(ctx)
	runDone := make(chan error, 1)
	go func() { runDone <- local.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-runDone })

	if err := <-early; err != nil {
		t.Fatal(err)
	}
	if err := local.EnsureServer(ctx); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(local.BaseURL(), "http://127.0.0.1:") {
		t.Fatalf("BaseURL %s", local.BaseURL())
	}
	startAgent(t, ctx, local.BaseURL(), local.Token())

	t.Run("RestartsKilledChild", func(t *testing.T) {
		pid := local.Pid()
		members := groupMembers(t, pid)
		if len(members) < 2 {
			t.Fatalf("group %d has %v: want the server and its agent", pid, members)
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "a new child", func() bool { p := local.Pid(); return p != 0 && p != pid })
		if err := local.EnsureServer(ctx); err != nil {
			t.Fatal(err)
		}
		// The agent did not outlive its server.
		waitUntil(t, "the old group to be gone", func() bool { return len(groupMembers(t, pid)) == 0 })
		startAgent(t, ctx, local.BaseURL(), local.Token())
	})

	t.Run("EnsureServerRestartsUnhealthy", func(t *testing.T) {
		pid := local.Pid()
		if err := syscall.Kill(-pid, syscall.SIGSTOP); err != nil { // alive but not answering
			t.Fatal(err)
		}
		// A busy process takes a moment to stop every thread.
		waitUntil(t, "the server to stop", func() bool { return allStopped(t, pid) })
		start := time.Now()
		if err := local.EnsureServer(ctx); err != nil {
			t.Fatal(err)
		}
		if p := local.Pid(); p == pid || p == 0 {
			t.Fatalf("pid %d after EnsureServer, was %d", p, pid)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("EnsureServer took %v", d)
		}
		waitUntil(t, "the stopped group to be gone", func() bool { return len(groupMembers(t, pid)) == 0 })
		c, _ := acp.New(acp.Config{BaseURL: local.BaseURL(), Token: local.Token()})
		if err := c.Health(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("RunReturnsAfterChildIsGone", func(t *testing.T) {
		startAgent(t, ctx, local.BaseURL(), local.Token())
		pid := local.Pid()
		stop()
		select {
		case err := <-runDone:
			runDone <- err // for the cleanup
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return")
		}
		if members := groupMembers(t, pid); len(members) != 0 {
			t.Fatalf("left running: %v", members)
		}
		if err := local.EnsureServer(ctx); !errors.Is(err, sandbox.ErrNotRunning) {
			t.Fatalf("EnsureServer after Run: %v", err)
		}
		if err := local.Run(ctx); err == nil {
			t.Fatal("Run ran twice")
		}
	})
}

// testWriter sends log lines to the test's log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func TestLocalBadBinary(t *testing.T) {
	local, err := sandbox.NewLocal(sandbox.LocalConfig{Bin: filepath.Join(t.TempDir(), "missing"), DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- local.Run(testContext(t)) }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Run succeeded without a binary")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run keeps retrying a missing binary")
	}
}

func TestLocalConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  sandbox.LocalConfig
	}{
		{"ErrNoBin", sandbox.LocalConfig{DataDir: "/tmp"}},
		{"ErrNoDataDir", sandbox.LocalConfig{Bin: "/bin/true"}},
		{"ErrBadPort", sandbox.LocalConfig{Bin: "/bin/true", DataDir: "/tmp", Port: 70000}},
		{"ErrNegativeDuration", sandbox.LocalConfig{Bin: "/bin/true", DataDir: "/tmp", MinBackoff: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
