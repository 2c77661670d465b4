package eventlog

import (
	"context"
	"fmt"
	"time"

	"github.com/tandem-dev/tandem/eventlog/model"
)

// Permission requests (see model.PermissionClaim): the owner records each
// request of the agent under the fence before it appends the
// permission.requested event; any node claims an answer, first one wins,
// and the claim puts it in the inbox for the owner in the same script.

// PermsKey is the hash of a session's permission requests and answers.
func PermsKey(ws, sid string) string { return tag(ws) + ":perms:" + sid }

var (
	permissionPutScript   = loadScript("permission_put", true)
	permissionClaimScript = loadScript("permission_claim", false)
)

// PutPermission records request req (JSON) of id rid while epoch is the
// workspace's writer (else ErrStaleWriter), unless it is recorded already,
// and returns the recorded one. The hash expires ttl after its last
// write.
func (s *Store) PutPermission(ctx context.Context, ws, sid string, epoch uint64, rid string, req []byte, ttl time.Duration) ([]byte, error) {
	return s.putPermission(ctx, ws, sid, epoch, rid, "r:", req, ttl)
}

// PermissionDone records, while epoch is the writer, that the owner
// carried out the answer of request rid (appended its permission.resolved
// and replied to the agent), so that later owners do not load it again.
func (s *Store) PermissionDone(ctx context.Context, ws, sid string, epoch uint64, rid string, ttl time.Duration) error {
	_, err := s.putPermission(ctx, ws, sid, epoch, rid, "d:", []byte("1"), ttl)
	return err
}

func (s *Store) putPermission(ctx context.Context, ws, sid string, epoch uint64, rid, prefix string, val []byte, ttl time.Duration) ([]byte, error) {
	if err := checkIDs(ws, sid, rid); err != nil {
		return nil, err
	}
	res, err := s.RunScript(ctx, permissionPutScript, []string{FenceKey(ws), PermsKey(ws, sid)}, epoch, prefix+rid, string(val), ttl.Milliseconds())
	if err != nil {
		return nil, redisErr("record permission request "+rid, err)
	}
	if len(res) != 1 {
		return nil, fmt.Errorf("record permission request %s: unexpected reply %v", rid, res)
	}
	str, _ := res[0].(string)
	return []byte(str), nil
}

// ClaimPermission runs the claim script (lua/permission_claim.lua): the
// answer is checked against the request, refused when another came first,
// and put in the inbox, in one step; the owner's doorbell rings.
func (s *Store) ClaimPermission(ctx context.Context, ws string, c model.PermissionClaim) (model.PermissionClaimed, error) {
	if err := checkIDs(ws, c.Session, c.RequestID); err != nil {
		return model.PermissionClaimed{}, err
	}
	res, err := s.runStrings(ctx, permissionClaimScript,
		[]string{MetaKey(ws), SessionKey(ws, c.Session), PermsKey(ws, c.Session), InboxKey(ws)},
		c.RequestID, c.OptionID, string(c.Resolution), c.Session, c.User, NotifyChannel(ws))
	if err != nil {
		return model.PermissionClaimed{}, unavailable("answer permission "+c.RequestID, err)
	}
	if len(res) != 3 {
		return model.PermissionClaimed{}, fmt.Errorf("answer permission %s: unexpected reply %v", c.RequestID, res)
	}
	return model.PermissionClaimed{Status: model.PermissionStatus(res[0]), Body: []byte(res[1]), InboxID: res[2]}, nil
}

// Permissions returns a session's permission requests, their answers and
// which of them the owner carried out.
func (s *Store) Permissions(ctx context.Context, ws, sid string) (model.PermissionSet, error) {
	if err := checkIDs(ws, sid); err != nil {
		return model.PermissionSet{}, err
	}
	v, err := s.rdb.HGetAll(ctx, PermsKey(ws, sid)).Result()
	if err != nil {
		return model.PermissionSet{}, unavailable("permissions", err)
	}
	return model.ParsePermissionSet(v), nil
}
