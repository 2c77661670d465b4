package eventlog

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// The active index (ActiveKey) lists the workspaces that may need an
// owner: work was accepted for them, and their owner has not gone idle.
// It is a sorted set scored by when a poller should next look at each
// (ms, Redis's clock), so that a poll costs the same whatever the number
// of workspaces, and finds a dead owner's workspace at any rank:
//
//   - accepting work adds the workspace due now, unless it is listed
//     (MarkActive, lua/active_score.lua "mark");
//   - an owner moves its workspace to the end of its lease each time it
//     extends its lock (LeaseActive), so the workspaces of live owners are
//     never due, and that of an owner that died is due when its lock
//     expires;
//   - an owner that lets go makes it due now (HandOffActive), and one that
//     goes idle removes it (UnmarkActive);
//   - a poll (DueActive) reads one page of due workspaces (ZRANGEBYSCORE
//     -inf now LIMIT), checks their locks in one pipeline, and moves every
//     one it read on: a locked one to its lock's expiry, a free one (the
//     poller takes it) a little later, in case the take fails. A page is
//     never read twice in a row, so every due workspace is reached.
//
// The index is one key, so on a Redis Cluster it lives in one slot (the
// locks it is checked against are spread over the cluster, read in a
// pipeline the cluster client splits by slot); its size is the number of
// workspaces with work, not of all workspaces.

// activeScoreScript sets a workspace's score in the active index.
var activeScoreScript = loadScript("active_score", false)

// activeDueScript reads due workspaces of the active index.
var activeDueScript = loadScript("active_due", false)

func (s *Store) scoreActive(ctx context.Context, op, mode, ws string, after time.Duration) error {
	if err := checkIDs(ws); err != nil {
		return err
	}
	err := activeScoreScript.Run(ctx, s.rdb, []string{ActiveKey}, mode, ws, after.Milliseconds()).Err()
	if err != nil && err != redis.Nil {
		return redisErr(op+" "+ws, err)
	}
	return nil
}

// LeaseActive moves ws, when it is in the active index, to ttl from now
// (never earlier than it is): its owner holds it until then.
func (s *Store) LeaseActive(ctx context.Context, ws string, ttl time.Duration) error {
	return s.scoreActive(ctx, "lease active", "lease", ws, ttl)
}

// HandOffActive makes ws, when it is in the active index, due now: its
// owner let it go, and another node should take it at once.
func (s *Store) HandOffActive(ctx context.Context, ws string) error {
	return s.scoreActive(ctx, "hand off active", "handoff", ws, 0)
}

// DueActive reads up to n due workspaces of the active index and returns
// those whose lock is free, for the caller to take; full reports whether n
// were read (more may be due). Every workspace read is moved on: a locked
// one to its lock's expiry (its owner's lease moves it further while the
// owner lives), a free one to retry from now, so that a take that fails
// is tried again then and the next call reads the next page.
func (s *Store) DueActive(ctx context.Context, n int, retry time.Duration) (free []string, full bool, err error) {
	raw, err := activeDueScript.Run(ctx, s.rdb, []string{ActiveKey}, n).StringSlice()
	if err != nil {
		return nil, false, redisErr("due active workspaces", err)
	}
	if len(raw) == 0 {
		return nil, false, fmt.Errorf("due active workspaces: empty reply")
	}
	now, err := strconv.ParseInt(raw[0], 10, 64)
	if err != nil {
		return nil, false, fmt.Errorf("due active workspaces: time %q: %w", raw[0], err)
	}
	due := raw[1:]
	full = len(due) >= n
	var bad []any
	valid := due[:0:0]
	for _, ws := range due {
		if checkIDs(ws) != nil {
			bad = append(bad, ws) // never a workspace: nothing to take
			continue
		}
		valid = append(valid, ws)
	}
	if len(bad) > 0 {
		if err := s.rdb.ZRem(ctx, ActiveKey, bad...).Err(); err != nil {
			return nil, false, unavailable("due active workspaces", err)
		}
	}
	if len(valid) == 0 {
		return nil, full, nil
	}
	ttls := make([]*redis.DurationCmd, len(valid))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, ws := range valid {
			ttls[i] = p.PTTL(ctx, LockKey(ws))
		}
		return nil
	})
	if err != nil {
		return nil, false, unavailable("due active workspaces: locks", err)
	}
	moves := make([]redis.Z, len(valid))
	for i, ws := range valid {
		next := now + retry.Milliseconds()
		if d := ttls[i].Val(); d > 0 {
			next = now + d.Milliseconds()
		} else if d == -1 { // a lock without expiry: not ours to judge often
			next = now + time.Minute.Milliseconds()
		} else {
			free = append(free, ws)
		}
		moves[i] = redis.Z{Score: float64(next), Member: ws}
	}
	if err := s.rdb.ZAddArgs(ctx, ActiveKey, redis.ZAddArgs{XX: true, GT: true, Members: moves}).Err(); err != nil {
		return nil, false, unavailable("due active workspaces: move on", err)
	}
	return free, full, nil
}
