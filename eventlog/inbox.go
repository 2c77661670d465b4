package eventlog

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
	"github.com/tandem-dev/tandem/eventlog/model"
)

// The inbox ({ws:ID}:inbox) is a stream of commands for the workspace's
// owner, read through the consumer group ConsumerGroup. Nodes append to
// it with Enqueue (store.go); the owner reads, claims and acknowledges.

// EnsureInbox creates the inbox's consumer group (and the stream) unless
// it exists.
func (s *Store) EnsureInbox(ctx context.Context, ws string) error {
	if err := checkIDs(ws); err != nil {
		return err
	}
	err := s.rdb.XGroupCreateMkStream(ctx, InboxKey(ws), ConsumerGroup, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return unavailable("inbox group", err)
	}
	return nil
}

// ReadInbox reads up to count inbox entries that consumer has not
// received yet, but only while epoch is the workspace's fence (else
// ErrStaleWriter): an owner that lost the workspace without noticing yet
// must not take entries, since the owner that replaced it claims pending
// entries once, when it takes over.
//
// The read is idempotent, so that a reply that never reached the owner
// (Redis killed right after the read, a connection cut, go-redis sending
// the call again) loses nothing: it first returns the entries pending for
// consumer after after, the last entry the owner knows it received ("" for
// none), and only when there are none reads new ones. An entry delivered
// in a lost reply is therefore delivered again by the next call, in inbox
// order, before anything newer. A missing consumer group is created, and
// the read answers nothing.
func (s *Store) ReadInbox(ctx context.Context, ws string, epoch uint64, consumer string, count int, after string) ([]model.InboxEntry, error) {
	if err := checkIDs(ws); err != nil {
		return nil, err
	}
	if after == "" {
		after = "0-0"
	}
	res, err := inboxReadScript.Run(ctx, s.rdb, []string{FenceKey(ws), InboxKey(ws)},
		epoch, ConsumerGroup, consumer, count, after).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if isNoGroup(err) {
		if err := s.EnsureInbox(ctx, ws); err != nil {
			return nil, err
		}
		return nil, nil
	}
	if err != nil {
		return nil, redisErr("read inbox "+ws, err)
	}
	return parseReadReply(res)
}

// ClaimInbox claims for consumer, in inbox order, the entries pending with
// any consumer from start ("0-0" first), up to count of them, and returns
// them with the cursor to continue from ("0-0": the scan is complete), but
// only while epoch is the workspace's fence (else ErrStaleWriter): a
// paused ex-owner claims nothing. The claim is idempotent (min-idle 0
// claims entries already consumer's again), so a reply that was lost, or
// sent again by go-redis, claims the same entries once more. When the scan
// is complete, the consumers of earlier owners that hold no entry are
// deleted (lua/inbox_claim.lua): one is made per takeover.
func (s *Store) ClaimInbox(ctx context.Context, ws string, epoch uint64, consumer, start string, count int) ([]model.InboxEntry, string, error) {
	if err := checkIDs(ws); err != nil {
		return nil, "", err
	}
	res, err := inboxClaimScript.Run(ctx, s.rdb, []string{FenceKey(ws), InboxKey(ws)},
		epoch, ConsumerGroup, consumer, start, count).Result()
	if isNoGroup(err) {
		if err := s.EnsureInbox(ctx, ws); err != nil {
			return nil, "", err
		}
		return nil, "0-0", nil
	}
	if err != nil {
		return nil, "", redisErr("claim inbox "+ws, err)
	}
	r, ok := res.([]any)
	if !ok || len(r) < 2 {
		return nil, "", fmt.Errorf("claim inbox %s: unexpected reply %v", ws, res)
	}
	next, _ := r[0].(string)
	out, err := parseReadReply([]any{[]any{InboxKey(ws), r[1]}})
	if err != nil {
		return nil, "", fmt.Errorf("claim inbox %s: %w", ws, err)
	}
	return out, next, nil
}

