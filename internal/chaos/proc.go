package chaos

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// proc is one child process of the campaign (redis-server, a node, nginx,
// the Node.js clients), the leader of its own process group so that a
// signal reaches everything it started. It can be started again after it
// exited, with the same command line.
type proc struct {
	name string
	path string
	args []string
	env  []string // added to the driver's environment
	dir  string
	log  string // file that receives stdout and stderr (appended)

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has been reaped
}

// start runs the process; it fails when it is already running.
func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && !closed(p.done) {
		return fmt.Errorf("%s: already running", p.name)
	}
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.path, p.args...)
	cmd.Dir = p.dir
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = f, f
	// Pdeathsig: nothing outlives a driver that dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", p.name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done = cmd, done
	go func() { // reaps the process; kill and term wait for done
		_ = cmd.Wait()
		f.Close()
		close(done)
	}()
	return nil
}

func closed(ch chan struct{}) bool {
	if ch == nil {
		return true
	}
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// running reports whether the process has been started and not reaped.
func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil && !closed(p.done)
}

// signal sends sig to the process group; it does nothing once the process
// was reaped (its pid may be someone else's by then).
func (p *proc) signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || closed(p.done) {
		return errors.New(p.name + ": not running")
	}
	return syscall.Kill(-p.cmd.Process.Pid, sig)
}

func (p *proc) doneCh() chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// kill sends SIGKILL (and SIGCONT, for a stopped process) and waits until it
// was reaped.
func (p *proc) kill() {
	if p.signal(syscall.SIGKILL) == nil {
		_ = p.signal(syscall.SIGCONT)
	}
	if d := p.doneCh(); d != nil {
		<-d
	}
}

// term sends SIGTERM and waits for the exit; after grace it kills. It
// reports whether the process exited by itself.
func (p *proc) term(grace time.Duration) bool {
	if p.signal(syscall.SIGTERM) != nil {
		return true
	}
	d := p.doneCh()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-d:
		return true
	case <-t.C:
		p.kill()
		return false
	}
}
