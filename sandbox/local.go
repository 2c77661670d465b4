package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/tandem-dev/tandem/acp"
	"github.com/tandem-dev/tandem/internal/proc"
	"github.com/tandem-dev/tandem/internal/retry"
)

// LocalConfig configures a Local provider.
type LocalConfig struct {
	// Bin is the sandbox-agent binary. Required.
	Bin string

	// DataDir is the server's home (see ProcessConfig.DataDir). Required.
	DataDir string

	// Port on 127.0.0.1, kept across restarts. Zero: a port free when
	// NewLocal runs.
	Port int

	// Token is the bearer token the server requires. Empty: a random one,
	// made by NewLocal and kept across restarts, so that nothing else on
	// the host (another user's process, a web page reaching the loopback
	// port) can drive the agents.
	Token string

	// PassEnv names the variables of the node's environment the server
	// and its agents get (see ProcessConfig.PassEnv).
	PassEnv []string

	// AgentLauncher replaces the "mock" agent's launcher at every start (see
	// ProcessConfig.AgentLauncher). Empty: agents are left as they are.
	AgentLauncher string

	// StartTimeout bounds each start. Zero: 15 s.
	StartTimeout time.Duration

	// StopGrace is how long a stopping server gets after SIGTERM before
	// SIGKILL. Zero: 3 s.
	StopGrace time.Duration

	// MinBackoff and MaxBackoff bound the delay before restarting a server
	// that exited or failed to start; it doubles on each failure in a row.
	// Zero: 100 ms and 5 s.
	MinBackoff, MaxBackoff time.Duration

	// Output receives the server's stdout and stderr. Nil: discarded.
	Output *os.File

	// Logger reports exits and restarts. Nil: nothing is logged.
	Logger *slog.Logger
}

// Validate reports a configuration that cannot work.
func (c LocalConfig) Validate() error {
	switch {
	case c.Bin == "":
		return errors.New("sandbox: local: no sandbox-agent binary")
	case c.DataDir == "":
		return errors.New("sandbox: local: no data dir")
	case c.Port < 0 || c.Port > 65535:
		return fmt.Errorf("sandbox: local: bad port %d", c.Port)
	case c.StartTimeout < 0 || c.StopGrace < 0 || c.MinBackoff < 0 || c.MaxBackoff < 0:
		return errors.New("sandbox: local: negative duration")
	}
	return ValidPassEnv(c.PassEnv)
}

// Local runs a Sandbox Agent server as a child process, on 127.0.0.1 only,
// and restarts it when it exits or stops answering. Run supervises it.
type Local struct {
	cfg                           ProcessConfig
	grace, minBackoff, maxBackoff time.Duration
	log                           *slog.Logger

	requests chan chan error // EnsureServer to Run
	runOnce  sync.Once
	runDone  chan struct{} // closed when Run returns

	mu   sync.Mutex
	proc *Process // the current child, nil between two
}