// AckInbox acknowledges inbox entries, they are done, and deletes them
// from the inbox, but only while epoch is the workspace's fence (else
// ErrStaleWriter): a paused ex-owner changes nothing. The inbox keeps the
// entries pending or not read yet, and nothing else (lua/inbox_ack.lua).
func (s *Store) AckInbox(ctx context.Context, ws string, epoch uint64, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	if err := checkIDs(ws); err != nil {
		return err
	}
	args := make([]any, 0, 2+len(ids))
	args = append(args, epoch, ConsumerGroup)
	for _, id := range ids {
		args = append(args, id)
	}
	if err := inboxAckScript.Run(ctx, s.rdb, []string{FenceKey(ws), InboxKey(ws)}, args...).Err(); err != nil {
		return redisErr("ack inbox "+ws, err)
	}
	return nil
}

// InboxPending returns how many inbox entries are read and not
// acknowledged.
func (s *Store) InboxPending(ctx context.Context, ws string) (int64, error) {
	if err := checkIDs(ws); err != nil {
		return 0, err
	}
	p, err := s.rdb.XPending(ctx, InboxKey(ws), ConsumerGroup).Result()
	if err != nil {
		return 0, unavailable("inbox pending", err)
	}
	return p.Count, nil
}

// InboxDepth is the number of inbox entries not done yet: unread, or read
// and not acknowledged.
func (s *Store) InboxDepth(ctx context.Context, ws string) (int64, error) {
	if err := checkIDs(ws); err != nil {
		return 0, err
	}
	groups, err := s.rdb.XInfoGroups(ctx, InboxKey(ws)).Result()
	if err != nil {
		return 0, unavailable("inbox depth", err)
	}
	var total int64
	for _, g := range groups {
		if g.Name != ConsumerGroup {
			continue
		}
		if g.Lag >= 0 {
			total += g.Pending + g.Lag
			continue
		}
		// Redis cannot tell the lag right after the last entry delivered
		// was deleted (acknowledged, lua/inbox_ack.lua): until the next
		// delivery. Acknowledged entries are deleted, so the inbox holds
		// only pending and unread ones.
		n, err := s.rdb.XLen(ctx, InboxKey(ws)).Result()
		if err != nil {
			return 0, unavailable("inbox depth", err)
		}
		total += max(n, g.Pending)
	}
	return total, nil
}

func entryOf(m redis.XMessage) model.InboxEntry {
	str := func(k string) string { s, _ := m.Values[k].(string); return s }
	return model.InboxEntry{ID: m.ID, Kind: str("k"), Session: str("sid"), User: str("user"), Text: str("text")}
}

// parseReadReply turns XREADGROUP's reply for one stream into entries. An
// entry deleted from the stream while pending comes with no fields (an
// entry of no kind).
func parseReadReply(res any) ([]model.InboxEntry, error) {
	streams, ok := res.([]any)
	if !ok {
		return nil, fmt.Errorf("read inbox: unexpected reply %T", res)
	}
	var out []model.InboxEntry
	for _, s := range streams {
		st, ok := s.([]any)
		if !ok || len(st) != 2 {
			return nil, fmt.Errorf("read inbox: unexpected stream reply %v", s)
		}
		msgs, _ := st[1].([]any)
		for _, m := range msgs {
			mv, ok := m.([]any)
			if !ok || len(mv) != 2 {
				return nil, fmt.Errorf("read inbox: unexpected entry %v", m)
			}
			id, _ := mv[0].(string)
			fields, _ := mv[1].([]any)
			vals := make(map[string]any, len(fields)/2)
			for i := 0; i+1 < len(fields); i += 2 {
				k, _ := fields[i].(string)
				vals[k] = fields[i+1]
			}
			out = append(out, entryOf(redis.XMessage{ID: id, Values: vals}))
		}
	}
	return out, nil
}
