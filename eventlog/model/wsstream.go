package model

// WorkspaceStream is the reserved stream id of a workspace's own event
// stream ({ws:ID}:events:~ws): session.created, session.destroyed,
// session.status summaries, prompt.queued, prompt.dispatched,
// prompt.withdrawn, and presence (not persisted). "~" is no session id's
// character, so the stream never collides with a session's, and the API
// never lets a client name it as a session.
const WorkspaceStream = "~ws"

// Types of the workspace stream's events.
const (
	TypeSessionCreated   = "session.created"
	TypeSessionDestroyed = "session.destroyed"
	TypeSessionSummary   = "session.status"
	TypePromptQueued     = "prompt.queued"
	TypePromptDispatched = "prompt.dispatched"
	TypePromptWithdrawn  = "prompt.withdrawn"
)

// DefaultWorkspaceMaxLen bounds the workspace stream (XADD MAXLEN ~).
const DefaultWorkspaceMaxLen = 10000

// WithdrawStatus is the withdraw script's verdict.
type WithdrawStatus string

const (
	WithdrawOK          WithdrawStatus = "ok"
	WithdrawNotFound    WithdrawStatus = "not_found"
	WithdrawDispatched  WithdrawStatus = "dispatched"
	WithdrawForbidden   WithdrawStatus = "forbidden"
	WithdrawNoWorkspace WithdrawStatus = "err_ws"
)

// Withdraw asks to withdraw prompt ID of session Session for User (Admin:
// whoever sent it).
type Withdraw struct {
	Session, ID, User string
	Admin             bool
}
