package eventlog

import (
	"fmt"

	"github.com/tandem-dev/tandem/eventlog/model"
)

// Every key of the Redis layout is built here. Every key of a workspace
// starts with the hash tag {ws:ID}, so that one script can touch them all
// and Redis Cluster keeps them in one slot. Ids are checked by checkIDs
// before any key is built from them: an id holding ":", "{" or "}" could
// make one key collide with another (session "x:state" would be the state
// hash of session "x").

func tag(ws string) string { return "{ws:" + ws + "}" }

// checkIDs returns model.ErrInvalidID unless ws and every sid are ids keys
// may be built from.
func checkIDs(ws string, sids ...string) error {
	if !model.ValidID(ws) {
		return fmt.Errorf("workspace %q: %w", ws, model.ErrInvalidID)
	}
	for _, sid := range sids {
		if !model.ValidID(sid) && sid != model.WorkspaceStream {
			return fmt.Errorf("session %q: %w", sid, model.ErrInvalidID)
		}
	}
	return nil
}

// FenceKey is the fencing-epoch counter of a workspace.
func FenceKey(ws string) string { return tag(ws) + ":fence" }

// StreamKey is the event stream of one session.
func StreamKey(ws, sid string) string { return tag(ws) + ":events:" + sid }

// WorkspaceStreamKey is a workspace's own event stream, and
// WorkspaceStateKey its state hash.
func WorkspaceStreamKey(ws string) string { return StreamKey(ws, model.WorkspaceStream) }
func WorkspaceStateKey(ws string) string  { return StateKey(ws, model.WorkspaceStream) }

// StateKey is the hash that holds a session stream's head, generation and
// last source position.
func StateKey(ws, sid string) string { return tag(ws) + ":events:" + sid + ":state" }

// NotifyChannel is the pub/sub channel of a workspace's doorbell.
func NotifyChannel(ws string) string { return tag(ws) + ":notify" }

// MetaKey is a workspace's settings hash.
func MetaKey(ws string) string { return tag(ws) + ":meta" }

// LockKey is the redsync mutex of a workspace.
func LockKey(ws string) string { return tag(ws) + ":lock" }

// OwnerKey is the record of a workspace's owner.
func OwnerKey(ws string) string { return tag(ws) + ":owner" }

// SentKey is the zset of prompts owners sent to the agent, by the ms of
// their dispatch (Store.RecordSent).
func SentKey(ws string) string { return tag(ws) + ":sent" }

// SessionsKey is the zset of a workspace's session ids by createdAt.
func SessionsKey(ws string) string { return tag(ws) + ":sessions" }

// SessionKey is one session's record.
func SessionKey(ws, sid string) string { return sessionKeyPrefix(ws) + sid }

func sessionKeyPrefix(ws string) string { return tag(ws) + ":session:" }

// InboxKey is the stream of commands waiting for a workspace's owner.
func InboxKey(ws string) string { return tag(ws) + ":inbox" }

// IdemKey remembers an Idempotency-Key's inbox entry (hash: hex).
func IdemKey(ws, hash string) string { return tag(ws) + ":idem:" + hash }

// PresenceKey holds each node's report of its stream clients.
func PresenceKey(ws string) string { return tag(ws) + ":presence" }

// RateKey is one user's prompt-rate bucket (user: hex of a hash).
func RateKey(ws, user string) string { return tag(ws) + ":rate:" + user }

// ActiveKey lists workspaces that may need an owner (a command was
// accepted for them); owners remove theirs when they go idle. It is the one
// key without a workspace tag.
const ActiveKey = "tandem:active"

// ConsumerGroup is the inbox's consumer group; each owner reads as consumer
// "<node>/<epoch>".
const ConsumerGroup = "owner"

// workspaceOfChannel returns the workspace id of a NotifyChannel name.
func workspaceOfChannel(ch string) (string, bool) {
	const pre, suf = "{ws:", "}:notify"
	if len(ch) <= len(pre)+len(suf) || ch[:len(pre)] != pre || ch[len(ch)-len(suf):] != suf {
		return "", false
	}
	return ch[len(pre) : len(ch)-len(suf)], true
}
