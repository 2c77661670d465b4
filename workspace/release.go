package workspace

// Keeping and releasing the workspace: the lock's extension, going idle,
// and handing the workspace back.

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"
)

// extendLoop keeps the lock: it extends it every third of its TTL and
// declares the ownership lost the first time an extension fails, whether
// the lock expired or was taken: redsync cannot tell, and either way
// another node may own the workspace now.
func (o *owner) extendLoop(ctx context.Context) {
	t := time.NewTicker(o.m.cfg.LockTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ectx, cancel := context.WithTimeout(ctx, o.m.cfg.LockTTL/3)
		err := o.mutex.Extend(ectx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			o.loseOwnership(fmt.Errorf("lock extension failed: %v", err))
			return
		}
		_ = o.m.store.ExpireOwner(ctx, o.ws, o.m.cfg.LockTTL)
		_ = o.m.store.LeaseActive(ctx, o.ws, o.m.cfg.LockTTL) // pollers look again when the lease runs out
	}
}

// release gives the workspace up: the owner record goes and the lock is
// unlocked, so that another node can take it at once.
func (o *owner) release(ctx context.Context) {
	if err := o.m.store.DeleteOwner(ctx, o.ws, o.epoch); err != nil {
		o.logger.Warn("owner record not removed", slog.Any("err", err))
	}
	if err := o.mutex.Unlock(ctx); err != nil {
		o.logger.Debug("unlock", slog.Any("err", err))
	}
	// Work still listed (a handover, or a prompt accepted while going
	// idle) is due at once, not when the lease would have run out.
	if err := o.m.store.HandOffActive(ctx, o.ws); err != nil {
		o.logger.Debug("hand off", slog.Any("err", err))
	}
}

// idle reports whether the owner can let the workspace go, and when so
// prepares it: the active mark is removed first and the inbox checked
// after, so that a prompt accepted meanwhile is never stranded.
func (o *owner) idle(ctx context.Context) bool {
	if o.holds.Load() > 0 {
		o.lastBusy = time.Now()
		return false
	}
	if h := time.Unix(0, o.lastHeld.Load()); h.After(o.lastBusy) {
		o.lastBusy = h
	}
	if time.Since(o.lastBusy) < o.m.cfg.IdleTimeout || len(o.backlog) > 0 {
		return false
	}
	for _, s := range o.sessions {
		if s.turn != nil || len(s.queue) > 0 || s.opening {
			o.lastBusy = time.Now()
			return false
		}
	}
	if o.hasSubscribers(ctx) {
		o.lastBusy = time.Now()
		return false
	}
	if err := o.m.store.UnmarkActive(ctx, o.ws); err != nil {
		return false
	}
	pending, err := o.m.store.InboxPending(ctx, o.ws)
	unread, err2 := o.readNew(ctx, 100)
	if o.stale(err2) {
		// The mark went before the fence said this owner is stale: put
		// it back for the workspace's real owner, whatever it does next.
		o.m.markActive(ctx, o.ws)
		return false
	}
	if err != nil || err2 != nil || pending > 0 || len(unread) > 0 {
		o.m.markActive(ctx, o.ws)
		for _, e := range unread {
			o.handle(ctx, e)
		}
		o.lastBusy = time.Now()
		return false
	}
	return true
}

// hasSubscribers reports whether any node has stream clients of the
// workspace.
func (o *owner) hasSubscribers(ctx context.Context) bool {
	v, err := o.m.store.PresenceReports(ctx, o.ws)
	if err != nil {
		return true // unknown: stay
	}
	now := time.Now().UnixMilli()
	for _, raw := range v {
		var p nodePresence
		if json.Unmarshal([]byte(raw), &p) == nil && p.Exp > now {
			for _, n := range p.Users {
				if n > 0 {
					return true
				}
			}
		}
	}
	return false
}
