// Package sandboxtest runs real Sandbox Agent servers for tests, with the
// scripted agent of package mockagent installed as their "mock" agent.
//
// # Usage
//
//	srv := sandboxtest.Start(t, sandboxtest.Options{})
//	client, _ := acp.New(acp.Config{BaseURL: srv.URL()})
//	// POST /v1/acp/{id}?agent=mock runs cmd/tandem-mockagent
//	srv.Kill()    // SIGKILL, as a crash
//	srv.Restart() // same port and data dir; ACP connections are gone
//
// The pinned binary is found or installed by scripts/install-sandbox-agent.sh
// (which honours TANDEM_SANDBOX_AGENT_BIN), once per test binary; the mock
// agent is built once per test binary.
//
// # Concurrency properties
//
// The package-level helpers are safe for parallel tests. A Server's methods
// must be called from one goroutine at a time.
package sandboxtest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandem-dev/tandem/internal/proc"
	"github.com/tandem-dev/tandem/sandbox"
)

// Version is the pinned Sandbox Agent version.
const Version = "0.4.2"

var (
	binOnce sync.Once
	binPath string
	binErr  error

	mockOnce sync.Once
	mockPath string
	mockErr  error
)

// repoRoot is the module's root directory, found from this file's path.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(filepath.Dir(file)))
}

// Binary returns the path of the pinned sandbox-agent binary, installing it
// into <repo>/.cache the first time on this machine.
func Binary(tb testing.TB) string {
	tb.Helper()
	binOnce.Do(func() {
		cmd := exec.Command("bash", filepath.Join(repoRoot(), "scripts", "install-sandbox-agent.sh"))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			binErr = &installError{err: err, stderr: stderr.String()}
			return
		}
		binPath = strings.TrimSpace(string(out))
	})
	if binErr != nil {
		tb.Fatalf("sandboxtest: install sandbox-agent %s: %v", Version, binErr)
	}
	return binPath
}

type installError struct {
	err    error
	stderr string
}

func (e *installError) Error() string { return e.err.Error() + ": " + e.stderr }

// MockAgent returns the path of cmd/tandem-mockagent, built once per test
// binary into <repo>/.cache/sandboxtest.
func MockAgent(tb testing.TB) string {
	tb.Helper()
	mockOnce.Do(func() {
		dir := filepath.Join(repoRoot(), ".cache", "sandboxtest")
		if mockErr = os.MkdirAll(dir, 0o755); mockErr != nil {
			return
		}
		// Build under a private name and rename, so that test binaries of
		// other packages building at the same time, or running the previous
		// build, never see a partial file.
		tmp, err := os.CreateTemp(dir, "tandem-mockagent-*")
		if err != nil {
			mockErr = err
			return
		}
		tmp.Close()
		defer os.Remove(tmp.Name())
		cmd := exec.Command("go", "build", "-o", tmp.Name(), "./cmd/tandem-mockagent")
		cmd.Dir = repoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			mockErr = &installError{err: err, stderr: string(out)}
			return
		}
		mockPath = filepath.Join(dir, "tandem-mockagent")
		mockErr = os.Rename(tmp.Name(), mockPath)
	})
	if mockErr != nil {
		tb.Fatalf("sandboxtest: build tandem-mockagent: %v", mockErr)
	}
	return mockPath
}

// Options configures Start.
type Options struct {
	// Token, when set, is required by the server. Empty: no token.
	Token string

	// KeepBuiltinMock leaves Sandbox Agent's own echoing mock agent in place
	// instead of installing tandem-mockagent.
	KeepBuiltinMock bool

	// PromptLog, when set, is a file every agent process appends each
	// prompt it receives to (see mockagent.ServeLogged).
	PromptLog string
}

// Server is a Sandbox Agent server run for one test, stopped by its cleanup.
type Server struct {
	tb   testing.TB
	cfg  sandbox.ProcessConfig
	proc *sandbox.Process
	log  *os.File
}

// Start runs a server on a free loopback port with its own HOME and
// XDG_DATA_HOME under tb.TempDir(), returning once it is healthy.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	port, err := proc.FreePort()
	if err != nil {
		tb.Fatalf("sandboxtest: %v", err)
	}
	dir := tb.TempDir()
	log, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		tb.Fatalf("sandboxtest: %v", err)
	}
	s := &Server{
		tb: tb,
		cfg: sandbox.ProcessConfig{
			Bin: Binary(tb), DataDir: filepath.Join(dir, "home"), Port: port, Token: opts.Token, Output: log,
		},
		log: log,
	}
	if !opts.KeepBuiltinMock {
		s.cfg.AgentLauncher = MockAgent(tb)
		if opts.PromptLog != "" {
			s.cfg.AgentLauncher = LoggingLauncher(tb, opts.PromptLog)
		}
	}
	tb.Cleanup(func() {
		s.Stop()
		log.Close()
		if tb.Failed() {
			if b, err := os.ReadFile(log.Name()); err == nil {
				tb.Logf("sandbox-agent output (%s):\n%s", log.Name(), tail(b, 4000))
			}
		}
	})
	s.start()
	return s
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

func (s *Server) start() {
	s.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := sandbox.StartProcess(ctx, s.cfg)
	if err != nil {
		s.tb.Fatalf("sandboxtest: %v", err)
	}
	s.proc = p
}

// URL is the server's base URL, such as "http://127.0.0.1:40123".
func (s *Server) URL() string { return s.proc.BaseURL() }

// Port is the server's port.
func (s *Server) Port() int { return s.cfg.Port }

// DataDir is the server's HOME; XDG_DATA_HOME is DataDir()/data.
func (s *Server) DataDir() string { return s.cfg.DataDir }

// Pid is the server's process id (and process group id).
func (s *Server) Pid() int { return s.proc.Pid() }

// Kill sends SIGKILL to the server's process group, as in a crash, and waits
// for it to exit.
func (s *Server) Kill() {
	s.tb.Helper()
	if s.proc != nil {
		s.proc.Kill()
	}
}

// Restart starts the server again on the same port and data dir (after
// killing it if it still runs), returning once it is healthy. Its ACP
// connections are lost, as with a real restart.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Kill()
	s.start()
}

// Stop stops the server (SIGTERM, then SIGKILL after 2 s) and waits for it.
// The cleanup registered by Start calls it.
func (s *Server) Stop() {
	s.tb.Helper()
	if s.proc != nil {
		s.proc.Stop(2 * time.Second)
	}
}

// LoggingLauncher writes a launcher that runs tandem-mockagent with its
// prompt log going to path, and returns the launcher's path.
func LoggingLauncher(tb testing.TB, path string) string {
	tb.Helper()
	agent := MockAgent(tb)
	launcher := filepath.Join(tb.TempDir(), "mockagent-logged")
	script := "#!/bin/sh\nTANDEM_MOCKAGENT_LOG='" + strings.ReplaceAll(path, "'", `'\''`) + "' exec '" + strings.ReplaceAll(agent, "'", `'\''`) + "' \"$@\"\n"
	if err := os.WriteFile(launcher, []byte(script), 0o755); err != nil {
		tb.Fatalf("sandboxtest: %v", err)
	}
	return launcher
}
