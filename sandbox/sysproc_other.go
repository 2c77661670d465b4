//go:build unix && !linux

package sandbox

import "syscall"

// sysProcAttr puts the server in its own process group, so that killing the
// group also kills the agent processes it started.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
