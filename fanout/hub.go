package fanout

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/tandem-dev/tandem/eventlog"
	"github.com/tandem-dev/tandem/sse"
)

// Source is the event log as the hub reads it.
type Source interface {
	// Read returns up to limit events after the cursor and the head, or a
	// *eventlog.ResetError when the cursor cannot be resumed.
	Read(ctx context.Context, ws, sid string, after eventlog.Cursor, limit int) ([]eventlog.Event, eventlog.Cursor, error)
	// Last returns up to n newest events, oldest first, and the head.
	Last(ctx context.Context, ws, sid string, n int) ([]eventlog.Event, eventlog.Cursor, error)
}

// Doorbell is the node's pub/sub subscription, as eventlog.Bell provides.
// Both calls are idempotent.
type Doorbell interface {
	Subscribe(ctx context.Context, ws string) error
	Unsubscribe(ctx context.Context, ws string) error
}

// Config configures a Hub. Zero values are the defaults given.
type Config struct {
	// RingSize is how many recent events each active session keeps in
	// memory (default 512). Clients further behind read from Redis.
	RingSize int
	// RingBytes bounds the memory of one session's buffer (default 1 MiB).
	RingBytes int
	// Retry is the reconnection delay sent to clients (default
	// sse.DefaultRetry, 2s).
	Retry time.Duration
	// Keepalive is the idle time after which a stream carries a keepalive
	// comment (default sse.KeepaliveInterval, 15s).
	Keepalive time.Duration
	// Linger keeps a session's buffer after its last client left, so that
	// clients reconnecting (to this node, after a deploy) are served from
	// memory (default 30s).
	Linger time.Duration
	// WriteTimeout ends a stream whose client accepted nothing for this long
	// (default 60s). Slow clients that make progress are never cut.
	WriteTimeout time.Duration
	// Audit is how often an active session is checked against Redis for an
	// event the doorbell missed (default 5s).
	Audit time.Duration
	// Workers is the number of delivery goroutines (default GOMAXPROCS).
	Workers int
	// MaxStreamsPerUser bounds one user's open streams on this node
	// (default 32; negative: no bound).
	MaxStreamsPerUser int
}

