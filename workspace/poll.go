package workspace

import (
	"context"
	"math/rand/v2"
)

// The poller: how a node finds workspaces that need an owner and have
// none (guarantee 5). The active set is scored by when to look at each
// workspace (eventlog/active.go): a live owner keeps its own workspace in
// the future, so a poll reads only what is due (new work, a lease that
// ran out) one bounded page at a time, whatever the number of workspaces,
// and every page read is moved on, so a dead owner's workspace is reached
// at any rank.

const (
	// pollPage is how many due workspaces one read returns, and
	// pollPages how many pages one poll reads at most (more only when the
	// pages are full: a backlog of due workspaces).
	pollPage  = 500
	pollPages = 8
)

// poll looks at the workspaces that may need an owner: those due in the
// active set and those this node has stream clients for. Any without a
// lock is taken.
func (m *Manager) poll(ctx context.Context) {
	retry := 2 * m.cfg.PollInterval
	for range pollPages {
		free, full, err := m.store.DueActive(ctx, pollPage, retry)
		if err != nil {
			return // Redis is away; the next poll tries again
		}
		// Nodes reading the same page at once try in different orders.
		rand.Shuffle(len(free), func(i, j int) { free[i], free[j] = free[j], free[i] })
		for _, ws := range free {
			m.tryTake(ctx, ws)
		}
		if !full || ctx.Err() != nil {
			break
		}
	}
	m.pollAudience(ctx)
}

// pollAudience takes the workspaces this node has stream clients for
// whose lock is free (their number is bounded by this node's clients).
func (m *Manager) pollAudience(ctx context.Context) {
	if m.audience == nil {
		return
	}
	var list []string
	present := m.audience.Presence()
	m.mu.Lock()
	for ws := range present {
		if m.owners[ws] == nil {
			list = append(list, ws)
		}
	}
	m.mu.Unlock()
	if len(list) == 0 {
		return
	}
	locked, err := m.store.Locked(ctx, list)
	if err != nil {
		return
	}
	for i, ws := range list {
		if !locked[i] {
			m.tryTake(ctx, ws)
		}
	}
}
