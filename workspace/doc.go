// Package workspace is Tandem's domain: workspaces, their sessions, and the
// owner, the one node that talks to a workspace's Sandbox Agent server and
// appends to its streams. It imports no Redis client: what it keeps
// outside the process goes through the narrow interfaces of ports.go (Log,
// Inbox, Records, Locks), which eventlog.Store implements on Redis and the
// package's tests fake in memory.
//
// # Where things are
//
//	manager.go  the Manager: config, taking workspaces (tryTake), signals
//	poll.go     finding workspaces that need an owner (poll)
//	store.go    the API any node serves: settings, sessions, enqueueing commands
//	owner.go    the owner's types, its run loop, takeover, tick
//	inbox.go    reading, claiming and carrying out inbox commands, in order
//	turn.go     dispatching a prompt, sending it, ending its turn
//	connect.go  opening and re-attaching ACP connections; their end
//	ingest.go   persisting the agent's messages; answering its requests
//	restore.go  the history a restored session's next prompt carries
//	health.go   the sandbox's health checks and restarts
//	release.go  the lock's extension; going idle; giving the workspace back
//	destroy.go  destroying sessions and workspaces
//	state.go    what the owner keeps in a stream's state (streamState, turnRecord)
//	presence.go who is in a workspace, across nodes
//	hold.go     holding a workspace (the load tool's append route)
//	permission.go     the agent's permission requests: recorded, answered by anyone, first wins
//	session_config.go modes, models and config options: recorded, changed, applied again after a restore
//	agent_failure.go  unknown agents refused; agent_error once per failure; bounded retries; autoAuthenticate
//
// # Guarantees (architecture.md) and where they are kept
//
// 2, single writer: newOwner takes a new epoch (Log.AcquireEpoch) under the
// lock; every write carries it and the fence check in eventlog's scripts
// rejects a stale one; stale() makes the owner stop at the first rejection,
// and extendLoop at the first failed extension. Tested by
// internal/e2e TestPausedOwnerCannotWrite and the fault campaign.
//
// 3, an accepted prompt is never lost, reaches the agent at most once and
// in order, and its turn ends answered or delivery_unknown: Store.Enqueue (Prompt) answers 202 only once the command is in
// the inbox; the owner reads it idempotently (readNew: entries delivered in
// a lost reply come again first), claims what an earlier owner left
// (takeOver), carries commands out in inbox order, keeping those it cannot
// decide yet in a backlog (handle, carryOut), and counts a claimed prompt
// as dispatched only on evidence (dispatched, findDispatch). A prompt's
// chat.user, turn start, request and turn record are one append
// (dispatch), and its inbox entry is acknowledged once the request was
// written (post). A prompt found in flight whose delivery is unknown is
// never sent again: after DispatchTimeout of agent silence its turn ends
// as delivery_unknown (tick). A dispatch append carries its inbox id, and
// the script refuses one dispatched already. Tested by internal/e2e TestInboxReadReplyLost,
// TestPromptAcceptedThenOwnerKilled, TestOwnerKilledMidTurn,
// TestQueueCancelIdempotency, eventlog TestReadInboxAfterLostReply,
// workspace TestFindDispatch, TestFakeTakeoverSilentTurnResent, and the
// fault campaign's checker.
//
// Redis losing acknowledged writes: every append carries the head the
// owner saw acknowledged (appendTo); a refusal (RewoundError) makes the
// owner stop and the manager start a new one under the same lock
// (rewoundBy, restartOwner), which records history_rewound and re-attaches
// the agent from the last persisted position. Tested by workspace
// TestFakeRewoundStreamStartsOwnerAgain and internal/e2e
// TestLossyRedisRestart.
//
// 4, agent output survives owner failover: every ACP message is appended
// with its SSE id (ingest), and open re-attaches with Last-Event-ID from
// the stream's state; a restore happens only when the server lost the
// connection (opened). Tested by internal/e2e TestOwnerKilledMidTurn,
// TestAppendsFailMidTurn, TestSandboxRestartedByLocalProvider.
//
// 5, takeover is fast: pollers (Manager.poll) look for workspaces with work
// or subscribers and a free lock every PollInterval; the active set is
// scored by owners' leases, so a poll reads only the due ones, a page at a
// time, at any rank. Tested by internal/e2e
// TestDeadOwnerFoundAmong100000Workspaces; measured by the fault campaign
// (takeover p50/p99).
//
// # Concurrency properties
//
// Manager is safe for concurrent use. Each owner's state belongs to one
// goroutine (run); helpers it starts report back through channels (report)
// and never touch that state.
package workspace
