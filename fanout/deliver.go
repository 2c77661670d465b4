package fanout

import (
	"context"
	"time"

	"github.com/tandem-dev/tandem/sse"
)

// keepaliveFrame is written to every idle client; its bytes are never
// modified.
var keepaliveFrame = sse.AppendKeepalive(nil)

// schedule queues f for delivery to its attached clients.
func (h *Hub) schedule(f *feed) { h.deliveries.push(f) }

// deliverLoop is one delivery worker.
func (h *Hub) deliverLoop(ctx context.Context) {
	w := &worker{h: h}
	for {
		f := h.deliveries.pop(ctx)
		if f == nil {
			return
		}
		w.deliver(f)
	}
}

// worker holds a delivery goroutine's scratch space, reused across feeds.
type worker struct {
	h       *Hub
	clients []*client
	frames  []frame
	scratch []byte
}

// deliver writes to f's attached clients what they miss. Only one worker
// delivers a feed at a time; a change while it writes makes it go again.
func (w *worker) deliver(f *feed) {
	f.mu.Lock()
	if f.delivering {
		f.again = true
		f.mu.Unlock()
		return
	}
	f.delivering = true
	for {
		f.again = false
		w.snapshotLocked(f)
		hi, gen, keepalive := f.hi, f.gen, f.keepaliveDue
		hiTag := f.topTagLocked()
		eph, ephVer := f.eph, f.ephVer
		f.keepaliveDue = false
		f.mu.Unlock()

		w.write(f, hi, hiTag, gen, keepalive, eph, ephVer)

		f.mu.Lock()
		if !f.again {
			break
		}
	}
	f.delivering = false
	f.mu.Unlock()
	clear(w.clients)
	w.clients = w.clients[:0]
	clear(w.frames)
	w.frames = w.frames[:0]
}

// snapshotLocked copies the attached clients and the frames the furthest
// behind of them misses. Clients behind the ring are detached: they catch
// up from Redis on their own goroutine.
func (w *worker) snapshotLocked(f *feed) {
	w.clients = w.clients[:0]
	w.frames = w.frames[:0]
	lo := f.lo()
	from := f.hi + 1
	for c := range f.attached {
		if !f.ready || (c.cursor != 0 && c.gen != f.gen) || c.cursor+1 < lo || (c.cursor >= lo && c.cursor <= f.hi && !sameEntry(f.at(c.cursor).tag, c.tag)) {
			f.detachLocked(c, nil)
			continue
		}
		w.clients = append(w.clients, c)
		from = min(from, c.cursor+1)
	}
	for idx := from; idx <= f.hi; idx++ {
		w.frames = append(w.frames, *f.at(idx))
	}
}

// write sends each snapshotted client the frames after its cursor up to hi
// (and the latest broadcast, if it has not had it, and a keepalive to idle
// ones), never blocking.
func (w *worker) write(f *feed, hi uint64, hiTag, gen string, keepalive bool, eph []byte, ephVer uint64) {
	now := time.Now()
	nowNs := now.UnixNano()
	idleBefore := now.Add(-w.h.cfg.Keepalive).UnixNano() + int64(time.Second)
	var first uint64
	if len(w.frames) > 0 {
		first = w.frames[0].idx
	}
	for _, c := range w.clients {
		var p []byte
		shared := true
		n := 0
		needEph := c.ephVer < ephVer
		switch {
		case c.cursor < hi:
			fs := w.frames[c.cursor+1-first:]
			n = len(fs)
			if n == 1 && !needEph {
				p = fs[0].b
			} else {
				shared = false
				w.scratch = w.scratch[:0]
				if needEph {
					w.scratch = append(w.scratch, eph...)
				}
				for i := range fs {
					w.scratch = append(w.scratch, fs[i].b...)
				}
				p = w.scratch
			}
			w.h.obs.Delivered(n, now.UnixMilli()-fs[0].createdAt)
		case needEph:
			p = eph
		case keepalive && c.lastWrite.Load() < idleBefore:
			p = keepaliveFrame
		default:
			continue
		}
		written, err := c.sink.tryWrite(p)
		if err != nil {
			c.close()
			continue
		}
		if c.cursor != hi {
			c.tag = hiTag
		}
		c.cursor, c.gen = hi, gen
		if needEph {
			c.ephVer = ephVer
		}
		c.lastWrite.Store(nowNs)
		if written < len(p) {
			rest := p[written:]
			if !shared {
				rest = append([]byte(nil), rest...)
			}
			f.mu.Lock()
			if _, ok := f.attached[c]; ok {
				f.detachLocked(c, rest)
			}
			f.mu.Unlock()
		}
	}
}
