package workspace

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
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

	// dispatchedIDs are the prompts this node's owners of the workspace
	// dispatched lately, carried over when an owner starts again after a
	// rewind: evidence of a dispatch that Redis lost.
	dispatchedIDs *idSet
	// sentElsewhere are prompts an earlier owner was sending to the agent
	// (their dispatch markers came back on a re-attached connection)
	// while the stream has no trace of their dispatch (marker.go).
	sentElsewhere *idSet
	// recentSent are the prompts this owner dispatched lately, written to
	// the workspace's evidence (sent.go).
	recentSent []sentPrompt
	// started is when this owner took the workspace; inherited says it
	// followed an owner of this node stopped by a rewind (restartOwner),
	// whose dispatches dispatchedIDs knows.
	started   time.Time
	inherited bool
	// restart, set with the ownership lost, asks the manager to start
	// the workspace again at once under the same lock with a new epoch
	// (Redis lost acknowledged writes); rewinds are the sessions' lost
	// ranges, which the next owner records.
	restart bool
	rewinds []rewind

	lastBusy    time.Time
	holds       atomic.Int32 // Manager.Hold calls not released (they run off the owner's goroutine)
	lastHeld    atomic.Int64 // unix ns of the last release of a hold
	healthFails int
	unhealthy   bool
	ensuring    bool
	deleted     bool
}

// session is the owner's state of one session.
type session struct {
	id    string
	rec   SessionRecord
	state streamState // the stream's state, as loaded and as this owner wrote it since
	head  uint64      // the stream's last index this owner saw acknowledged
	// settling: the session's connection is being re-attached at a
	// takeover: the agent's messages the stream does not hold yet (lost
	// with Redis's writes, or read but not persisted by the predecessor)
	// come first, and the next prompt waits until they stopped coming, so
	// that they are not recorded inside its turn and are seen before it.
	settling bool
	// diverged: while settling, the agent showed work the stream knows
	// nothing of (a turn's output with no turn in flight): Redis lost the
	// record of a prompt that reached the agent. Which one cannot be told,
	// so prompts accepted before this owner started and without evidence
	// of dispatch end as delivery_unknown instead of being sent (again).
	diverged bool
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
	// perms are the agent's permission requests whose answer was not
	// carried out yet, by requestId (permission.go).
	perms map[string]*pendingPerm
	// configuring counts configuration changes being sent to the agent
	// (session_config.go): prompts wait for them.
	configuring int
	// agentFailures counts opens the agent failed in a row, agentErr is
	// the digest of the last agent_error appended, agentDown says the
	// queued prompts were ended for it (agent_failure.go).
	agentFailures int
	agentErr      string
	agentDown     bool
	// summary is the last summary of the session written to the workspace
	// stream (room.go), summaryNext the one being written.
	summarized           bool
	summary, summaryNext summary
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
		reqSeq:    requestIDBase(epoch) + 500_000,
		msgs:      make(chan acpMsg, 1024),
		events:    make(chan func(context.Context), 256),
		inboxWake: make(chan struct{}, 1),
		metaWake:  make(chan struct{}, 1),
		stopping:  make(chan struct{}),
		lost:      make(chan struct{}),
		lastBusy:  time.Now(),
		started:   time.Now(),

		dispatchedIDs: newIDSet(1024),
		sentElsewhere: newIDSet(1024),
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

// requestIDBase is where the JSON-RPC ids of an owner's requests start:
// each owner has a range of a million of its own, so a successor that
// re-attaches to a connection never reuses an id of its predecessor's.
// Epochs (eventlog's AcquireEpoch) are a millisecond clock times 2048 plus
// a random part; the range follows the clock part, which grows with every
// acquisition. Small epochs (a store that counts, as tests' fakes do) get
// the range of their number.
func requestIDBase(epoch uint64) int64 {
	if epoch >= 1<<42 {
		return int64(epoch>>11) * 1_000_000
	}
	return int64(epoch) * 1_000_000
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
	// However it stops, lock lost included: the next owner reads it.
	sctx, scancel := context.WithTimeout(cctx, 2*time.Second)
	o.writeSent(sctx)
	scancel()
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
	o.m.obs.TakeoverStarted()
	err := o.takeOver(ctx)
	o.m.obs.TakeoverFinished(err == nil)
	if err != nil {
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
			// Agent messages already read are persisted before the owner
			// acts on a result: a Call is resolved only after its response
			// went to msgs, so the stream holds the response of session/new
			// before the prompt dispatched because of it.
			if len(o.msgs) > 0 {
				o.ingest(ctx, <-o.msgs)
			}
			fn(ctx)
		case <-o.inboxWake:
			o.readInbox(ctx)
		case <-inboxPoll.C:
			o.readInbox(ctx)
		case <-o.metaWake:
			o.reloadMeta(ctx)
		case <-tick.C:
			o.writeSent(ctx)
			o.tick(ctx)
			if o.idle(ctx) {
				return stopIdle
			}
		}
		o.roomSummaries(ctx)
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
	if err := o.readSent(ctx); err != nil {
		return err
	}
	err := o.eachSession(ctx, func(s *session) error {
		sid := s.id
		if s.rec.DestroyedAt != nil {
			return nil
		}
		for _, r := range o.rewinds {
			if r.sid == sid {
				o.logger.Warn("Redis lost acknowledged events; re-attaching from the last persisted position", slog.String("sid", sid), slog.Uint64("firstLost", r.first), slog.Uint64("lastLost", r.last))
				if _, err := o.appendTo(ctx, s, nil, "", statusRecord(StatusHistoryRewound, map[string]any{"firstLost": r.first, "lastLost": r.last, "node": o.m.cfg.NodeID})); err != nil {
					return err
				}
				s.settling = true // the next prompt after the lost output
			}
		}
		if s.state.Conn != "" || s.turn != nil {
			s.settling = true
			if _, err := o.appendTo(ctx, s, nil, "", statusRecord(StatusOwnerChanged, map[string]any{"node": o.m.cfg.NodeID, "epoch": o.epoch})); err != nil {
				return err
			}
			o.open(ctx, s)
		}
		return nil
	})
	if err != nil {
		return err
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
		msgs, next, err := o.m.store.ClaimInbox(ctx, o.ws, o.epoch, o.consumer, start, 100)
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
			s.turn.delivery = deliveryWritten
		}
	}
	o.readInbox(ctx)
	return nil
}

