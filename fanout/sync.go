package fanout

import (
	"context"
	"errors"
	"fmt"

	"github.com/tandem-dev/tandem/eventlog"
)

// requestSync queues f to catch up from Redis.
func (h *Hub) requestSync(f *feed) { h.syncs.push(f) }

// syncLoop is one syncer: it takes feeds from the sync queue.
func (h *Hub) syncLoop(ctx context.Context) {
	for {
		f := h.syncs.pop(ctx)
		if f == nil {
			return
		}
		if err := h.syncFeed(ctx, f); err != nil && ctx.Err() == nil {
			// The audit, or the doorbell's resubscription once Redis is
			// back, asks again; clients poll Redis meanwhile.
			h.obs.Error(err)
		}
	}
}

// syncFeed brings f up to date with Redis: the newest events into an
// unready ring, then everything after the ring's head. One syncer works on
// a feed at a time; a request during the work makes it go again.
func (h *Hub) syncFeed(ctx context.Context, f *feed) error {
	f.mu.Lock()
	if f.syncing {
		f.resync = true
		f.mu.Unlock()
		return nil
	}
	f.syncing = true
	defer func() {
		f.mu.Lock()
		f.syncing = false
		f.mu.Unlock()
	}()
	for {
		f.resync = false
		ready, hi, gen, tag := f.ready, f.hi, f.gen, f.topTagLocked()
		f.mu.Unlock()
		if err := h.syncOnce(ctx, f, ready, hi, gen, tag); err != nil {
			return err
		}
		f.mu.Lock()
		if !f.resync {
			f.mu.Unlock()
			return nil
		}
	}
}

// The ring's top entry is read with its tag: a stream Redis rewound and
// wrote again past it holds another entry there, and the read resets.
func (h *Hub) syncOnce(ctx context.Context, f *feed, ready bool, hi uint64, gen, tag string) error {
	for attempt := 0; attempt < 3; attempt++ {
		if !ready {
			evs, head, err := h.src.Last(ctx, f.ws, f.sid, h.cfg.RingSize)
			if err != nil {
				return fmt.Errorf("sync %s/%s: %w", f.ws, f.sid, err)
			}
			hi, gen = f.fill(evs, head)
			f.mu.Lock()
			tag = f.topTagLocked()
			f.mu.Unlock()
		}
		for {
			evs, head, err := h.src.Read(ctx, f.ws, f.sid, eventlog.Cursor{Gen: gen, Index: hi, Tag: tag}, readPage)
			var reset *eventlog.ResetError
			if errors.As(err, &reset) {
				// The stream moved under the ring (a new generation, or
				// trimmed past it): start over from the newest events.
				f.mu.Lock()
				f.resetLocked()
				f.mu.Unlock()
				ready = false
				break
			}
			if err != nil {
				return fmt.Errorf("sync %s/%s: %w", f.ws, f.sid, err)
			}
			if len(evs) == 0 {
				return nil
			}
			f.offer(head.Gen, evs)
			hi, gen, tag = evs[len(evs)-1].Index, head.Gen, evs[len(evs)-1].Tag
			if len(evs) < readPage {
				return nil
			}
		}
	}
	return fmt.Errorf("sync %s/%s: stream keeps changing generation", f.ws, f.sid)
}
