package workspace

import (
	"context"
	"encoding/json"
	"time"

	"github.com/redis/go-redis/v9"
)

// nodePresence is one node's report of its stream clients of a workspace,
// a field of {ws:ID}:presence named after the node.
type nodePresence struct {
	Exp   int64          `json:"exp"` // ms; ignore the report after this
	Users map[string]int `json:"users"`
}

// presenceLoop reports the node's stream clients per workspace every
// PresenceInterval, so that owners know whether anyone is watching, and
// removes its reports of workspaces it no longer has clients for.
func (m *Manager) presenceLoop(ctx context.Context) {
	if m.presence == nil {
		return
	}
	t := time.NewTicker(m.cfg.PresenceInterval)
	defer t.Stop()
	reported := map[string]bool{}
	for {
		select {
		case <-ctx.Done():
			// Leave no report behind: this node's clients are gone.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			for ws := range reported {
				m.rdb.HDel(cctx, presenceKey(ws), m.cfg.NodeID)
			}
			cancel()
			return
		case <-t.C:
		}
		cur := m.presence.Presence()
		exp := time.Now().Add(3 * m.cfg.PresenceInterval).UnixMilli()
		_, _ = m.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for ws, users := range cur {
				b, _ := json.Marshal(nodePresence{Exp: exp, Users: users})
				p.HSet(ctx, presenceKey(ws), m.cfg.NodeID, b)
				p.PExpire(ctx, presenceKey(ws), 10*m.cfg.PresenceInterval)
			}
			for ws := range reported {
				if _, ok := cur[ws]; !ok {
					p.HDel(ctx, presenceKey(ws), m.cfg.NodeID)
				}
			}
			return nil
		})
		reported = map[string]bool{}
		for ws := range cur {
			reported[ws] = true
		}
	}
}