func (o *owner) log() Log { return o.m.store }

// appendTo appends recs and state to session s's stream (dispatching
// prompt dispatch, "" for none), with the head this owner saw
// acknowledged, so that a stream Redis rewound is refused rather than
// written under the lost entries' indexes; the owner then starts again
// (rewoundBy).
func (o *owner) appendTo(ctx context.Context, s *session, state map[string]string, dispatch string, recs ...model.Record) ([]model.Event, error) {
	if len(recs) == 0 && len(state) == 0 {
		return nil, nil
	}
	evs, err := o.log().AppendParts(ctx, o.ws, o.epoch, []model.Part{{Session: s.id, State: state, Records: recs, Head: s.head, Dispatch: dispatch}})
	if err != nil {
		o.rewoundBy(err)
		return nil, err
	}
	o.acknowledged(s, evs[0])
	return evs[0], nil
}

// acknowledged moves s's known head past evs, just appended.
func (o *owner) acknowledged(s *session, evs []model.Event) {
	if n := len(evs); n > 0 && evs[n-1].Index > s.head {
		s.head = evs[n-1].Index
	}
}

// rewind is a range of a session stream that Redis lost after
// acknowledging it.
type rewind struct {
	sid         string
	first, last uint64
}

// rewoundBy handles an append refused because Redis holds less of the
// stream than this owner saw acknowledged: everything the owner keeps of
// the workspace may be behind Redis now (or ahead of it), so it stops, as
// if it had lost the workspace, and the manager starts a new owner at once
// under the same lock: a new epoch, the state loaded again, the ACP
// connections re-attached from the last persisted positions (the lost
// agent messages come again from Sandbox Agent), and history_rewound
// recorded in each session that lost events.
func (o *owner) rewoundBy(err error) {
	var rw *model.RewoundError
	if !errors.As(err, &rw) {
		return
	}
	o.rewinds = append(o.rewinds, rewind{sid: rw.Session, first: rw.Head + 1, last: rw.Known})
	o.restart = true
	o.loseOwnership(err)
}

