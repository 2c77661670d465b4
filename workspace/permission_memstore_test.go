package workspace

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"time"

	"github.com/tandem-dev/tandem/eventlog/model"
)

// memStore's permissions hash: lua/permission_put.lua and
// lua/permission_claim.lua of eventlog (the hash's expiry is not kept).

func (d *memData) permHash(ws, sid string) map[string]string {
	if d.perms == nil {
		d.perms = map[string]map[string]string{}
	}
	h := d.perms[skey(ws, sid)]
	if h == nil {
		h = map[string]string{}
		d.perms[skey(ws, sid)] = h
	}
	return h
}

func (s *memStore) putPerm(ctx context.Context, method, ws, sid string, epoch uint64, field string, val []byte) ([]byte, error) {
	var out []byte
	err := s.do(ctx, &memCall{Method: method, WS: ws, Epoch: epoch}, func(d *memData) error {
		if err := d.checkFence(method, ws, epoch); err != nil {
			return err
		}
		h := d.permHash(ws, sid)
		if _, ok := h[field]; !ok {
			h[field] = string(val)
		}
		out = []byte(h[field])
		return nil
	})
	return out, err
}

func (s *memStore) PutPermission(ctx context.Context, ws, sid string, epoch uint64, rid string, req []byte, ttl time.Duration) ([]byte, error) {
	return s.putPerm(ctx, "PutPermission", ws, sid, epoch, "r:"+rid, req)
}

func (s *memStore) PermissionDone(ctx context.Context, ws, sid string, epoch uint64, rid string, ttl time.Duration) error {
	_, err := s.putPerm(ctx, "PermissionDone", ws, sid, epoch, "d:"+rid, []byte("1"))
	return err
}

func (s *memStore) ClaimPermission(ctx context.Context, ws string, c model.PermissionClaim) (model.PermissionClaimed, error) {
	if !model.ValidID(ws) || !model.ValidID(c.Session) || !model.ValidID(c.RequestID) {
		return model.PermissionClaimed{}, model.ErrInvalidID
	}
	var out model.PermissionClaimed
	err := s.do(ctx, &memCall{Method: "ClaimPermission", WS: ws}, func(d *memData) error {
		m := d.meta[ws]
		if len(m) == 0 || m["deletedAt"] != "" {
			out.Status = model.PermissionNoWorkspace
			return nil
		}
		rec := d.sessRec[skey(ws, c.Session)]
		if rec["id"] == "" {
			out.Status = model.PermissionNoSession
			return nil
		}
		h := d.permHash(ws, c.Session)
		req, ok := h["r:"+c.RequestID]
		if !ok {
			out.Status = model.PermissionNotFound
			return nil
		}
		if prev, ok := h["a:"+c.RequestID]; ok {
			out = model.PermissionClaimed{Status: model.PermissionResolved, Body: []byte(prev)}
			return nil
		}
		if rec["destroyedAt"] != "" {
			out.Status = model.PermissionDestroyed
			return nil
		}
		if c.OptionID != "" {
			var r struct{ OptionIDs []string }
			_ = json.Unmarshal([]byte(req), &r)
			if !slices.Contains(r.OptionIDs, c.OptionID) {
				out = model.PermissionClaimed{Status: model.PermissionInvalidOption, Body: []byte(req)}
				return nil
			}
		}
		h["a:"+c.RequestID] = string(c.Resolution)
		id := d.xadd(ws, model.InboxEntry{Kind: cmdPermission, Session: c.Session, User: c.User, Text: string(c.Resolution)})
		d.signal(ws, sigInbox)
		out = model.PermissionClaimed{Status: model.PermissionOK, Body: c.Resolution, InboxID: id}
		return nil
	})
	return out, err
}

func (s *memStore) Permissions(ctx context.Context, ws, sid string) (model.PermissionSet, error) {
	var h map[string]string
	err := s.do(ctx, &memCall{Method: "Permissions", WS: ws}, func(d *memData) error {
		h = maps.Clone(d.permHash(ws, sid))
		return nil
	})
	if err != nil {
		return model.PermissionSet{}, err
	}
	return model.ParsePermissionSet(h), nil
}
