package model

import (
	"errors"
	"fmt"
)

// ErrUnavailable wraps failures to reach Redis (a refused or broken
// connection, a timeout): the caller may retry later. Errors that Redis
// itself replied with are not wrapped in it.
var ErrUnavailable = errors.New("event log unavailable")

// ErrStaleWriter is returned by Append when the caller's epoch is no longer
// the workspace's fencing epoch: another node became the writer. Nothing of
// the call was appended. A caller that sees it must stop acting as owner.
var ErrStaleWriter = errors.New("stale writer: fencing epoch superseded")

// ErrDuplicate is returned by an append that would write again what the
// stream already has (Part.Dispatch): nothing of the call was appended.
var ErrDuplicate = errors.New("already appended")

// ErrHistoryRewound is wrapped by a *RewoundError.
var ErrHistoryRewound = errors.New("history rewound: the stream holds less than the writer saw acknowledged")

// RewoundError is returned by an append whose Part.Head is beyond the
// stream's head: Redis lost acknowledged writes (a restart from a snapshot
// or an AOF with its tail lost, a failover to a replica that was behind).
// Nothing of the call was appended.
type RewoundError struct {
	Session string
	Head    uint64 // the stream's head in Redis now
	Known   uint64 // the head the writer saw acknowledged
}

func (e *RewoundError) Error() string {
	return fmt.Sprintf("session %s: %v: head %d, %d acknowledged", e.Session, ErrHistoryRewound, e.Head, e.Known)
}
func (e *RewoundError) Unwrap() error { return ErrHistoryRewound }

// ErrInvalidID is returned for a workspace or session id that is not 1-128
// characters of [A-Za-z0-9._-]: keys are built from ids, and any other
// character (":", "{", "}") could make one key collide with another.
var ErrInvalidID = errors.New("invalid id")

// MaxIDLen bounds workspace and session ids.
const MaxIDLen = 128

// ValidID reports whether id is 1-128 characters of [A-Za-z0-9._-], the
// ids the API accepts and the only ones keys are built from.
func ValidID(id string) bool {
	if id == "" || len(id) > MaxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// ErrWorkspaceDeleted is returned by a PutWorkspace of an id that was
// deleted and not purged: created again, it would list the old sessions
// and serve their history to whoever holds it next.
var ErrWorkspaceDeleted = errors.New("workspace deleted and not purged")

// ErrWithdrawn is returned by an append that dispatches a prompt its sender
// withdrew: the prompt must never reach the agent.
var ErrWithdrawn = errors.New("prompt withdrawn")
