package workspace

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tandem-dev/tandem/acp"
	"github.com/tandem-dev/tandem/eventlog/model"
)

// owner is this node's ownership of one workspace: the single writer of
// its streams and the only one that talks to its sandbox.
//
// One goroutine, run, owns all of its state. Everything else (ACP stream
// readers, prompt POSTs, session openers, the lock extender, the health
// checker) is a helper goroutine started by run, tracked by wg, that
// reports back through channels; run waits for all of them before it
// returns.
type owner struct {
	m        *Manager
	ws       string
	epoch    uint64
	mutex    model.Lock
	consumer string
	meta     meta
	client   atomic.Pointer[acp.Client] // read by helpers; replaced when the settings change
	logger   *slog.Logger

	sessions map[string]*session
	reqSeq   int64 // JSON-RPC ids of our own requests

	msgs      chan acpMsg                // every message of every ACP connection
	events    chan func(context.Context) // results of helper goroutines, run on the owner's goroutine
	inboxWake chan struct{}              // a prompt or command may wait in the inbox
	metaWake  chan struct{}              // the workspace's settings changed
	stopping  chan struct{}              // closed when run begins to stop
	lost      chan struct{}              // closed by the extender when the lock is gone
	lostOnce  sync.Once
	wg        sync.WaitGroup

	// received is the newest inbox entry this owner knows it received
	// (read or claimed; "" for none): entries pending for its consumer after it were
	// delivered in a reply that never arrived, and are read again first.
	received string
	// backlog holds received inbox entries, in inbox order, whose handling
	// could not be decided yet (Redis did not answer a read it needs):
	// they are handled again, before anything newer, until it can.
	backlog []inboxEntry

	lastBusy    time.Time
	benchBusy   atomic.Int64 // unix ns of the last bench append (BenchAppend runs off the owner's goroutine)
	healthFails int
	unhealthy   bool
	ensuring    bool
	deleted     bool
}

// session is the owner's state of one session.
type session struct {
	id       string
	rec      SessionRecord
	state    map[string]string // the stream's state when loaded
	conn     *acp.Conn
	connID   string
	opening  bool
	agentSID string
	turn     *turn
	queue    []inboxEntry
	restore  bool // the next prompt carries the history
	lastMsg  time.Time
	closed   chan struct{} // closed when conn is dropped, to unblock its reader
	failures int
	retryAt  time.Time
	// srcConn is the connection whose message last set the stream state's
	// resume position (src).
	srcConn string
	// unsure is the inbox id of the prompt whose dispatch append failed
	// last: it may have landed with its answer lost.
	unsure string
}

// turn is a prompt in flight: sent (or about to be) and not yet answered.
type turn struct {
	Req       int64  `json:"req"`
	Inbox     string `json:"inbox"`
	Started   int64  `json:"started"`
	Conn      string `json:"conn"`
	written   bool   // the request reached the server (or was there before us)
	cancel    context.CancelFunc
	takenOver bool // found in flight when this owner took over
	text      string
	since     time.Time
	unsent    []byte // the request, dispatched but not sent yet
}

type acpMsg struct {
	sid, connID string
	closed      <-chan struct{} // the session's closed of the open that read it
	ev          acp.Event
	env         acp.Envelope
}

// inboxEntry is a command waiting in the inbox.
type inboxEntry = model.InboxEntry

func newOwner(ctx context.Context, m *Manager, ws string, mu model.Lock, md meta) (*owner, error) {
	epoch, err := m.store.AcquireEpoch(ctx, ws)
	if err != nil {
		return nil, err
	}
	o := &owner{
		m:         m,
		ws:        ws,
		epoch:     epoch,
		mutex:     mu,
		consumer:  m.cfg.NodeID + "/" + strconv.FormatUint(epoch, 10),
		meta:      md,
		logger:    m.logger.With(slog.String("ws", ws), slog.Uint64("epoch", epoch)),
		sessions:  make(map[string]*session),
		reqSeq:    int64(epoch)*1_000_000 + 500_000,
		msgs:      make(chan acpMsg, 1024),
		events:    make(chan func(context.Context), 256),
		inboxWake: make(chan struct{}, 1),
		metaWake:  make(chan struct{}, 1),
		stopping:  make(chan struct{}),
		lost:      make(chan struct{}),
		lastBusy:  time.Now(),
	}
	if md.Sandbox.BaseURL != "" {
		c, err := m.sandboxClient(md.Sandbox)
		if err != nil {
			return nil, err
		}
		o.client.Store(c)
	}
	err = m.store.SetOwner(ctx, ws, model.OwnerRecord{Node: m.cfg.NodeID, Epoch: epoch, Since: time.Now().UnixMilli(), Health: "ok"}, m.cfg.LockTTL)
	if err != nil {
		return nil, err
	}
	if err := m.store.EnsureInbox(ctx, ws); err != nil {
		return nil, err
	}
	return o, nil
}

