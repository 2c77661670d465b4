package workspace

import (
	"context"
	"encoding/json"
	"maps"
	"sort"
	"time"

	"github.com/tandem-dev/tandem/eventlog/model"
)

// Presence is who is in a workspace now, across all nodes.
type Presence struct {
	Users []PresentUser `json:"users"`
}

// PresentUser is one user and their open streams.
type PresentUser struct {
	UserID      string `json:"userId"`
	Connections int    `json:"connections"`
}

// nodePresence is one node's report of its stream clients of a workspace.
type nodePresence = model.PresenceReport

const sigPresence = "presence"

// GetPresence returns the workspace's presence from every node's report.
func (m *Manager) GetPresence(ctx context.Context, ws string) (Presence, error) {
	if err := m.Exists(ctx, ws); err != nil {
		return Presence{}, err
	}
	return m.aggregate(ctx, ws)
}

func (m *Manager) aggregate(ctx context.Context, ws string) (Presence, error) {
	v, err := m.store.PresenceReports(ctx, ws)
	if err != nil {
		return Presence{}, err
	}
	return aggregate(v, time.Now().UnixMilli()), nil
}

func aggregate(reports map[string]string, now int64) Presence {
	sum := map[string]int{}
	for _, raw := range reports {
		var p nodePresence
		if json.Unmarshal([]byte(raw), &p) != nil || p.Exp <= now {
			continue
		}
		for u, n := range p.Users {
			if n > 0 {
				sum[u] += n
			}
		}
	}
	out := Presence{Users: make([]PresentUser, 0, len(sum))}
	for u, n := range sum {
		out.Users = append(out.Users, PresentUser{UserID: u, Connections: n})
	}
	sort.Slice(out.Users, func(i, j int) bool { return out.Users[i].UserID < out.Users[j].UserID })
	return out
}

// presenceLoop keeps presence true across nodes. It reports the node's
// stream clients per workspace (at once when they change, and every
// PresenceInterval so that reports of a dead node expire), rings the
// workspace's doorbell when this node's part changed, and sends the
// node's clients a presence event whenever the workspace's presence
// changed, whichever node it changed on.
func (m *Manager) presenceLoop(ctx context.Context) {
	if m.audience == nil {
		return
	}
	t := time.NewTicker(m.cfg.PresenceInterval)
	defer t.Stop()
	reported := map[string]map[string]int{}
	sent := map[string]string{} // ws → presence JSON last broadcast
	refresh := time.Time{}
	for {
		recompute := map[string]bool{}
		select {
		case <-ctx.Done():
			// Leave no report behind: this node's clients are gone.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			drop := make([]string, 0, len(reported))
			for ws := range reported {
				drop = append(drop, ws)
			}
			_ = m.store.ReportPresence(cctx, m.cfg.NodeID, nil, drop, drop, 10*m.cfg.PresenceInterval, sigPresence)
			cancel()
			return
		case <-m.audience.PresenceChanged():
		case ws := <-m.presenceSig:
			recompute[ws] = true
		case <-t.C:
		}
	drain:
		for {
			select {
			case ws := <-m.presenceSig:
				recompute[ws] = true
			default:
				break drain
			}
		}
		cur := m.audience.Presence()
		now := time.Now()
		full := now.Sub(refresh) >= m.cfg.PresenceInterval
		if full {
			refresh = now
		}
		var changed []string
		for ws, users := range cur {
			if !maps.Equal(users, reported[ws]) {
				changed = append(changed, ws)
			}
		}
		for ws := range reported {
			if _, ok := cur[ws]; !ok {
				changed = append(changed, ws)
			}
		}
		if full || len(changed) > 0 {
			exp := now.Add(3 * m.cfg.PresenceInterval).UnixMilli()
			put := map[string][]byte{}
			for ws, users := range cur {
				if !full && maps.Equal(users, reported[ws]) {
					continue
				}
				b, _ := json.Marshal(nodePresence{Exp: exp, Users: users})
				put[ws] = b
			}
			var drop []string
			for ws := range reported {
				if _, ok := cur[ws]; !ok {
					drop = append(drop, ws)
				}
			}
			err := m.store.ReportPresence(ctx, m.cfg.NodeID, put, drop, changed, 10*m.cfg.PresenceInterval, sigPresence)
			if err == nil {
				reported = cur
			}
		}
		// What this node's clients see: on the ticker for every workspace
		// they are in (reports of dead nodes expire), otherwise for the
		// workspaces whose presence was signalled.
		for ws := range cur {
			if !full && !recompute[ws] && !contains(changed, ws) {
				continue
			}
			p, err := m.aggregate(ctx, ws)
			if err != nil {
				continue
			}
			b, _ := json.Marshal(p)
			if sent[ws] != string(b) {
				sent[ws] = string(b)
				m.audience.Broadcast(ws, sigPresence, b)
			}
		}
		for ws := range sent {
			if _, ok := cur[ws]; !ok {
				delete(sent, ws)
			}
		}
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
