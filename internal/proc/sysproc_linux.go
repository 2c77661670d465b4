package proc

import "syscall"

// sysProcAttr puts the child in its own process group, so that a signal to
// the group reaches everything it started, and asks Linux to kill it should
// this process die without stopping it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
