package eventlog

import (
	"context"
	"fmt"
	"sync"

	"github.com/redis/go-redis/v9"
	"github.com/tandem-dev/tandem/eventlog/model"
)

// PurgeWorkspace removes every key of a deleted workspace whose owner let
// it go (lua/purge_workspace.lua): settings or tombstone, sessions and
// their streams, stream states and permission requests, inbox, fence,
// owner record, presence, and whatever else a SCAN of its hash tag finds
// (idempotency, rate and quota keys). Only PurgeOK changed anything. The active index
// (the one key without the workspace's tag) is left to the caller.
//
// The fence goes too: epochs are taken from Redis's clock
// (acquire_epoch.lua), so the first owner of a workspace created again
// later gets an epoch above any an ex-owner of the purged one holds.
func (s *Store) PurgeWorkspace(ctx context.Context, ws string) (model.PurgeStatus, error) {
	if err := checkIDs(ws); err != nil {
		return "", err
	}
	extra, err := s.scanTag(ctx, ws)
	if err != nil {
		return "", unavailable("purge workspace "+ws, err)
	}
	args := make([]any, 0, len(extra)+1)
	args = append(args, tag(ws)+":")
	for _, k := range extra {
		args = append(args, k)
	}
	res, err := purgeWorkspaceScript.Run(ctx, s.rdb,
		[]string{MetaKey(ws), SessionsKey(ws), LockKey(ws), FenceKey(ws), OwnerKey(ws), InboxKey(ws), PresenceKey(ws)},
		args...).Text()
	if err != nil {
		return "", unavailable("purge workspace "+ws, err)
	}
	switch st := model.PurgeStatus(res); st {
	case model.PurgeOK, model.PurgeNone, model.PurgeLive, model.PurgeDeleting, model.PurgeBusy:
		return st, nil
	}
	return "", fmt.Errorf("purge workspace %s: unexpected reply %q", ws, res)
}

// scanTag lists the keys a SCAN finds under ws's hash tag, the lock
// left out (the script refuses while it exists): the idempotency, rate
// and quota keys no set names, and any other, so that nothing of the
// workspace stays. Ids hold no glob character (checkIDs), so the pattern
// matches the tag literally. On a cluster every master is scanned.
func (s *Store) scanTag(ctx context.Context, ws string) ([]string, error) {
	pre := tag(ws) + ":"
	var mu sync.Mutex
	var out []string
	scan := func(ctx context.Context, c redis.UniversalClient) error {
		iter := c.Scan(ctx, 0, pre+"*", 500).Iterator()
		for iter.Next(ctx) {
			if k := iter.Val(); k != LockKey(ws) {
				mu.Lock()
				out = append(out, k)
				mu.Unlock()
			}
		}
		return iter.Err()
	}
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return scan(ctx, c) })
		return out, err
	}
	return out, scan(ctx, s.rdb)
}