// idSet is a bounded set of ids: the oldest are forgotten first.
type idSet struct {
	max   int
	order []string
	in    map[string]bool
}

func newIDSet(n int) *idSet { return &idSet{max: n, in: make(map[string]bool)} }

func (s *idSet) add(id string) {
	if s.in[id] {
		return
	}
	s.in[id] = true
	s.order = append(s.order, id)
	if len(s.order) > s.max {
		delete(s.in, s.order[0])
		s.order = s.order[1:]
	}
}

func (s *idSet) has(id string) bool { return s.in[id] }

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
	return o.sessionFrom(ctx, rec)
}

// sessionFrom loads the stream state of the session whose record is rec.
func (o *owner) sessionFrom(ctx context.Context, rec SessionRecord) (*session, error) {
	if s := o.sessions[rec.ID]; s != nil {
		return s, nil
	}
	sid := rec.ID
	st, err := o.readState(ctx, sid)
	if err != nil {
		return nil, err
	}
	s := &session{id: sid, rec: rec, state: st, head: st.Head, agentSID: rec.AgentSessionID, lastMsg: time.Now(), srcConn: st.Conn}
	for _, id := range st.Sent {
		// Dispatch markers an earlier owner read after Redis lost the
		// record of their prompts (ingest.go).
		o.sentElsewhere.add(id)
	}
	if st.Turn != nil {
		s.turn = &turn{turnRecord: *st.Turn, takenOver: true, since: time.Now()}
	}
	if err := o.loadPermissions(ctx, s); err != nil {
		return nil, err
	}
	o.sessions[sid] = s
	return s, nil
}

// tick runs the owner's periodic work.
func (o *owner) tick(ctx context.Context) {
	now := time.Now()
	for _, s := range o.sessions {
		if s.rec.DestroyedAt != nil {
			continue
		}
		if s.conn == nil && !s.opening && (len(s.queue) > 0 || s.turn != nil || s.restore && !s.agentDown) && now.After(s.retryAt) && !o.unhealthy {
			o.open(ctx, s)
		}
		if t := s.turn; t != nil && t.ending != nil {
			o.endTurn(ctx, s, t.ending.stopReason, t.ending.reason)
		}
		o.permissionTick(ctx, s)
		if t := s.turn; t != nil && t.unsent != nil && s.conn != nil {
			o.send(ctx, s, t, t.unsent)
		}
		// A prompt whose dispatch append failed (Redis away, or its answer
		// lost) is tried again, though nothing else happens in its session.
		if s.turn == nil && len(s.queue) > 0 && s.conn != nil {
			o.dispatch(ctx, s)
		}
		// A prompt found in flight whose delivery is unknown (its
		// predecessor died after appending it, before the request was
		// known written): an ACP prompt cannot be deduplicated, so it is
		// never sent again. When the agent's stream does not settle it
		// (no message of the agent about it) within DispatchTimeout, the
		// turn ends as delivery_unknown, which the room sees; the person
		// can send it again.
		if t := s.turn; t != nil && t.takenOver && t.delivery == deliveryUnknown && t.ending == nil && s.conn != nil && now.Sub(s.lastMsg) > o.m.cfg.DispatchTimeout && now.Sub(t.since) > o.m.cfg.DispatchTimeout {
			o.logger.Warn("prompt in flight silent since take-over; its delivery is unknown", slog.String("sid", s.id), slog.Int64("req", t.Req))
			o.endTurn(ctx, s, StopDeliveryUnknown, "the owner changed before the prompt was known to reach the agent, and the agent has not answered it: it may not have arrived; send it again if needed")
		}
	}
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
