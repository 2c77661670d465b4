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

// PresentUser is one user and their open streams, and the session they
// are typing in now, if any (a state that expires within TypingTTL).
type PresentUser struct {
	UserID      string `json:"userId"`
	Connections int    `json:"connections"`
	Typing      string `json:"typing,omitempty"`
}

// TypingTTL is how long a typing report lasts unless renewed: the page
// renews it while the person types (at most every 2 s), so it is gone
// within TypingTTL of them stopping.
const TypingTTL = 3 * time.Second

type typingState struct {
	session string
	until   time.Time
}

// Typing says that user is typing in session sid of ws (on), or stopped
// (!on). It is presence: broadcast to the workspace's clients with who is
// there (one presence event carries all of it, so the latest broadcast is
// all a client needs), reported across nodes, never written to a stream.
func (m *Manager) Typing(ctx context.Context, ws, sid, user string, on bool) error {
	if err := m.Exists(ctx, ws); err != nil {
		return err
	}
	m.typingMu.Lock()
	users := m.typing[ws]
	if users == nil {
		users = map[string]typingState{}
		m.typing[ws] = users
	}
	if on {
		users[user] = typingState{session: sid, until: time.Now().Add(TypingTTL)}
	} else if users[user].session == sid {
		delete(users, user)
	}
	m.typingMu.Unlock()
	m.typingChanged(ws)
	if on {
		time.AfterFunc(TypingTTL+50*time.Millisecond, func() { m.typingChanged(ws) }) // expired: say so
	}
	return nil
}

func (m *Manager) typingChanged(ws string) {
	select {
	case m.typingSig <- ws:
	default: // the next tick sees it
	}
}

// typingNow is the node's live typing reports (expired ones dropped).
func (m *Manager) typingNow(now time.Time) map[string]map[string]model.TypingReport {
	m.typingMu.Lock()
	defer m.typingMu.Unlock()
	out := map[string]map[string]model.TypingReport{}
	for ws, users := range m.typing {
		for u, st := range users {
			if !st.until.After(now) {
				delete(users, u)
				continue
			}
			if out[ws] == nil {
				out[ws] = map[string]model.TypingReport{}
			}
			out[ws][u] = model.TypingReport{Session: st.session, Until: st.until.UnixMilli()}
		}
		if len(users) == 0 {
			delete(m.typing, ws)
		}
	}
	return out
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
	typing := map[string]model.TypingReport{}
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
		for u, t := range p.Typing {
			if t.Until > now && t.Until > typing[u].Until {
				typing[u] = t
			}
		}
	}
	out := Presence{Users: make([]PresentUser, 0, len(sum))}
	for u, n := range sum {
		out.Users = append(out.Users, PresentUser{UserID: u, Connections: n, Typing: typing[u].Session})
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
	reportedTyping := map[string]map[string]model.TypingReport{}
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
		case ws := <-m.typingSig:
			recompute[ws] = true
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
		now := time.Now()
		cur := m.audience.Presence()
		typ := m.typingNow(now)
		// A node reports a workspace its clients are in, or one somebody
		// is typing in through it (their streams may be on another node).
		for ws := range typ {
			if _, ok := cur[ws]; !ok {
				cur[ws] = map[string]int{}
			}
		}
		full := now.Sub(refresh) >= m.cfg.PresenceInterval
		if full {
			refresh = now
		}
		var changed []string
		for ws, users := range cur {
			if !maps.Equal(users, reported[ws]) || !maps.Equal(typ[ws], reportedTyping[ws]) {
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
				if !full && !contains(changed, ws) {
					continue
				}
				b, _ := json.Marshal(nodePresence{Exp: exp, Users: users, Typing: typ[ws]})
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
				reported, reportedTyping = cur, typ
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