// Validate reports whether the configuration can be used.
func (c Config) Validate() error {
	if c.RingSize < 0 || c.RingBytes < 0 || c.Retry < 0 || c.Keepalive < 0 || c.Linger < 0 ||
		c.WriteTimeout < 0 || c.Audit < 0 || c.Workers < 0 {
		return errors.New("fanout: negative configuration value")
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.RingSize == 0 {
		c.RingSize = 512
	}
	if c.RingBytes == 0 {
		c.RingBytes = 1 << 20
	}
	if c.Retry == 0 {
		c.Retry = sse.DefaultRetry
	}
	if c.Keepalive == 0 {
		c.Keepalive = sse.KeepaliveInterval
	}
	if c.Linger == 0 {
		c.Linger = 30 * time.Second
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 60 * time.Second
	}
	if c.Audit == 0 {
		c.Audit = 5 * time.Second
	}
	if c.Workers == 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	if c.MaxStreamsPerUser == 0 {
		c.MaxStreamsPerUser = 32
	}
	return c
}

// Errors of Serve, returned before anything is written.
var (
	// ErrClosed: the hub is shutting down.
	ErrClosed = errors.New("fanout: hub closed")
	// ErrTooManyStreams: the user has MaxStreamsPerUser streams open here.
	ErrTooManyStreams = errors.New("fanout: too many streams for this user")
)

// Hub is a node's fan-out: feeds per active session, the clients attached
// to them, and the goroutines that serve them.
type Hub struct {
	// Lock order. The hub has four kinds of lock; one that is held may only
	// be followed by one further down this list, never by one above it:
	//
	//  1. client.closeOnce: client.close runs under it and takes feed.mu,
	//     then Hub.mu, one after the other. Never call close with any lock
	//     held.
	//  2. feed.mu: detachLocked takes Hub.mu (spawn) under it, and
	//     changedLocked and offer push to the work queues.
	//  3. Hub.mu: acquire pushes to the sync queue under it. Nothing takes
	//     a feed's mu while holding it (Broadcast, sweep and Subscribed copy
	//     the feeds out first).
	//  4. workQueue.mu of deliveries and of syncs: leaves; neither is held
	//     with the other.
	//
	// Observer methods are called with feed.mu held (Fallback, Resumed) and
	// must not call back into the hub.

	// Set by New and the setters before Run; read-only afterwards.
	src  Source
	cfg  Config
	bell Doorbell
	obs  Observer
	open opener // how Serve takes over a response: openSink, a fake in tests

	mu sync.Mutex
	// Guarded by mu, as are each workspace's fields and each feed's refs
	// and idleSince.
	workspaces map[string]*workspace
	clients    map[*client]struct{}
	perUser    map[string]int            // open streams per user
	present    map[string]map[string]int // workspace → user → open streams, kept as clients come and go
	lastEph    map[string][]byte         // latest broadcast per workspace, for new feeds
	closing    bool
	quit       chan struct{} // closed, under mu, when Run starts shutting down

	presence chan struct{} // signalled (buffer of one) when the set of local clients changes

	deliveries workQueue // feeds with something to write to attached clients
	syncs      workQueue // feeds that must catch up from Redis

	// Signalled (buffer of one) when the set of workspaces changed and the
	// doorbell's subscriptions must follow.
	subReq chan struct{}

	// Detached clients' goroutines. Add is called under mu while not
	// closing (spawn), so none is added once Run waits.
	wg sync.WaitGroup
}

// workspace is a workspace with feeds on this node. Guarded by the hub's
// mu.
type workspace struct {
	id        string
	feeds     map[string]*feed
	confirmed bool // the doorbell confirmed the subscription
}

// New returns a Hub reading from src. Call SetDoorbell before Run.
func New(src Source, cfg Config) *Hub {
	h := &Hub{
		src:        src,
		cfg:        cfg.withDefaults(),
		obs:        nopObserver{},
		open:       openSink,
		workspaces: make(map[string]*workspace),
		clients:    make(map[*client]struct{}),
		perUser:    make(map[string]int),
		present:    make(map[string]map[string]int),
		lastEph:    make(map[string][]byte),
		presence:   make(chan struct{}, 1),
		quit:       make(chan struct{}),
		subReq:     make(chan struct{}, 1),
	}
	h.deliveries.init(func(f *feed) *bool { return &f.queued })
	h.syncs.init(func(f *feed) *bool { return &f.syncQueued })
	return h
}

// SetDoorbell sets the pub/sub subscription the hub drives. It must be
// called before Run; the Bell in turn reports to the hub (Ring, Subscribed).
func (h *Hub) SetDoorbell(d Doorbell) { h.bell = d }

// SetObserver sets the hooks that metrics use. Call before Run.
func (h *Hub) SetObserver(o Observer) { h.obs = o }

// Run serves until ctx ends, then closes every client connection and
// returns after all of the hub's goroutines have exited.
func (h *Hub) Run(ctx context.Context) error {
	if h.bell == nil {
		return errors.New("fanout: Run without a doorbell")
	}
	var wg sync.WaitGroup
	for i := 0; i < h.cfg.Workers; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); h.deliverLoop(ctx) }()
	}
	const syncers = 4
	for i := 0; i < syncers; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); h.syncLoop(ctx) }()
	}
	wg.Add(2)
	go func() { defer wg.Done(); h.subscriptionLoop(ctx) }()
	go func() { defer wg.Done(); h.sweepLoop(ctx) }()

	<-ctx.Done()
	// Shutting down: refuse new clients, close the connections of all
	// current ones so they reconnect to another node right away, wake every
	// waiting goroutine, then wait for them.
	h.mu.Lock()
	h.closing = true
	close(h.quit)
	clients := make([]*client, 0, len(h.clients))
	for c := range h.clients {
		clients = append(clients, c)
	}
	h.mu.Unlock()
	for _, c := range clients {
		c.close()
	}
	h.deliveries.wakeAll()
	h.syncs.wakeAll()
	wg.Wait()
	h.wg.Wait()
	return nil
}

// Ring implements eventlog.BellHandler: one appended event.
func (h *Hub) Ring(ws string, ev eventlog.Event, gen string) {
	f := h.lookup(ws, ev.SessionID)
	if f == nil {
		return
	}
	f.offer(gen, []eventlog.Event{ev})
}

// Subscribed implements eventlog.BellHandler: the doorbell of ws is
// (re)subscribed, so every feed of ws catches up from Redis.
func (h *Hub) Subscribed(ws string) {
	h.mu.Lock()
	w := h.workspaces[ws]
	var feeds []*feed
	if w != nil {
		w.confirmed = true
		for _, f := range w.feeds {
			feeds = append(feeds, f)
		}
	}
	h.mu.Unlock()
	for _, f := range feeds {
		h.requestSync(f)
	}
}

// Signal implements eventlog.BellHandler; the hub has no signals of its own.
func (h *Hub) Signal(ws, msg string) {}

func (h *Hub) lookup(ws, sid string) *feed {
	h.mu.Lock()
	defer h.mu.Unlock()
	if w := h.workspaces[ws]; w != nil {
		return w.feeds[sid]
	}
	return nil
}

// acquire returns the session's feed, creating it (and subscribing the
// workspace's doorbell) when needed, with one more reference.
func (h *Hub) acquire(ws, sid string) (*feed, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing {
		return nil, ErrClosed
	}
	w := h.workspaces[ws]
	if w == nil {
		w = &workspace{id: ws, feeds: make(map[string]*feed)}
		h.workspaces[ws] = w
		h.kickSubscriptions()
	}
	f := w.feeds[sid]
	if f == nil {
		f = newFeed(h, ws, sid)
		if eph := h.lastEph[ws]; eph != nil {
			f.eph, f.ephVer = eph, 1
		}
		w.feeds[sid] = f
		if w.confirmed {
			h.requestSync(f)
		}
	}
	f.refs++
	return f, nil
}

