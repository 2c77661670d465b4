package workspace

import (
	"context"
	"time"

	"github.com/tandem-dev/tandem/eventlog/model"
)

// What the workspace package needs from outside, as narrow interfaces
// (eventlog.Store implements all of them on Redis; the owner's tests use
// in-memory fakes). The workspace package imports no Redis client.

// Log is the session event streams.
type Log interface {
	// AcquireEpoch makes the caller the workspace's writer: every append
	// with an older epoch fails from now on with model.ErrStaleWriter.
	AcquireEpoch(ctx context.Context, ws string) (uint64, error)
	CurrentEpoch(ctx context.Context, ws string) (uint64, error)
	Append(ctx context.Context, ws, sid string, epoch uint64, recs ...model.Record) ([]model.Event, error)
	AppendState(ctx context.Context, ws, sid string, epoch uint64, state map[string]string, recs ...model.Record) ([]model.Event, error)
	AppendParts(ctx context.Context, ws string, epoch uint64, parts []model.Part) ([][]model.Event, error)
	// State is the stream's state hash (n, gen, src and the fields
	// AppendState sets).
	State(ctx context.Context, ws, sid string) (map[string]string, error)
	Last(ctx context.Context, ws, sid string, n int) ([]model.Event, model.Cursor, error)
	// Before returns up to n events older than eventIndex before (0: the
	// newest), newest first.
	Before(ctx context.Context, ws, sid string, before uint64, n int) ([]model.Event, error)
}

// Inbox is the commands waiting for a workspace's owner.
type Inbox interface {
	Enqueue(ctx context.Context, ws string, e model.Enqueue) (model.Enqueued, error)
	EnsureInbox(ctx context.Context, ws string) error
	// ReadInbox reads entries consumer has not received (those after
	// after already pending for it first), while epoch is the fence.
	ReadInbox(ctx context.Context, ws string, epoch uint64, consumer string, count int, after string) ([]model.InboxEntry, error)
	// ClaimInbox claims entries pending with any consumer, and AckInbox
	// acknowledges (and deletes) entries, both only while epoch is the
	// fence (else model.ErrStaleWriter, and nothing changed). A claim scan
	// that completes deletes the other consumers that hold no entry.
	ClaimInbox(ctx context.Context, ws string, epoch uint64, consumer, start string, count int) ([]model.InboxEntry, string, error)
	AckInbox(ctx context.Context, ws string, epoch uint64, ids ...string) error
	// Withdraw withdraws a prompt not yet dispatched, decided against the
	// dispatch record in one step: the dispatch of a withdrawn prompt
	// fails with model.ErrWithdrawn.
	Withdraw(ctx context.Context, ws string, w model.Withdraw) (model.WithdrawStatus, bool, error)
	InboxPending(ctx context.Context, ws string) (int64, error)
	InboxDepth(ctx context.Context, ws string) (int64, error)
}

// Records is workspace settings, session records, owner records, the set
// of workspaces that may need an owner, and presence reports.
type Records interface {
	PutWorkspace(ctx context.Context, ws string, m model.WorkspaceMeta, now int64) (bool, error)
	WorkspaceMeta(ctx context.Context, ws string) (model.WorkspaceMeta, bool, error)
	WorkspaceExists(ctx context.Context, ws string) (bool, error)
	Workspace(ctx context.Context, ws string) (model.WorkspaceView, error)
	DeleteWorkspace(ctx context.Context, ws string) (bool, error)
	FinishDelete(ctx context.Context, ws string, epoch uint64) error
	// PurgeWorkspace removes every key of a deleted workspace that no owner
	// holds; any status but model.PurgeOK changed nothing.
	PurgeWorkspace(ctx context.Context, ws string) (model.PurgeStatus, error)

	MarkActive(ctx context.Context, ws string) error
	UnmarkActive(ctx context.Context, ws string) error
	Active(ctx context.Context, n int) ([]string, error)
	Locked(ctx context.Context, wss []string) ([]bool, error)
	// DueActive reads up to n workspaces of the active set that are due
	// (new work, or an owner's lease that ran out) and returns those with
	// a free lock; full says n were read. Each one read is moved on: a
	// locked one to its lock's expiry, a free one by retry.
	DueActive(ctx context.Context, n int, retry time.Duration) (free []string, full bool, err error)
	// LeaseActive moves ws, when active, to ttl from now (never earlier):
	// its owner holds it until then. HandOffActive makes it due now.
	LeaseActive(ctx context.Context, ws string, ttl time.Duration) error
	HandOffActive(ctx context.Context, ws string) error

	SetOwner(ctx context.Context, ws string, o model.OwnerRecord, ttl time.Duration) error
	ExpireOwner(ctx context.Context, ws string, ttl time.Duration) error
	SetOwnerHealth(ctx context.Context, ws, health string) error
	DeleteOwner(ctx context.Context, ws string, epoch uint64) error
	// RecordSent adds prompts an owner sent to the agent (inbox ids, with
	// the ms of each dispatch) to the workspace's evidence of what was
	// sent; SentPrompts reads it. Not fenced: facts that stay true.
	RecordSent(ctx context.Context, ws string, ids []string, at []int64) error
	SentPrompts(ctx context.Context, ws string) ([]string, error)

	Session(ctx context.Context, ws, sid string) (model.SessionRecord, bool, error)
	SessionOf(ctx context.Context, ws, sid string) (rec model.SessionRecord, wsFound, found bool, err error)
	SessionIDs(ctx context.Context, ws string) ([]string, error)
	MarkSessionDestroyed(ctx context.Context, ws, sid string, now int64) error
	RecordAgentSession(ctx context.Context, ws, sid string, epoch uint64, agentSessionID, connID, init string) error
	ListSessions(ctx context.Context, ws string, afterScore int64, afterID string, limit int) ([]model.SessionRecord, int64, string, error)

	ReportPresence(ctx context.Context, node string, put map[string][]byte, drop, changed []string, ttl time.Duration, sig string) error
	PresenceReports(ctx context.Context, ws string) (map[string]string, error)
	// Signal rings the workspace's doorbell with a signal.
	Signal(ctx context.Context, ws, msg string) error
}

// Locks makes the workspaces' locks.
type Locks interface {
	NewLock(ws string, ttl time.Duration) (model.Lock, error)
}

// Store is everything a Manager keeps outside the process.
type Store interface {
	Log
	Inbox
	Records
	Locks
	Permissions
	SessionUpdater
}
