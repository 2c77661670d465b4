package fanout

import (
	"sync"
	"time"

	"github.com/tandem-dev/tandem/eventlog"
	"github.com/tandem-dev/tandem/sse"
)

// frame is one event encoded for the wire, shared by every client of the
// node. Its bytes are never modified after creation.
type frame struct {
	idx       uint64
	createdAt int64
	tag       string // the entry's tag (eventlog.Cursor), "" for untagged entries
	b         []byte
}

func encodeFrame(ev *eventlog.Event) frame {
	b := appendFrame(make([]byte, 0, 2*len(ev.ID)+len(ev.Type)+len(ev.Body)+160), ev)
	return frame{idx: ev.Index, createdAt: ev.CreatedAt, tag: ev.Tag, b: b}
}

// sameEntry reports whether tags a and b may name the same entry: they are
// equal, or one is unknown.
func sameEntry(a, b string) bool { return a == "" || b == "" || a == b }

// topTagLocked is the tag of the ring's newest frame, "" when it is empty.
func (f *feed) topTagLocked() string {
	if f.n == 0 {
		return ""
	}
	return f.at(f.hi).tag
}

// holdsLocked reports whether a client at cursor idx with tag may be
// served from the ring: its own entry is there with that tag (a tagged
// cursor just before the ring cannot be checked, and goes to Redis).
func (f *feed) holdsLocked(idx uint64, tag string) bool {
	if idx == 0 || tag == "" {
		return true
	}
	if idx < f.lo() || idx > f.hi {
		return false
	}
	return sameEntry(f.at(idx).tag, tag)
}

// appendFrame appends ev as an SSE event to b. The event's JSON is written
// straight after "data: " by its own encoder (one line: compact JSON,
// strings quoted); sse checks that and re-encodes if it ever is not.
func appendFrame(b []byte, ev *eventlog.Event) []byte {
	return sse.AppendEventFunc(b, ev.ID, ev.Type, ev.AppendJSON)
}

// feed is the node's buffer of one session stream: the most recent frames
// (the ring) and the clients attached to it.
type feed struct {
	h       *Hub // h, ws and sid never change
	ws, sid string

	// Guarded by the hub's mu.
	refs      int       // clients of the feed (acquire, release)
	idleSince time.Time // when refs last fell to 0

	// Guarded by the mu of the hub's queue they say the feed is in
	// (workQueue), not by the feed's mu.
	queued     bool // in h.deliveries
	syncQueued bool // in h.syncs

	mu sync.Mutex
	// Everything below is guarded by mu (the ring's elements too; the
	// frames' bytes never change once pushed, so they are read outside
	// it). eph and ephVer of a feed acquire has just made are set before
	// anyone else can see the feed.
	ready bool   // synced with Redis since the doorbell was subscribed
	gen   string // generation of the stream the ring holds
	hi    uint64 // index of the newest frame known (valid when ready)
	ring  []frame
	start int // ring position of the oldest frame
	n     int // frames in the ring
	bytes int
	wake  chan struct{} // closed and replaced whenever hi moves or the feed resets

	attached     map[*client]struct{}
	keepaliveDue bool
	// eph is the latest broadcast of the workspace (presence): a frame
	// without id that replaces the one before; ephVer counts broadcasts.
	eph        []byte
	ephVer     uint64
	delivering bool // a worker is writing to attached clients
	again      bool // something changed while delivering
	syncing    bool // a syncer is catching the feed up (syncFeed)
	resync     bool // a sync was asked for while one ran
}

func newFeed(h *Hub, ws, sid string) *feed {
	return &feed{
		h:        h,
		ws:       ws,
		sid:      sid,
		ring:     make([]frame, h.cfg.RingSize),
		wake:     make(chan struct{}),
		attached: make(map[*client]struct{}),
	}
}

// lo is the index of the oldest frame in the ring (hi+1 when it is empty).
func (f *feed) lo() uint64 { return f.hi + 1 - uint64(f.n) }

// at returns the frame with index idx, which must be in [lo, hi].
func (f *feed) at(idx uint64) *frame {
	off := int(idx - f.lo())
	return &f.ring[(f.start+off)%len(f.ring)]
}

