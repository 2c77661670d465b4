package fanout

import (
	"sync"
	"sync/atomic"
	"time"
)

// client is one SSE stream.
type client struct {
	// Set by Serve; never change.
	h       *Hub
	f       *feed
	sink    sink
	user    string
	expires time.Time // zero: never

	// Owned, not locked: by whoever writes to the client, which is its
	// follow loop (Serve's goroutine, then followDetached's) while it is
	// not in f.attached, and the one worker delivering f while it is.
	// Attaching and detaching happen under f.mu, which hands the
	// ownership over. snapshotLocked reads them under f.mu, which the
	// delivering worker holds then.
	gen            string
	cursor         uint64
	tag            string // the tag of the entry at cursor ("" when not known)
	ephVer         uint64 // the last broadcast it was sent
	pending        []byte // bytes of a frame a non-blocking write left unwritten
	resumeReported bool   // the Resumed observation was made

	lastWrite atomic.Int64 // unix nanoseconds of the last write; read by the sweeper and the workers

	closeOnce sync.Once     // close's work runs once, under it (see the Hub's lock order)
	done      chan struct{} // closed by close
}

func (c *client) touch(now time.Time) { c.lastWrite.Store(now.UnixNano()) }

func (c *client) closed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// close ends the stream: the connection is closed (the client reconnects
// with its Last-Event-ID) and the client forgotten. Safe to call more than
// once and from any goroutine.
func (c *client) close() {
	c.closeOnce.Do(func() {
		close(c.done)
		c.sink.close()
		f := c.f
		f.mu.Lock()
		delete(f.attached, c)
		f.mu.Unlock()
		h := c.h
		h.mu.Lock()
		delete(h.clients, c)
		h.countLocked(f.ws, c.user, -1)
		h.mu.Unlock()
		h.release(f)
		h.unreserve(c.user)
		h.obs.Clients(-1)
	})
}

// detachLocked moves an attached client to a goroutine of its own, which
// first writes pending. f.mu must be held.
func (f *feed) detachLocked(c *client, pending []byte) {
	delete(f.attached, c)
	c.pending = pending
	f.h.obs.Fallback()
	if c.closed() {
		return
	}
	// When the hub is shutting down spawn refuses; Run closes every client
	// registered before that, this one included.
	f.h.spawn(func() { f.h.followDetached(c) })
}

// spawn runs fn on a goroutine that Run waits for; it refuses once the hub
// is shutting down.
func (h *Hub) spawn(fn func()) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing {
		return false
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		fn()
	}()
	return true
}