// NewLocal returns a Local for cfg. It starts nothing: see Run.
func NewLocal(cfg LocalConfig) (*Local, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Port == 0 {
		port, err := proc.FreePort()
		if err != nil {
			return nil, fmt.Errorf("sandbox: local: %w", err)
		}
		cfg.Port = port
	}
	if cfg.Token == "" {
		b := make([]byte, 32)
		_, _ = rand.Read(b) // never fails (crypto/rand)
		cfg.Token = hex.EncodeToString(b)
	}
	l := &Local{
		cfg: ProcessConfig{
			Bin: cfg.Bin, DataDir: cfg.DataDir, Port: cfg.Port, AgentLauncher: cfg.AgentLauncher,
			Token: cfg.Token, PassEnv: cfg.PassEnv,
			StartTimeout: cfg.StartTimeout, Output: cfg.Output,
		},
		grace:      orDefault(cfg.StopGrace, 3*time.Second),
		minBackoff: orDefault(cfg.MinBackoff, 100*time.Millisecond),
		maxBackoff: orDefault(cfg.MaxBackoff, 5*time.Second),
		log:        cfg.Logger,
		requests:   make(chan chan error),
		runDone:    make(chan struct{}),
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	l.maxBackoff = max(l.maxBackoff, l.minBackoff)
	return l, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// BaseURL implements Provider.
func (l *Local) BaseURL() string { return fmt.Sprintf("http://127.0.0.1:%d", l.cfg.Port) }

// Token implements Provider: the server's own token.
func (l *Local) Token() string { return l.cfg.Token }

// DataDir is the server's home; workspaces' working directories are
// under it (WorkspaceDir).
func (l *Local) DataDir() string { return l.cfg.DataDir }

// WorkspaceDir returns (creating it) the working directory of ws's agent
// sessions: DataDir/workspaces/w-<ws>, so that workspaces do not share
// one. ws is a checked id ([A-Za-z0-9._-]), and the prefix keeps "." and
// ".." plain names. On failure it returns "" (the default cwd).
func (l *Local) WorkspaceDir(ws string) string {
	if ws == "" || strings.ContainsAny(ws, "/\\\x00") {
		return ""
	}
	dir, err := filepath.Abs(filepath.Join(l.cfg.DataDir, "workspaces", "w-"+ws))
	if err != nil {
		return ""
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		l.log.Warn("workspace directory", "dir", dir, "err", err)
		return ""
	}
	return dir
}

// Pid is the current server's process id, or 0 when none runs.
func (l *Local) Pid() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.proc == nil {
		return 0
	}
	return l.proc.Pid()
}

// Run starts the server and keeps it running: it restarts it, after a
// backoff, whenever it exits, and serves EnsureServer. It returns nil once ctx
// has ended and the server (with its process group) is gone, or an error when
// the binary cannot be run at all. A Local runs once: calling Run again
// returns an error.
func (l *Local) Run(ctx context.Context) error {
	first := false
	l.runOnce.Do(func() { first = true })
	if !first {
		return errors.New("sandbox: local: Run called twice")
	}
	defer close(l.runDone)

	var (
		proc      *Process
		startedAt time.Time
		waiters   []chan error // EnsureServer calls waiting for the next start
		startNow  = true
		backoff   = retry.Exponential(l.minBackoff, l.maxBackoff)
		again     = time.NewTimer(time.Hour)
		againC    <-chan time.Time
	)
	again.Stop()
	answer := func(err error) {
		for _, w := range waiters {
			w <- err
		}
		waiters = nil
	}
	setProc := func(p *Process) {
		l.mu.Lock()
		l.proc = p
		l.mu.Unlock()
		proc = p
	}
	// later schedules the next start after the next backoff, and returns
	// it for the log.
	later := func() time.Duration {
		d := backoff.NextBackOff()
		again.Reset(d)
		againC = again.C
		return d
	}
	defer func() {
		if proc != nil {
			proc.Stop(l.grace)
			setProc(nil)
		}
		answer(ctx.Err())
	}()

	for {
		if proc == nil && startNow {
			startNow = false
			p, err := StartProcess(ctx, l.cfg)
			switch {
			case err == nil:
				setProc(p)
				startedAt = time.Now()
				l.log.Info("sandbox agent server started", "url", p.BaseURL(), "pid", p.Pid())
				answer(nil)
			case ctx.Err() != nil:
				return nil
			case errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission):
				answer(err)
				return err
			default:
				answer(err)
				l.log.Warn("sandbox agent server failed to start", "err", err, "retry_in", later())
			}
		}
		var exited <-chan struct{}
		if proc != nil {
			exited = proc.Done()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-exited:
			pid, exitErr := proc.Pid(), proc.ExitErr()
			setProc(nil)
			if time.Since(startedAt) > 10*l.maxBackoff {
				backoff.Reset() // it had been running fine
			}
			l.log.Warn("sandbox agent server exited", "pid", pid, "err", exitErr, "restart_in", later())
		case <-againC:
			againC = nil
			startNow = true
		case w := <-l.requests:
			if proc != nil {
				hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				err := l.health(hctx)
				cancel()
				if err == nil {
					w <- nil
					continue
				}
				l.log.Warn("sandbox agent server unhealthy: restarting", "pid", proc.Pid(), "err", err)
				proc.Kill()
				setProc(nil)
			}
			// Someone waits: start now rather than after the backoff.
			waiters = append(waiters, w)
			again.Stop()
			againC = nil
			startNow = true
		}
	}
}

func (l *Local) health(ctx context.Context) error {
	c, err := acp.New(acp.Config{BaseURL: l.BaseURL(), Token: l.cfg.Token})
	if err != nil {
		return err
	}
	return c.Health(ctx)
}

// EnsureServer implements Provider: it returns nil at once when the server is
// healthy, else kills it, starts it again and returns once it is healthy (or
// with the error of that start). Run does the work: before Run has started,
// EnsureServer waits for it; after Run has returned, it fails with
// ErrNotRunning.
func (l *Local) EnsureServer(ctx context.Context) error {
	w := make(chan error, 1)
	select {
	case l.requests <- w:
	case <-l.runDone:
		return ErrNotRunning
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-w:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
