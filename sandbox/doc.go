// Package sandbox owns the lifecycle of the Sandbox Agent server a workspace
// talks to, behind the Provider interface: Static for a server run by someone
// else, Local for a child process this node starts and supervises. Process is
// the child process itself, also used by test helpers.
//
// # Usage
//
//	local, err := sandbox.NewLocal(sandbox.LocalConfig{Bin: bin, DataDir: dir, AgentLauncher: mock})
//	go local.Run(ctx) // or in an errgroup; returns once the child is gone
//	err = local.EnsureServer(ctx) // after health checks failed
//
// # Concurrency properties
//
// Providers are safe for concurrent use. Local's child process is owned by
// the goroutine running Run: EnsureServer asks it to act and waits for the
// answer, so two callers never start two servers. A stopped or killed child
// takes its whole process group (the agent processes it ran) with it. Callers
// may NOT assume that BaseURL answers between a crash and the restart, nor
// that connections survive a restart: the server keeps them in memory only.
package sandbox
