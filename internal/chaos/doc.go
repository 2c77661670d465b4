// Package chaos is Tandem's fault campaign: it runs a whole deployment on
// 127.0.0.1 (redis-server with appendonly, the Sandbox Agent server with
// the scripted agent, three tandem nodes, nginx as a round-robin load
// balancer with buffering off), puts load on it through nginx, injects
// randomized faults, and then checks what the clients observed against
// what Redis holds, independently of the product's own code paths.
//
// # Usage
//
//	res, err := chaos.Run(ctx, chaos.Config{Dir: dir, Seed: 42, Duration: 3 * time.Minute, ...})
//	chaos.WriteDetails(os.Stdout, res)
//	chaos.WriteTable(os.Stdout, []*chaos.Result{res})
//
// cmd/tandem-chaos is the command and scripts/chaos.sh (make chaos) builds
// and installs what it needs.
//
// # Load
//
// Each workspace has subscribers of two independent kinds, following its
// default session through nginx: Go clients on r3labs/sse (streamclient:
// unlimited reconnects, a clean close means reconnect, Last-Event-ID) and
// WHATWG EventSource clients (the eventsource package in Node.js,
// internal/chaos/node/client.mjs), and one writer that sends prompts with an
// Idempotency-Key, retrying with the same key on errors, 5xx and timeouts.
//
// # Faults
//
// One at a time, chosen from the seed (printed; the same seed replays the
// same choices): SIGKILL of a node (mostly an owner), SIGSTOP of an owner
// for longer than the lock TTL, a rolling restart of every node, SIGKILL
// and restart of redis-server, SIGKILL and restart of the Sandbox Agent
// server (as its supervisor would), a reset of one subscriber's TCP
// connection, and the faults that lose or delay what Redis acknowledged:
// a restart of Redis from a snapshot taken a moment before its SIGKILL
// (lossy; half of them during a takeover, losing the fence INCR), Redis
// SIGSTOPped past the clients' read timeout, a partition (drop or hold)
// or a latency spike between node n3 and Redis through the campaign's TCP
// fault proxy (faultproxy.go), an owner paused just past the lock TTL,
// and a failover (sentinel.go): a replica promoted by Sentinel with its
// replication cut, so that it lacks the last 0.5–2 s of acknowledged
// writes. With the failover kind the deployment has a replica and a
// Sentinel, n1 and n2 use the Sentinel URL, n3 the fault proxy, pointed
// at the new master after each failover; the other Redis faults act on
// the current master.
// The first faults go through every kind once. After a fault that took
// workspaces from their owner, the time until a live node owns each again
// (a newer epoch holding the lock) is measured.
//
// The load also has silent turns (the agent quiet for over 10 s) in second
// sessions, cancels, and workspaces nobody follows, whose owners go idle.
//
// # Checks
//
// See checker.go for the rules: eventIndex contiguous, no entry under a
// stale epoch, one epoch announced by one node in one acquisition, ACP ids
// contiguous per connection from 1 to the state's source position, every
// 2xx prompt exactly one chat.user and one turn and at most one delivery
// to the agent (exactly one unless a sandbox kill lost its turn, which then
// ends with stopReason "error", or the turn ended "delivery_unknown"), and
// every subscriber's events across all its reconnects equal to the stream
// after its starting cursor, with one reset per lossy restart or failover allowed
// before which it may have seen the lost tail.
//
// # Bounds
//
// Every loop is bounded in count or time: the fault phase by Duration and
// Faults, each fault's recovery by its own timeouts, a prompt's retries to
// 60 s, settling to a few minutes. Every process and address is on the
// loopback interface; processes die with the driver (Pdeathsig).
package chaos
