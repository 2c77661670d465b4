//go:build unix && !linux

package proc

import "syscall"

// sysProcAttr puts the child in its own process group, so that a signal to
// the group reaches everything it started. Only Linux has Pdeathsig.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
