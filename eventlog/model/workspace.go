package model

import (
	"context"
	"encoding/json"
	"time"
)

// What Tandem keeps of a workspace besides its event streams. These are
// plain values: eventlog reads and writes them, workspace decides with them.

// WorkspaceMeta is a workspace's settings hash ({ws:ID}:meta).
type WorkspaceMeta struct {
	SandboxURL   string
	SandboxToken string
	SandboxID    string
	Agent        string
	// Agents lists the other agents members may give a session of their
	// own (the admin's choice); none: only Agent.
	Agents    []string
	CreatedAt int64 // ms
	Deleted   bool  // deletedAt is set: gone for the API, its owner finishes the deletion

	// PermissionPolicy is ask, allow or reject; "" is ask (and, in a
	// PutWorkspace, keeps the stored one).
	PermissionPolicy string
	// SpeakerLabels is "on" or "off" (each prompt reaches the agent with
	// its sender named); "" is on (and, in a PutWorkspace, keeps the
	// stored one).
	SpeakerLabels string
}

// OwnerRecord says which node owns a workspace ({ws:ID}:owner).
type OwnerRecord struct {
	Node   string
	Epoch  uint64
	Since  int64  // ms
	Health string // ok, unhealthy
}

// WorkspaceView is what one read of a workspace returns: its settings,
// its owner when its lock is held, and its session ids.
type WorkspaceView struct {
	Found    bool // the settings exist (maybe marked deleted)
	Meta     WorkspaceMeta
	Owner    *OwnerRecord // nil unless an owner record exists and the lock is held
	Sessions []string
}

// SessionRecord is a session in the Sandbox Agent SDK's SessionRecord
// shape ({ws:ID}:session:SID).
type SessionRecord struct {
	ID               string          `json:"id"`
	Agent            string          `json:"agent"`
	AgentSessionID   string          `json:"agentSessionId"`
	LastConnectionID string          `json:"lastConnectionId"`
	CreatedAt        int64           `json:"createdAt"`
	DestroyedAt      *int64          `json:"destroyedAt,omitempty"`
	SandboxID        string          `json:"sandboxId,omitempty"`
	SessionInit      json.RawMessage `json:"sessionInit,omitempty"`

	// What the agent's session/new answered (SDK field names), kept up to
	// date when the mode or model changes (session_config.go).
	Modes         json.RawMessage `json:"modes,omitempty"`
	Models        json.RawMessage `json:"models,omitempty"`
	ConfigOptions json.RawMessage `json:"configOptions,omitempty"`
	// Want is what people asked for (mode, model, configOptions,
	// sessionInit), applied to every new agent session of this one.
	Want json.RawMessage `json:"-"`
}

// InboxEntry is a command waiting for the owner in {ws:ID}:inbox.
type InboxEntry struct {
	ID, Kind, Session, User, Text string
}

// Enqueue is a command for the owner, as the enqueue script takes it.
type Enqueue struct {
	Kind, Session, User, Text string
	// Agent is the agent of a session created by this command ("" = the
	// workspace's).
	Agent string
	// Create creates the session when it does not exist.
	Create bool
	// IdemKey (hex) remembers the entry for IdemTTL: the same key again
	// returns the first entry and enqueues nothing.
	IdemKey string
	IdemTTL time.Duration
	// RateKey (hex) names the prompt-rate bucket; RateInterval 0 means no
	// limit, RateTolerance is the burst (GCRA).
	RateKey       string
	RateInterval  time.Duration
	RateTolerance time.Duration
	// MaxSessions caps the workspace's session records when this command
	// creates one (0: no cap).
	MaxSessions int
}

// EnqueueStatus is the enqueue script's verdict.
type EnqueueStatus string

const (
	EnqueueOK          EnqueueStatus = "ok"
	EnqueueDuplicate   EnqueueStatus = "dup"
	EnqueueNoWorkspace EnqueueStatus = "err_ws"
	EnqueueNoSession   EnqueueStatus = "err_session"
	EnqueueDestroyed   EnqueueStatus = "err_destroyed"
	EnqueueRateLimited EnqueueStatus = "err_rate"
	EnqueueTooMany     EnqueueStatus = "err_sessions"
	EnqueueAgent       EnqueueStatus = "err_agent"
)

// Enqueued is the answer of an enqueue.
type Enqueued struct {
	Status     EnqueueStatus
	ID         string // the inbox entry (ok, dup)
	Created    bool   // the session was created
	RetryAfter time.Duration
}

// PresenceReport is one node's report of its stream clients of a
// workspace, a field of {ws:ID}:presence named after the node.
type PresenceReport struct {
	Exp   int64          `json:"exp"` // ms; ignore the report after this
	Users map[string]int `json:"users"`
	// Typing: who is typing, in which session, until when (ms); never
	// persisted in a stream, only reported here with the node's clients.
	Typing map[string]TypingReport `json:"typing,omitempty"`
}

// TypingReport is one user typing in one session, until Until (ms).
type TypingReport struct {
	Session string `json:"session"`
	Until   int64  `json:"until"`
}

// Lock is one workspace's lock (a redsync mutex in eventlog).
type Lock interface {
	// TryLock takes the lock once, without waiting.
	TryLock(ctx context.Context) error
	// Extend extends it by its expiry; it fails when the lock expired or
	// was taken.
	Extend(ctx context.Context) error
	// Unlock releases it, if it is still this one's.
	Unlock(ctx context.Context) error
}

// PurgeStatus is the outcome of a PurgeWorkspace.
type PurgeStatus string

// The outcomes of a PurgeWorkspace; only PurgeOK changed anything.
const (
	PurgeOK       PurgeStatus = "ok"       // every key of the workspace is gone
	PurgeNone     PurgeStatus = "none"     // nothing of it is stored
	PurgeLive     PurgeStatus = "live"     // not deleted: delete it first
	PurgeDeleting PurgeStatus = "deleting" // deleted, its owner not finished yet
	PurgeBusy     PurgeStatus = "busy"     // an owner still holds its lock
)