func (o *owner) poke(ch *chan struct{}) {
	select {
	case *ch <- struct{}{}:
	default:
	}
}

// spawn runs fn on a helper goroutine that run waits for.
func (o *owner) spawn(fn func()) {
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		fn()
	}()
}

// report hands fn to the owner's goroutine, which calls it with its
// context; it gives up when the owner stops.
func (o *owner) report(fn func(context.Context)) {
	select {
	case o.events <- fn:
	case <-o.stopping:
	}
}

func (o *owner) loseOwnership(reason error) {
	o.lostOnce.Do(func() {
		o.logger.Warn("lost ownership", slog.Any("reason", reason))
		close(o.lost)
	})
}

// isLost reports whether the ownership was lost.
func (o *owner) isLost() bool {
	select {
	case <-o.lost:
		return true
	default:
		return false
	}
}

// stale handles an error of a write: a stale-writer rejection means
// another node owns the workspace now.
func (o *owner) stale(err error) bool {
	if errors.Is(err, model.ErrStaleWriter) || errors.Is(err, ErrNotOwner) {
		o.loseOwnership(err)
		return true
	}
	return false
}

type stopMode int

func (m stopMode) String() string {
	switch m {
	case stopIdle:
		return "idle"
	case stopLost:
		return "lost"
	}
	return "handover"
}

const (
	stopHandOver stopMode = iota // node shutting down: unlock, keep ACP connections for the next owner
	stopIdle                     // idle: close ACP connections, unlock
	stopLost                     // the lock is gone: touch nothing in Redis
)

func (o *owner) run(ctx context.Context) {
	if o.m.bell != nil {
		_ = o.m.bell.Subscribe(ctx, o.ws)
	}
	o.logger.Info("owning workspace")
	// life is the owner's lifetime: it ends when the owner stops, whether
	// the node shuts down (ctx) or the ownership is lost. Helper goroutines
	// get it, or a context derived from it.
	life, stopLife := context.WithCancel(context.WithoutCancel(ctx))
	ectx, cancelExt := context.WithCancel(context.WithoutCancel(ctx))
	o.spawn(func() { o.extendLoop(ectx) })
	o.spawn(func() { o.healthLoop(life) })

	mode := o.serve(ctx, life)

	close(o.stopping)
	stopLife()
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	o.closeSessions(cctx, mode)
	cancelExt() // the lock is kept until the helpers are done
	o.wg.Wait()
	if mode != stopLost {
		o.release(cctx)
	}
	if o.m.bell != nil {
		_ = o.m.bell.Unsubscribe(cctx, o.ws)
	}
	o.m.obs.Released(mode.String())
	o.logger.Info("workspace released", slog.String("reason", mode.String()))
}

