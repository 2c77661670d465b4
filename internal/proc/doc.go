// Package proc runs child processes the one way Tandem's sandbox supervisor,
// load tool, fault campaign and test harnesses all need: each child leads
// its own process group (a signal reaches everything it started), dies with
// this process on Linux (Pdeathsig), and is reaped by exactly one
// goroutine, so that nobody signals a pid that may already be someone
// else's. FreePort picks the loopback ports they listen on.
//
// # Usage
//
//	cmd := exec.Command("redis-server", "--port", strconv.Itoa(port))
//	cmd.Stdout = log
//	p, err := proc.Start(cmd)
//	...
//	p.Stop(5 * time.Second) // SIGTERM to the group, SIGKILL after 5 s
//
// # Concurrency properties
//
// A Proc's methods may be called from any goroutine. Kill and Stop return
// only after the process was reaped and its group killed; after that,
// Signal fails with ErrExited and never reaches another process. Output
// written to cmd.Stdout and cmd.Stderr (Lines, for instance) has all been
// delivered when Done is closed.
package proc
