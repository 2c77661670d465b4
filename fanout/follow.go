package fanout

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/tandem-dev/tandem/eventlog"
	"github.com/tandem-dev/tandem/internal/retry"
	"github.com/tandem-dev/tandem/sse"
)

// Stream is what a client asked for.
type Stream struct {
	Workspace string
	Session   string
	// After is the cursor the stream starts after; the zero Cursor is the
	// start of the stream.
	After eventlog.Cursor
	// Resumed says After came from the client (Last-Event-ID or ?cursor=).
	Resumed bool
	// User is the identity of the client, for presence.
	User string
	// Expires ends the stream at this time (the client's token expiry);
	// zero means never.
	Expires time.Time
}

// Serve takes over the response and streams events to the client. It
// returns once the client is attached to the session's feed (the
// connection was hijacked and lives on in the hub) or the stream ended.
// It fails with ErrClosed, before writing anything, when the hub is
// shutting down (once it has written the response head it ends the stream
// instead and returns nil).
func (h *Hub) Serve(w http.ResponseWriter, r *http.Request, st Stream) error {
	if !h.reserve(st.User) {
		return ErrTooManyStreams
	}
	f, err := h.acquire(st.Workspace, st.Session)
	if err != nil {
		h.unreserve(st.User)
		return err
	}
	s, err := h.open(w, h.cfg.Retry, h.cfg.WriteTimeout)
	if err != nil {
		h.release(f)
		h.unreserve(st.User)
		return err
	}
	c := &client{
		h:       h,
		f:       f,
		sink:    s,
		user:    st.User,
		expires: st.Expires,
		gen:     st.After.Gen,
		cursor:  st.After.Index,
		tag:     st.After.Tag,
		done:    make(chan struct{}),
	}
	c.touch(time.Now())
	h.mu.Lock()
	if h.closing {
		// The hub began shutting down while the response head and retry:
		// went out: end this stream as Run ends the others, a clean end
		// the client reconnects from (to another node).
		h.mu.Unlock()
		s.close()
		h.release(f)
		h.unreserve(st.User)
		return nil
	}
	h.clients[c] = struct{}{}
	h.countLocked(f.ws, c.user, 1)
	h.mu.Unlock()
	h.obs.Clients(1)
	if !st.Resumed {
		c.resumeReported = true
	}
	if h.follow(r.Context(), c) {
		return nil
	}
	c.close()
	return nil
}

// followDetached is the goroutine of a client that fell out of the fast
// path. It ends when the client is attached again or closed.
func (h *Hub) followDetached(c *client) {
	if !h.follow(context.Background(), c) {
		c.close()
	}
}

// Limits of one catch-up step.
const (
	readPage     = 1000
	maxBatchSize = 64 << 10
	readTimeout  = 5 * time.Second
	pollInterval = time.Second
)

// follow writes to c what it misses, from the feed's ring when its cursor
// is inside it and from Redis when it is older, until it has caught up. It
// then attaches c to the feed and returns true, if c's sink can be written
// without blocking; otherwise it waits for more and goes on. It returns
// false when the stream must end (client gone, hub closing, parent done).
func (h *Hub) follow(parent context.Context, c *client) bool {
	f := c.f
	var batch []byte
	backoff := retry.Exponential(50*time.Millisecond, 2*time.Second)
	// While a full page from Redis is written, the next one is read: a
	// client far behind is served at the pace of the slower of the two,
	// not of their sum. The read's goroutine is waited for on every way
	// out.
	var pre chan pageRead
	defer func() {
		if pre != nil {
			<-pre
		}
	}()
	for {
		if c.closed() || parent.Err() != nil {
			return false
		}
		if len(c.pending) > 0 {
			if err := c.sink.write(c.pending); err != nil {
				return false
			}
			c.pending = nil
			c.touch(time.Now())
		}

		f.mu.Lock()
		if c.ephVer < f.ephVer {
			eph, ver := f.eph, f.ephVer
			f.mu.Unlock()
			if err := c.sink.write(eph); err != nil {
				return false
			}
			c.ephVer = ver
			c.touch(time.Now())
			continue
		}
		if f.ready && c.cursor <= f.hi && c.cursor+1 >= f.lo() && (c.cursor == 0 || c.gen == f.gen) && f.holdsLocked(c.cursor, c.tag) {
			if !c.resumeReported {
				c.resumeReported = true
				h.obs.Resumed(true)
			}
			if c.cursor == f.hi {
				if c.sink.nonBlocking() {
					c.gen = f.gen
					f.attached[c] = struct{}{}
					f.mu.Unlock()
					return true
				}
				wake := f.wake
				f.mu.Unlock()
				if !h.wait(parent, c, wake, 0) {
					return false
				}
				continue
			}
			// Copy the frame references under the lock; write outside it.
			batch = batch[:0]
			var oldest int64
			n := 0
			for idx := c.cursor + 1; idx <= f.hi && len(batch) < maxBatchSize; idx++ {
				fr := f.at(idx)
				if n == 0 {
					oldest = fr.createdAt
				}
				batch = append(batch, fr.b...)
				n++
			}
			gen, last := f.gen, c.cursor+uint64(n)
			tag := f.at(last).tag
			f.mu.Unlock()
			if err := c.sink.write(batch); err != nil {
				return false
			}
			c.gen, c.cursor, c.tag = gen, last, tag
			c.touch(time.Now())
			h.obs.Delivered(n, time.Now().UnixMilli()-oldest)
			continue
		}
		wake := f.wake
		f.mu.Unlock()

		// Behind the ring, or the ring is not ready: read from Redis.
		at := eventlog.Cursor{Gen: c.gen, Index: c.cursor, Tag: c.tag}
		var r pageRead
		if pre != nil {
			r = <-pre
			pre = nil
		}
		if r.after != at || (r.evs == nil && r.err == nil) {
			r = h.readPage(parent, f, at)
		}
		evs, head, err := r.evs, r.head, r.err
		var reset *eventlog.ResetError
		switch {
		case errors.As(err, &reset):
			if !c.resumeReported {
				c.resumeReported = true
				h.obs.Resumed(false)
			}
			if err := c.sink.write(resetFrame(reset)); err != nil {
				return false
			}
			c.gen, c.cursor, c.tag = reset.Continue.Gen, reset.Continue.Index, reset.Continue.Tag
			c.touch(time.Now())
			continue
		case err != nil:
			h.obs.Error(err)
			if !h.wait(parent, c, nil, backoff.NextBackOff()) {
				return false
			}
			continue
		}
		backoff.Reset()
		if !c.resumeReported {
			c.resumeReported = true
			h.obs.Resumed(true)
		}
		if len(evs) == 0 {
			// Redis has nothing newer and the ring is not ready (or is
			// behind Redis): wait for it, polling Redis meanwhile in case
			// the doorbell is down.
			if !h.wait(parent, c, wake, pollInterval) {
				return false
			}
			continue
		}
		h.obs.Fallback()
		if len(evs) == readPage {
			next := evs[len(evs)-1].Cursor(head.Gen)
			pre = make(chan pageRead, 1)
			go func() { pre <- h.readPage(parent, f, next) }()
		}
		batch = batch[:0]
		for i := range evs {
			batch = appendFrame(batch, &evs[i])
		}
		if err := c.sink.write(batch); err != nil {
			return false
		}
		c.gen, c.cursor, c.tag = head.Gen, evs[len(evs)-1].Index, evs[len(evs)-1].Tag
		c.touch(time.Now())
		h.obs.Delivered(len(evs), time.Now().UnixMilli()-evs[0].CreatedAt)
	}
}