// serve is the owner's loop; it returns how to stop: when node (the
// node's context) ends, or the ownership is lost. Its work uses ctx, the
// owner's lifetime.
func (o *owner) serve(node, ctx context.Context) stopMode {
	if err := o.takeOver(ctx); err != nil {
		if o.stale(err) {
			return stopLost
		}
		o.logger.Warn("take over failed", slog.Any("err", err))
		return stopHandOver
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	inboxPoll := time.NewTicker(time.Second)
	defer inboxPoll.Stop()
	for {
		if o.deleted && o.allClosed() {
			o.finishDelete(ctx)
			return stopIdle
		}
		select {
		case <-node.Done():
			return stopHandOver
		case <-o.lost:
			return stopLost
		case m := <-o.msgs:
			o.ingest(ctx, m)
		case fn := <-o.events:
			fn(ctx)
		case <-o.inboxWake:
			o.readInbox(ctx)
		case <-inboxPoll.C:
			o.readInbox(ctx)
		case <-o.metaWake:
			o.reloadMeta(ctx)
		case <-tick.C:
			o.tick(ctx)
			if o.idle(ctx) {
				return stopIdle
			}
		}
		select {
		case <-o.lost:
			return stopLost
		default:
		}
	}
}

// takeOver restores what the previous owner left: sessions with an ACP
// connection or a turn in flight are re-attached, and pending inbox entries
// are claimed and handled in order.
func (o *owner) takeOver(ctx context.Context) error {
	sids, err := o.m.store.SessionIDs(ctx, o.ws)
	if err != nil {
		return err
	}
	for _, sid := range sids {
		s, err := o.loadSession(ctx, sid)
		if err != nil {
			return err
		}
		if s.rec.DestroyedAt != nil {
			continue
		}
		if s.state["conn"] != "" || s.turn != nil {
			if _, err := o.log().AppendState(ctx, o.ws, sid, o.epoch, nil, statusRecord(StatusOwnerChanged, map[string]any{"node": o.m.cfg.NodeID, "epoch": o.epoch})); err != nil {
				return err
			}
			o.open(ctx, s)
		}
	}
	// Claim what earlier owners left unacknowledged, in inbox order. The
	// claim is idempotent (min-idle 0 claims entries already this
	// consumer's again), so a reply that was lost, or sent again by
	// go-redis, claims the same entries once more; an error stops the
	// takeover, and the next one claims from the start. An empty page
	// with a cursor that is not 0-0 (entries deleted from the stream)
	// does not end the scan: only the cursor says it is complete.
	start := "0-0"
	for pages := 0; ; pages++ {
		msgs, next, err := o.m.store.ClaimInbox(ctx, o.ws, o.consumer, start, 100)
		if err != nil {
			return err
		}
		o.receivedUpTo(msgs)
		for _, e := range msgs {
			if brokenClaimAck && e.Kind == cmdPrompt {
				o.ack(ctx, e.ID) // the fault campaign's broken build: see broken.go
				continue
			}
			o.handle(ctx, e)
		}
		if next == "0-0" || next == "" {
			break
		}
		if pages > 1_000_000 {
			return errors.New("claim inbox: the claim cursor does not advance")
		}
		start = next
	}
	// A turn in flight whose inbox entry was acknowledged had its request
	// written to the server: it reached the agent.
	for _, s := range o.sessions {
		if s.turn != nil && s.turn.takenOver && s.turn.text == "" {
			s.turn.written = true
		}
	}
	o.readInbox(ctx)
	return nil
}

func (o *owner) log() Log { return o.m.store }

// loadSession loads a session's record and its stream's state.
func (o *owner) loadSession(ctx context.Context, sid string) (*session, error) {
	if s := o.sessions[sid]; s != nil {
		return s, nil
	}
	rec, found, err := o.m.store.Session(ctx, o.ws, sid)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("%s/%s: %w", o.ws, sid, ErrSessionNotFound)
	}
	st, err := o.log().State(ctx, o.ws, sid)
	if err != nil {
		return nil, err
	}
	s := &session{id: sid, rec: rec, state: st, agentSID: rec.AgentSessionID, lastMsg: time.Now(), srcConn: st["conn"]}
	if t := st["turn"]; t != "" {
		var tr turn
		if json.Unmarshal([]byte(t), &tr) == nil && tr.Req != 0 {
			tr.takenOver = true
			tr.since = time.Now()
			s.turn = &tr
		}
	}
	o.sessions[sid] = s
	return s, nil
}

// readInbox handles the backlog, then reads new inbox entries and handles
// them in order.
func (o *owner) readInbox(ctx context.Context) {
	if !o.retryBacklog(ctx) {
		return
	}
	for {
		msgs, err := o.readNew(ctx, 100)
		if err != nil {
			o.stale(err)
			return
		}
		for _, e := range msgs {
			o.handle(ctx, e)
		}
		if len(msgs) < 100 {
			return
		}
	}
}

// ack acknowledges inbox entries.
func (o *owner) ack(ctx context.Context, ids ...string) {
	if len(ids) == 0 {
		return
	}
	if err := o.m.store.AckInbox(ctx, o.ws, ids...); err != nil {
		o.logger.Warn("inbox ack failed; the entry will be handled again by the next owner, which skips what was done", slog.Any("err", err))
	}
}

