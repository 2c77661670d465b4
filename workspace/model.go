package workspace

import "github.com/tandem-dev/tandem/eventlog/model"

// Sandbox says where a workspace's Sandbox Agent server is.
type Sandbox struct {
	BaseURL   string `json:"baseUrl"`
	Token     string `json:"token,omitempty"` // stored, never returned
	SandboxID string `json:"sandboxId,omitempty"`
}

// Settings are a workspace's configuration, as PUT sets it.
type Settings struct {
	Sandbox Sandbox `json:"sandbox"`
	Agent   string  `json:"agent"`
	// PermissionPolicy is ask, allow or reject (permission.go); "" keeps
	// the stored one (ask for a new workspace).
	PermissionPolicy string `json:"permissionPolicy,omitempty"`
	// Agents lists the other agents members may choose for a session of
	// their own (set by admins); none: only Agent.
	Agents []string `json:"agents,omitempty"`
	// SpeakerLabels names each prompt's sender to the agent (a first text
	// block "[user]"); nil keeps the stored setting (on for a new
	// workspace).
	SpeakerLabels *bool `json:"speakerLabels,omitempty"`
}

// Owner says which node owns a workspace, since when, with which epoch.
type Owner struct {
	Node  string `json:"node"`
	Epoch uint64 `json:"epoch"`
	Since int64  `json:"since"` // ms since the epoch
}

// Info is what GET /v1/workspaces/{ws} returns.
type Info struct {
	WorkspaceID string   `json:"workspaceId"`
	SandboxID   string   `json:"sandboxId"`
	Agent       string   `json:"agent"`
	Agents      []string `json:"agents,omitempty"`
	CreatedAt   int64    `json:"createdAt"`
	Owner       *Owner   `json:"owner"`
	Status      string   `json:"status"` // active (owned), idle, sandbox_unhealthy
	Sessions    []string `json:"sessions"`
	// PermissionPolicy is ask, allow or reject.
	PermissionPolicy string `json:"permissionPolicy"`
	// SpeakerLabels: the agent is told who speaks.
	SpeakerLabels bool `json:"speakerLabels"`
}

// SessionRecord is a session in the Sandbox Agent SDK's SessionRecord
// shape.
type SessionRecord = model.SessionRecord

// Accepted is the answer to a prompt: the id of its inbox entry, which
// the prompt's chat.user event carries as promptId once the owner has
// taken it.
type Accepted struct {
	ID        string `json:"id"`
	SessionID string `json:"sessionId"`
	Duplicate bool   `json:"duplicate,omitempty"` // an Idempotency-Key seen before
}

// Event types and status values the owner appends.
const (
	TypeChatUser      = "chat.user"
	TypeSessionEvent  = "session.event"
	TypeSessionStatus = "session.status"

	StatusOwnerChanged     = "owner_changed"
	StatusSandboxUnhealthy = "sandbox_unhealthy"
	StatusSandboxRecovered = "sandbox_recovered"
	StatusSessionRestored  = "session_restored"
	StatusTurnStarted      = "turn_started"
	StatusTurnEnded        = "turn_ended"
	StatusSessionDestroyed = "session_destroyed"
	// StatusHistoryRewound: Redis lost events it had acknowledged
	// (firstLost to lastLost); the owner started again and re-attached
	// the agent from the last persisted position.
	StatusHistoryRewound = "history_rewound"
)

// DefaultSession is the session a prompt creates when it does not exist.
const DefaultSession = "default"

// StopDeliveryUnknown is the stopReason of a turn whose prompt may not have
// reached the agent: an owner that took over could not tell, and the agent
// did not answer it within the dispatch timeout. Prompts are sent to the
// agent at most once; this is how "maybe not" is said.
const StopDeliveryUnknown = "delivery_unknown"
