package proc

import (
	"errors"
	"os/exec"
	"syscall"
	"time"
)

// ErrExited is returned by Signal once the process was reaped.
var ErrExited = errors.New("proc: process has exited")

// Proc is one started child process, the leader of its own process group.
type Proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // how the process exited; set before done is closed
}

// Start starts cmd in a new process group that dies with this process
// (any cmd.SysProcAttr is replaced) and reaps it in a goroutine that ends
// when the process has exited and its output was copied.
func Start(cmd *exec.Cmd) (*Proc, error) {
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Proc{cmd: cmd, done: make(chan struct{})}
	go p.wait()
	return p, nil
}

func (p *Proc) wait() {
	p.err = p.cmd.Wait()
	// What the leader started shares its group: do not leave it orphaned
	// when the leader dies on its own.
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	close(p.done)
}

// Pid is the process id, which is also its process group id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Done is closed once the process has exited, its output was copied and
// its group was killed.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err waits for the process and returns how it exited, as exec.Cmd.Wait
// says.
func (p *Proc) Err() error {
	<-p.done
	return p.err
}

// Exited reports whether the process has been reaped.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Signal sends sig to the process group. It fails with ErrExited once the
// process was reaped: its pid may belong to someone else by then.
func (p *Proc) Signal(sig syscall.Signal) error {
	if p.Exited() {
		return ErrExited
	}
	return syscall.Kill(-p.cmd.Process.Pid, sig)
}

// Kill sends SIGKILL (and SIGCONT, for a stopped group) and waits until the
// process was reaped.
func (p *Proc) Kill() {
	if p.Signal(syscall.SIGKILL) == nil {
		_ = p.Signal(syscall.SIGCONT)
	}
	<-p.done
}

// Stop sends SIGTERM, waits up to grace for the process to exit, then kills
// it. It reports whether the process exited by itself within grace.
func (p *Proc) Stop(grace time.Duration) bool {
	if p.Signal(syscall.SIGTERM) != nil {
		return true
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
		return true
	case <-t.C:
		p.Kill()
		return false
	}
}
