// Package redistest starts real redis-server processes for tests.
//
// Usage
//
//	srv := redistest.Start(t, redistest.Options{AppendOnly: true})
//	rdb := srv.Client(t)
//	srv.Restart(t) // same port, same data directory
//
// Every server listens on a free loopback port, keeps its files in a directory
// from tb.TempDir and is killed by a tb.Cleanup, so a test never leaves one
// behind and never touches a Redis it did not start.
//
// The load tool and the fault campaign, which have no testing.TB, start
// theirs with Launch (and Relaunch after a Kill) and stop them themselves:
// one way to run redis-server for every harness.
//
// # Concurrency properties
//
// A Server's methods may be called from any goroutine, but Restart, Kill and
// Stop are meant to be called by the test goroutine; they are serialised.
package redistest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tandem-dev/tandem/internal/proc"
)

// Options configure a test server. The zero value is a plain in-memory server.
type Options struct {
	// AppendOnly turns on appendonly with fsync always, so a restart keeps
	// every acknowledged write.
	AppendOnly bool
	// Port to listen on; 0 picks a free one.
	Port int
	// Args are extra redis-server arguments ("--cluster-enabled", "yes", ...).
	Args []string
	// Config, when set, is written to a configuration file the server
	// starts with (a sentinel needs one it can rewrite).
	Config string

	// Dir is the server's working directory (Launch only; Start uses
	// tb.TempDir). Required by Launch.
	Dir string
	// Bin is the redis-server binary; empty: redis-server from PATH.
	Bin string
	// Output also receives the server's output (nil: only the last 64 KiB
	// are kept, for the error of a server that does not answer).
	Output io.Writer
	// StartTimeout bounds the wait for the first PING (zero: 10 s).
	StartTimeout time.Duration
}

// Server is one redis-server child process.
type Server struct {
	opts Options
	dir  string
	port int

	mu  sync.Mutex
	p   *proc.Proc // nil while not running
	out *logBuffer
}

// Binary returns the path of redis-server. It fails the test, never skips it,
// when the binary is missing: `make test` installs it.
func Binary(tb testing.TB) string {
	tb.Helper()
	p, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Fatalf("redis-server not found on PATH (make test installs it with apt-get): %v", err)
	}
	return p
}

// Start starts a server and registers its cleanup.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	opts.Dir = tb.TempDir()
	if opts.Port == 0 {
		opts.Port = FreePort(tb)
	}
	s, err := Launch(opts)
	if err != nil {
		tb.Fatalf("start redis-server: %v", err)
	}
	tb.Cleanup(s.Kill)
	return s
}

// Launch starts a server in opts.Dir, on opts.Port or a free port, and
// returns once it answers PING. The caller stops it (Kill or Stop).
func Launch(opts Options) (*Server, error) {
	if opts.Dir == "" {
		return nil, errors.New("redistest: Launch needs a directory")
	}
	s := &Server{opts: opts, dir: opts.Dir, port: opts.Port}
	if s.port == 0 {
		port, err := proc.FreePort()
		if err != nil {
			return nil, err
		}
		s.port = port
	}
	if err := s.start(); err != nil {
		return nil, err
	}
	return s, nil
}

// FreePort is proc.FreePort for tests: a TCP port on 127.0.0.1 that was
// free a moment ago.
func FreePort(tb testing.TB) int {
	tb.Helper()
	port, err := proc.FreePort()
	if err != nil {
		tb.Fatalf("free port: %v", err)
	}
	return port
}

// Addr is host:port of the server.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// Port is the server's port on 127.0.0.1.
func (s *Server) Port() int { return s.port }

// URL is a redis:// URL for the server's database 0.
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// Dir is the server's working directory (AOF and RDB files live there).
func (s *Server) Dir() string { return s.dir }

// Client returns a go-redis client for the server, closed by a cleanup.
func (s *Server) Client(tb testing.TB) *redis.Client {
	tb.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr()})
	tb.Cleanup(func() { c.Close() })
	return c
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	args := []string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--dir", s.dir,
		"--save", "",
		"--daemonize", "no",
		"--protected-mode", "yes",
		"--loglevel", "warning",
		"--logfile", "",
		// A replica syncs at once, not after the default 5s wait for more
		// replicas to share a diskless transfer.
		"--repl-diskless-sync-delay", "0",
	}
	if s.opts.AppendOnly {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	}
	args = append(args, s.opts.Args...)
	if s.opts.Config != "" {
		conf := filepath.Join(s.dir, "redis.conf")
		if _, err := os.Stat(conf); err != nil { // a restart keeps what the server rewrote
			if err := os.WriteFile(conf, []byte(s.opts.Config), 0o600); err != nil {
				return err
			}
		}
		args = append([]string{conf}, args...)
	}
	bin := s.opts.Bin
	if bin == "" {
		bin = "redis-server"
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = s.dir
	s.out = &logBuffer{}
	var out io.Writer = s.out
	if s.opts.Output != nil {
		out = io.MultiWriter(s.out, s.opts.Output)
	}
	cmd.Stdout = out
	cmd.Stderr = out
	p, err := proc.Start(cmd)
	if err != nil {
		return err
	}
	timeout := s.opts.StartTimeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && !p.Exited() {
		c, err := net.DialTimeout("tcp", s.Addr(), 200*time.Millisecond)
		if err == nil {
			ok := ping(c)
			c.Close()
			if ok {
				s.p = p
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.Kill()
	return fmt.Errorf("redis-server on %s did not answer PING within %v: %s", s.Addr(), timeout, s.out.String())
}

func ping(c net.Conn) bool {
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "+PONG")
}

// Kill stops the server with SIGKILL and waits until its port is closed.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.p == nil {
		return
	}
	s.p.Kill()
	s.p = nil
}

// Stop stops the server with SIGTERM, and SIGKILL after grace, and waits
// for it.
func (s *Server) Stop(grace time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.p == nil {
		return
	}
	s.p.Stop(grace)
	s.p = nil
}

// Running reports whether the server was started and has not exited (a
// paused server is running).
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.p != nil && !s.p.Exited()
}

// Restart kills the server and starts it again on the same port with the same
// directory, so an appendonly server comes back with its data.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	if err := s.Relaunch(); err != nil {
		tb.Fatalf("restart redis-server: %v", err)
	}
}

// Relaunch is Restart for callers without a testing.TB: it kills the
// server if it still runs and starts it again on the same port and
// directory.
func (s *Server) Relaunch() error {
	s.Kill()
	return s.start()
}

// signal sends sig to the server's process group, if it runs.
func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.p != nil {
		_ = s.p.Signal(sig)
	}
}

// Do runs one command on a fresh connection; handy for CONFIG/DEBUG calls.
func (s *Server) Do(ctx context.Context, args ...any) (any, error) {
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1})
	defer c.Close()
	return c.Do(ctx, args...).Result()
}

type logBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.b) < 64<<10 {
		l.b = append(l.b, p...)
	}
	return len(p), nil
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b)
}
