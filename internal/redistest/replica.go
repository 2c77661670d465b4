package redistest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// StartReplica starts a server that replicates master (REPLICAOF) and
// waits until it is in sync.
func StartReplica(tb testing.TB, master *Server, opts Options) *Server {
	tb.Helper()
	opts.Args = append(opts.Args, "--replicaof", "127.0.0.1", strconv.Itoa(master.port))
	r := Start(tb, opts)
	r.WaitInSync(tb)
	return r
}

// WaitInSync waits until the replica's link to its master is up and no
// sync is in progress.
func (s *Server) WaitInSync(tb testing.TB) {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		v, err := s.Do(context.Background(), "INFO", "replication")
		info := fmt.Sprint(v)
		if err == nil && strings.Contains(info, "master_link_status:up") && !strings.Contains(info, "master_sync_in_progress:1") {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	tb.Fatalf("replica %s not in sync within 20s", s.Addr())
}

// Pause stops the server with SIGSTOP: it keeps its connections but
// answers nothing (a replica stops acknowledging) until Resume.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume continues a paused server (SIGCONT).
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		syscall.Kill(-s.cmd.Process.Pid, sig)
	}
}