// handle carries out one inbox entry, or keeps it in the backlog when
// that cannot be decided now. Entries are carried out in inbox order: one
// behind the backlog waits there too.
func (o *owner) handle(ctx context.Context, e inboxEntry) {
	o.lastBusy = time.Now()
	if len(o.backlog) > 0 || !o.carryOut(ctx, e) {
		o.backlog = append(o.backlog, e)
	}
}

// retryBacklog carries out the backlog's entries in order and reports
// whether it is empty now.
func (o *owner) retryBacklog(ctx context.Context) bool {
	for len(o.backlog) > 0 {
		if !o.carryOut(ctx, o.backlog[0]) {
			return false
		}
		o.backlog = o.backlog[1:]
	}
	o.backlog = nil
	return true
}

// carryOut carries out one inbox entry; false means it could not be
// decided now (Redis did not answer) and must be tried again.
func (o *owner) carryOut(ctx context.Context, e inboxEntry) bool {
	if e.Kind == cmdDestroyWS {
		if !o.destroyWorkspace(ctx) {
			return false
		}
		o.ack(ctx, e.ID)
		return true
	}
	s, err := o.loadSession(ctx, e.Session)
	if err != nil {
		if errors.Is(err, ErrSessionNotFound) {
			o.ack(ctx, e.ID) // nothing to do it to
			return true
		}
		if o.stale(err) {
			return true // the next owner claims it
		}
		return false
	}
	switch e.Kind {
	case cmdPrompt:
		done, err := o.dispatched(ctx, s, e)
		if err != nil {
			if o.stale(err) {
				return true
			}
			o.logger.Warn("whether a claimed prompt was dispatched is not known yet", slog.String("sid", s.id), slog.String("prompt", e.ID), slog.Any("err", err))
			return false
		}
		if done {
			// Dispatched by an earlier owner: in flight (the turn) or done.
			if s.turn == nil || s.turn.Inbox != e.ID {
				o.ack(ctx, e.ID)
			} else {
				s.turn.text = e.Text
			}
			return true
		}
		if s.rec.DestroyedAt != nil {
			o.ack(ctx, e.ID)
			return true
		}
		s.queue = append(s.queue, e)
		o.dispatch(ctx, s)
	case cmdCancel:
		if s.turn != nil && idAfter(e.ID, s.turn.Inbox) && s.conn != nil {
			o.sendCancel(ctx, s)
		}
		o.ack(ctx, e.ID)
	case cmdOpen:
		if s.rec.DestroyedAt == nil && s.conn == nil && !s.opening {
			o.open(ctx, s)
		}
		o.ack(ctx, e.ID)
	case cmdDestroy:
		if !o.destroySession(ctx, s) {
			return false
		}
		o.ack(ctx, e.ID)
	default:
		o.ack(ctx, e.ID)
	}
	return true
}

// dispatched reports whether prompt e was dispatched (its chat.user,
// turn start and request appended) by this owner or an earlier one. Only
// evidence counts: the stream state naming it as the last prompt
// dispatched, or its own chat.user in the stream. A later prompt's
// dispatch proves nothing: an owner that never received e (a read whose
// reply was lost) went on to later ones.
func (o *owner) dispatched(ctx context.Context, s *session, e inboxEntry) (bool, error) {
	last := s.state["last_inbox"]
	switch {
	case last == "" || idAfter(e.ID, last):
		return false, nil // after everything dispatched
	case last == e.ID:
		return true, nil
	case s.turn != nil && s.turn.Inbox == e.ID:
		return true, nil
	}
	return o.findDispatch(ctx, s.id, e.ID)
}

