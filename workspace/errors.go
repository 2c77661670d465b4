package workspace

import (
	"errors"
	"fmt"
	"time"

	"github.com/tandem-dev/tandem/eventlog/model"
)

// Errors of the workspace API. They are wrapped with context; match them
// with errors.Is.
var (
	ErrWorkspaceNotFound = errors.New("workspace not found")
	ErrSessionNotFound   = errors.New("session not found")
	ErrSessionDestroyed  = errors.New("session destroyed")
	// ErrInvalid wraps a description of input the API refuses.
	ErrInvalid = errors.New("invalid input")
	// ErrTooLarge: a prompt longer than the limit.
	ErrTooLarge = errors.New("prompt too large")
	// ErrSandboxNotAllowed: a sandbox URL outside the allowed hosts.
	ErrSandboxNotAllowed = errors.New("sandbox not allowed")
	// ErrNotOwner: this node does not own the workspace (any more).
	ErrNotOwner = errors.New("not the workspace owner")
)

// ErrWorkspaceDeleted: a PUT of a deleted workspace's id, which stays
// tombstoned until it is purged (its sessions and history would come
// back otherwise).
var ErrWorkspaceDeleted = model.ErrWorkspaceDeleted

// ErrWorkspaceBusy: a purge found the workspace's deletion not finished,
// or an owner still holding it, within Config.PurgeWait; try again later.
var ErrWorkspaceBusy = errors.New("workspace busy: its deletion is not finished")

// ErrAgentNotAllowed: a session's own agent that the workspace's
// settings do not list.
var ErrAgentNotAllowed = errors.New("agent not allowed in this workspace")

// ErrSessionLimit: creating the session would pass the workspace's cap
// on session records (Config.MaxSessions).
var ErrSessionLimit = errors.New("too many sessions in the workspace")

// ErrRateLimited is matched by a *RateLimitError.
var ErrRateLimited = errors.New("rate limited")

// Withdrawing a prompt: ErrPromptNotFound (no such prompt waiting),
// ErrPromptDispatched (it reached the agent already), ErrNotSender
// (only its sender or an admin may).
var (
	ErrPromptNotFound   = errors.New("prompt not found")
	ErrPromptDispatched = errors.New("prompt already dispatched")
	ErrNotSender        = errors.New("only the prompt's sender or an admin may withdraw it")
)

// RateLimitError says a user sent prompts faster than allowed, and when
// the next one will be accepted.
type RateLimitError struct{ RetryAfter time.Duration }

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("%v: retry after %v", ErrRateLimited, e.RetryAfter)
}

func (e *RateLimitError) Unwrap() error { return ErrRateLimited }
