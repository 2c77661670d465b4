package sandbox

import "syscall"

// sysProcAttr puts the server in its own process group, so that killing the
// group also kills the agent processes it started, and asks Linux to kill it
// should this process die without stopping it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