// push appends the next frame, evicting the oldest ones beyond the limits.
func (f *feed) push(fr frame) {
	for f.n > 0 && (f.n == len(f.ring) || f.bytes+len(fr.b) > f.h.cfg.RingBytes) {
		old := &f.ring[f.start]
		f.bytes -= len(old.b)
		*old = frame{}
		f.start = (f.start + 1) % len(f.ring)
		f.n--
	}
	f.ring[(f.start+f.n)%len(f.ring)] = fr
	f.n++
	f.bytes += len(fr.b)
	f.hi = fr.idx
}

// clear empties the ring.
func (f *feed) clear() {
	for i := range f.ring {
		f.ring[i] = frame{}
	}
	f.start, f.n, f.bytes = 0, 0, 0
}

func (f *feed) wakeLocked() {
	close(f.wake)
	f.wake = make(chan struct{})
}

// changedLocked tells the feed's clients that it changed: the ones in
// their follow loop wake up, and a delivery is queued for attached ones.
func (f *feed) changedLocked() {
	f.wakeLocked()
	if len(f.attached) > 0 {
		f.h.schedule(f)
	}
}

// offer adds events of generation gen, in index order, as far as they
// continue the ring without a gap. It returns whether they all did; a gap
// or a new generation asks for a sync from Redis.
func (f *feed) offer(gen string, evs []eventlog.Event) bool {
	frames := make([]frame, 0, len(evs))
	f.mu.Lock()
	if !f.ready {
		f.mu.Unlock()
		return false // the running or coming sync reads them from Redis
	}
	if gen != f.gen && f.gen == "" && f.hi == 0 {
		f.gen = gen // the first append to an empty stream chose it
	}
	if gen != f.gen {
		f.resetLocked()
		f.mu.Unlock()
		f.h.requestSync(f)
		return false
	}
	f.mu.Unlock()
	// Encode outside the lock; most events are new to the ring.
	for i := range evs {
		frames = append(frames, encodeFrame(&evs[i]))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.ready || gen != f.gen {
		return false
	}
	added := 0
	gap := false
	for _, fr := range frames {
		switch {
		case fr.idx <= f.hi:
			if fr.idx >= f.lo() && !sameEntry(f.at(fr.idx).tag, fr.tag) {
				// Another entry at an index the ring holds: Redis lost
				// acknowledged writes and the stream was written again
				// from an earlier point. The ring is forgotten and its
				// clients sent back to Redis, where a cursor on a lost
				// entry gets a reset.
				f.resetLocked()
				f.h.requestSync(f)
				return false
			}
			continue // already have it
		case fr.idx == f.hi+1:
			f.push(fr)
			added++
		default:
			gap = true
		}
		if gap {
			break
		}
	}
	if added > 0 {
		f.changedLocked()
	}
	if gap {
		f.h.requestSync(f)
	}
	return !gap
}

// fill replaces the ring with the newest events read from Redis and marks
// the feed ready. It returns the feed's head afterwards, from which the
// caller catches up.
func (f *feed) fill(evs []eventlog.Event, head eventlog.Cursor) (uint64, string) {
	frames := make([]frame, len(evs))
	for i := range evs {
		frames[i] = encodeFrame(&evs[i])
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ready && f.gen == head.Gen {
		return f.hi, f.gen // someone filled it meanwhile
	}
	f.clear()
	f.gen = head.Gen
	f.hi = head.Index
	if len(frames) > 0 && frames[len(frames)-1].idx == head.Index {
		f.hi = frames[0].idx - 1
		for _, fr := range frames {
			f.push(fr)
		}
	}
	f.ready = true
	f.wakeLocked()
	return f.hi, f.gen
}

// resetLocked forgets the ring because Redis holds another generation of
// the stream (it lost the old one, or trimmed past the ring). The
// delivering worker sends every attached client back to Redis, where a
// cursor of the old generation turns into a reset event; the worker does it
// because it alone may hand an attached client over.
func (f *feed) resetLocked() {
	f.ready = false
	f.clear()
	f.changedLocked()
}