// release drops a reference taken by acquire; the sweeper removes feeds
// without references after Linger.
func (h *Hub) release(f *feed) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f.refs--
	if f.refs == 0 {
		f.idleSince = time.Now()
	}
}

func (h *Hub) kickSubscriptions() {
	select {
	case h.subReq <- struct{}{}:
	default:
	}
}

// subscriptionLoop makes the doorbell's subscriptions follow the set of
// workspaces with feeds. It is the only caller of Subscribe/Unsubscribe, so
// a workspace dropped and taken again is never left unsubscribed.
func (h *Hub) subscriptionLoop(ctx context.Context) {
	subscribed := make(map[string]bool)
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.subReq:
		}
		h.mu.Lock()
		want := make(map[string]bool, len(h.workspaces))
		for ws := range h.workspaces {
			want[ws] = true
		}
		h.mu.Unlock()
		for ws := range want {
			if !subscribed[ws] {
				if err := h.bell.Subscribe(ctx, ws); err != nil {
					h.obs.Error(fmt.Errorf("doorbell: %w", err))
				}
				subscribed[ws] = true
			}
		}
		for ws := range subscribed {
			if !want[ws] {
				if err := h.bell.Unsubscribe(ctx, ws); err != nil {
					h.obs.Error(fmt.Errorf("doorbell: %w", err))
				}
				delete(subscribed, ws)
			}
		}
	}
}

// sweepLoop runs the periodic work: keepalives of attached clients, ending
// expired streams and noticing clients that left, auditing active feeds
// against Redis, and removing feeds that lingered long enough.
func (h *Hub) sweepLoop(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	lastAudit := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			audit := now.Sub(lastAudit) >= h.cfg.Audit
			if audit {
				lastAudit = now
			}
			h.sweep(now, audit)
		}
	}
}

func (h *Hub) sweep(now time.Time, audit bool) {
	var expired, all []*client
	var feeds, referenced []*feed
	dropped := false
	h.mu.Lock()
	for c := range h.clients {
		if !c.expires.IsZero() && now.After(c.expires) {
			expired = append(expired, c)
		} else {
			all = append(all, c)
		}
	}
	for id, w := range h.workspaces {
		for sid, f := range w.feeds {
			if f.refs == 0 && now.Sub(f.idleSince) >= h.cfg.Linger {
				delete(w.feeds, sid)
				continue
			}
			feeds = append(feeds, f)
			if f.refs > 0 {
				referenced = append(referenced, f)
			}
		}
		if len(w.feeds) == 0 {
			delete(h.workspaces, id)
			delete(h.lastEph, id)
			dropped = true
		}
	}
	h.mu.Unlock()
	if dropped {
		h.kickSubscriptions()
	}
	for _, c := range expired {
		c.close()
	}
	// Clients that went away are noticed now rather than at the next
	// write, so that presence and idleness are right within a second.
	for _, c := range all {
		if c.sink.gone() {
			c.close()
		}
	}
	keepBefore := now.Add(-h.cfg.Keepalive).UnixNano()
	for _, f := range feeds {
		f.mu.Lock()
		due := false
		for c := range f.attached {
			if c.lastWrite.Load() < keepBefore {
				due = true
				break
			}
		}
		if due {
			f.keepaliveDue = true
		}
		f.mu.Unlock()
		if due {
			h.schedule(f)
		}
	}
	if audit {
		for _, f := range referenced {
			h.requestSync(f)
		}
	}
}

// PresenceChanged is signalled (without blocking, coalesced) whenever a
// client connects or goes away.
func (h *Hub) PresenceChanged() <-chan struct{} { return h.presence }

func (h *Hub) presenceChangedLocked() {
	select {
	case h.presence <- struct{}{}:
	default:
	}
}

// Presence returns the node's stream clients: workspace → user → number of
// connections. It copies counts kept as clients come and go, so it costs
// the number of users, not of connections.
func (h *Hub) Presence() map[string]map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]map[string]int, len(h.present))
	for ws, users := range h.present {
		m := make(map[string]int, len(users))
		for u, n := range users {
			m[u] = n
		}
		out[ws] = m
	}
	return out
}

// countLocked adds delta to a user's connections in a workspace.
func (h *Hub) countLocked(ws, user string, delta int) {
	users := h.present[ws]
	if users == nil {
		users = make(map[string]int)
		h.present[ws] = users
	}
	users[user] += delta
	if users[user] <= 0 {
		delete(users, user)
		if len(users) == 0 {
			delete(h.present, ws)
		}
	}
	h.presenceChangedLocked()
}