// findDispatch looks for prompt id's chat.user in the session stream,
// from the newest event back. A prompt is dispatched only after it was
// accepted, so the search ends at the first event written before id was
// accepted (less a minute for the clocks of Redis servers after a
// failover); it does not stop at an earlier prompt's chat.user, since a
// prompt an earlier owner never received is dispatched late, after later
// ones. Reaching the stream's start (or its trimmed start) finds nothing.
// It runs only for a claimed prompt older than the session's last
// dispatch, which is rare (an acknowledgement that failed), and reads
// only what was written since that prompt was accepted.
func (o *owner) findDispatch(ctx context.Context, sid, id string) (bool, error) {
	accepted, _, _ := strings.Cut(id, "-")
	acceptedMs, _ := strconv.ParseInt(accepted, 10, 64)
	var before uint64
	for {
		evs, err := o.log().Before(ctx, o.ws, sid, before, 500)
		if err != nil {
			return false, err
		}
		if len(evs) == 0 {
			return false, nil
		}
		for _, ev := range evs {
			if ev.CreatedAt < acceptedMs-60_000 {
				return false, nil
			}
			if ev.Type != TypeChatUser {
				continue
			}
			var b struct {
				PromptID string `json:"promptId"`
			}
			if json.Unmarshal(ev.Body, &b) != nil || b.PromptID == "" {
				continue
			}
			if b.PromptID == id {
				return true, nil
			}
		}
		before = evs[len(evs)-1].Index
	}
}

// idAfter reports whether stream id a is after b.
func idAfter(a, b string) bool {
	am, as, _ := strings.Cut(a, "-")
	bm, bs, _ := strings.Cut(b, "-")
	an, _ := strconv.ParseUint(am, 10, 64)
	bn, _ := strconv.ParseUint(bm, 10, 64)
	if an != bn {
		return an > bn
	}
	asq, _ := strconv.ParseUint(as, 10, 64)
	bsq, _ := strconv.ParseUint(bs, 10, 64)
	return asq > bsq
}

func statusRecord(status string, detail map[string]any) model.Record {
	body := map[string]any{"status": status}
	if detail != nil {
		body["detail"] = detail
	}
	b, _ := json.Marshal(body)
	return model.Record{Type: TypeSessionStatus, Body: b}
}

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
}

// tick runs the owner's periodic work.
func (o *owner) tick(ctx context.Context) {
	now := time.Now()
	for _, s := range o.sessions {
		if s.rec.DestroyedAt != nil {
			continue
		}
		if s.conn == nil && !s.opening && (len(s.queue) > 0 || s.turn != nil || s.restore) && now.After(s.retryAt) && !o.unhealthy {
			o.open(ctx, s)
		}
		if t := s.turn; t != nil && t.unsent != nil && s.conn != nil {
			o.send(ctx, s, t, t.unsent)
		}
		// A prompt found in flight whose delivery is unknown: when its
		// session stays silent, it never reached the agent.
		if t := s.turn; t != nil && t.takenOver && !t.written && s.conn != nil && now.Sub(s.lastMsg) > o.m.cfg.DispatchTimeout && now.Sub(t.since) > o.m.cfg.DispatchTimeout {
			o.logger.Warn("prompt in flight silent since take-over; sending it again", slog.String("sid", s.id), slog.Int64("req", t.Req))
			t.since = now
			o.post(ctx, s, t, o.promptEnvelope(s, t.Req, []acp.ContentBlock{acp.TextBlock(t.text)}))
		}
	}
}

// touch marks the owner busy from outside its goroutine.
func (o *owner) touch() { o.benchBusy.Store(time.Now().UnixNano()) }

// idle reports whether the owner can let the workspace go, and when so
// prepares it: the active mark is removed first and the inbox checked
// after, so that a prompt accepted meanwhile is never stranded.
func (o *owner) idle(ctx context.Context) bool {
	if b := time.Unix(0, o.benchBusy.Load()); b.After(o.lastBusy) {
		o.lastBusy = b
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

func (o *owner) reloadMeta(ctx context.Context) {
	md, err := o.m.loadMeta(ctx, o.ws)
	if err != nil {
		return
	}
	if md.Sandbox != o.meta.Sandbox {
		c, err := o.m.sandboxClient(md.Sandbox)
		if err != nil {
			return
		}
		o.client.Store(c)
	}
	o.meta = md
}

func (o *owner) allClosed() bool {
	for _, s := range o.sessions {
		if s.conn != nil || s.opening {
			return false
		}
	}
	return true
}

// sandbox is the client of the workspace's Sandbox Agent server, nil when
// it has none.
func (o *owner) sandbox() *acp.Client { return o.client.Load() }

// finishDelete removes a deleted workspace's settings (unless it was
// created again meanwhile) and its active mark.
func (o *owner) finishDelete(ctx context.Context) {
	if err := o.m.store.FinishDelete(ctx, o.ws, o.epoch); err != nil {
		o.logger.Warn("removing the deleted workspace failed", slog.Any("err", err))
	}
}