// pageRead is one page read from Redis after a cursor.
type pageRead struct {
	after eventlog.Cursor
	evs   []eventlog.Event
	head  eventlog.Cursor
	err   error
}

func (h *Hub) readPage(parent context.Context, f *feed, after eventlog.Cursor) pageRead {
	ctx, cancel := context.WithTimeout(parent, readTimeout)
	defer cancel()
	evs, head, err := h.src.Read(ctx, f.ws, f.sid, after, readPage)
	return pageRead{after: after, evs: evs, head: head, err: err}
}

// wait blocks until wake is closed, d passes (0: no limit), or the stream
// must end (false). It writes keepalives while it waits.
func (h *Hub) wait(parent context.Context, c *client, wake <-chan struct{}, d time.Duration) bool {
	var limit <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		limit = t.C
	}
	var expiry <-chan time.Time
	if !c.expires.IsZero() {
		t := time.NewTimer(time.Until(c.expires))
		defer t.Stop()
		expiry = t.C
	}
	for {
		idle := time.Since(time.Unix(0, c.lastWrite.Load()))
		ka := time.NewTimer(max(h.cfg.Keepalive-idle, 0))
		select {
		case <-wake:
			ka.Stop()
			return true
		case <-limit:
			ka.Stop()
			return true
		case <-ka.C:
			if err := c.sink.write(keepaliveFrame); err != nil {
				return false
			}
			c.touch(time.Now())
		case <-expiry:
			ka.Stop()
			return false
		case <-c.done:
			ka.Stop()
			return false
		case <-h.quit:
			ka.Stop()
			return false
		case <-parent.Done():
			ka.Stop()
			return false
		}
	}
}

// Broadcast sends every client of workspace ws on this node an event that
// is not persisted (it carries no id), such as presence. Only the latest
// broadcast of a workspace matters: one a client has not been sent yet is
// replaced by the next, and clients that connect later get the latest.
func (h *Hub) Broadcast(ws, event string, data []byte) {
	frame := sse.AppendEvent(nil, "", event, data)
	h.mu.Lock()
	h.lastEph[ws] = frame
	var feeds []*feed
	if w := h.workspaces[ws]; w != nil {
		for _, f := range w.feeds {
			feeds = append(feeds, f)
		}
	}
	h.mu.Unlock()
	for _, f := range feeds {
		f.mu.Lock()
		f.eph = frame
		f.ephVer++
		f.changedLocked()
		f.mu.Unlock()
	}
}

// resetFrame is the reset event of a cursor that cannot be resumed.
func resetFrame(re *eventlog.ResetError) []byte {
	return sse.AppendReset(nil, re.ReasonCode(), re.OldestID())
}

// reserve counts one more stream of user, unless the user has the most
// allowed.
func (h *Hub) reserve(user string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cfg.MaxStreamsPerUser > 0 && h.perUser[user] >= h.cfg.MaxStreamsPerUser {
		return false
	}
	h.perUser[user]++
	return true
}

func (h *Hub) unreserve(user string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.perUser[user]--; h.perUser[user] <= 0 {
		delete(h.perUser, user)
	}
}
