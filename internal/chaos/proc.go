package chaos

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/tandem-dev/tandem/internal/proc"
)

// service is one restartable child process of the campaign (a node, nginx),
// started with internal/proc (its own process group; nothing outlives a
// driver that dies). It can be started again after it exited, with the
// same command line.
type service struct {
	name string
	path string
	args []string
	env  []string // added to the driver's environment
	dir  string
	log  string // file that receives stdout and stderr (appended)

	mu sync.Mutex
	p  *proc.Proc // the last one started
}

// start runs the process; it fails when it is already running.
func (s *service) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.p != nil && !s.p.Exited() {
		return fmt.Errorf("%s: already running", s.name)
	}
	f, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.path, s.args...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), s.env...)
	cmd.Stdout, cmd.Stderr = f, f
	p, err := proc.Start(cmd)
	f.Close() // the child has its own copy
	if err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	s.p = p
	return nil
}

func (s *service) current() *proc.Proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.p
}

// running reports whether the process has been started and not reaped.
func (s *service) running() bool {
	p := s.current()
	return p != nil && !p.Exited()
}

// signal sends sig to the process group; it does nothing once the process
// was reaped (its pid may be someone else's by then).
func (s *service) signal(sig syscall.Signal) error {
	p := s.current()
	if p == nil || p.Signal(sig) != nil {
		return errors.New(s.name + ": not running")
	}
	return nil
}

// kill sends SIGKILL (and SIGCONT, for a stopped process) and waits until it
// was reaped.
func (s *service) kill() {
	if p := s.current(); p != nil {
		p.Kill()
	}
}

// term sends SIGTERM and waits for the exit; after grace it kills. It
// reports whether the process exited by itself.
func (s *service) term(grace time.Duration) bool {
	p := s.current()
	return p == nil || p.Stop(grace)
}
