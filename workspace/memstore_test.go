package workspace

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tandem-dev/tandem/eventlog"
	"github.com/tandem-dev/tandem/eventlog/model"
)

// memStore is an in-memory Store with eventlog.Store's semantics (the
// fence, stream states, the inbox's consumer group, the enqueue script's
// checks, lock expiry), for fast tests of the owner's logic, as
// centrifuge tests its own against a memory broker. Several fronts
// (peer) share one memData, as nodes share one Redis; each front has its
// own fault knobs, so that one node can be paused or cut off alone.
//
// Every call goes through do: wait while the front is paused, fail when a
// fault says so (nothing applied), apply under the data's mutex, then
// fail when a lost reply is due (applied, error returned). Signals (the
// doorbell) are delivered after the mutex is released.
type memStore struct {
	d    *memData
	node string

	mu     sync.Mutex
	paused chan struct{} // non-nil while paused; closed by resume
	fail   map[string]int
	lose   map[string]int
	calls  map[string]int
	before func(c *memCall) error // runs before a call; an error fails it unapplied
	after  func(c *memCall) error // runs after a call applied; an error is a lost reply
}

// memCall describes one call for the hooks.
type memCall struct {
	Method   string
	WS       string
	Epoch    uint64
	Sessions []string       // appends: the sessions of the parts
	Records  []model.Record // appends: every record
	State    map[string]string
	N        int // reads and claims: entries returned
}

// hasType reports whether the call appends a record of type typ.
func (c *memCall) hasType(typ string) bool {
	for _, r := range c.Records {
		if r.Type == typ {
			return true
		}
	}
	return false
}

var _ Store = (*memStore)(nil)

type memData struct {
	mu       sync.Mutex
	sent     map[string][]string // RecordSent
	fence    map[string]uint64
	streams  map[string]*memStream // ws \x00 sid
	inboxes  map[string]*memInbox
	meta     map[string]map[string]string
	zsess    map[string]map[string]int64       // ws → sid → createdAt
	sessRec  map[string]map[string]string      // ws \x00 sid → hash
	owners   map[string]*memHash               // ws
	active   map[string]int64                  // ws → ms
	presence map[string]*memHash               // ws
	locks    map[string]*memLockState          // ws
	keys     map[string]*memHash               // idempotency and rate keys: "v"
	perms    map[string]map[string]string      // ws \x00 sid → permissions hash (permission_memstore_test.go)
	bells    map[*Manager]func(ws, msg string) // the doorbell's subscribers
	lockSeq  int
	signals  [][2]string // to deliver once the mutex is released
}

type memStream struct {
	events []model.Event
	state  map[string]string
}

type memInbox struct {
	entries       []model.InboxEntry
	group         bool
	lastDelivered string
	pending       map[string]string // id → consumer
	lastMs, seq   int64
}

type memHash struct {
	f   map[string]string
	exp time.Time // zero: no expiry
}

type memLockState struct {
	value string
	exp   time.Time
}

func expired(exp time.Time) bool { return !exp.IsZero() && !time.Now().Before(exp) }

func newMemStore() *memStore {
	d := &memData{
		fence: map[string]uint64{}, streams: map[string]*memStream{}, inboxes: map[string]*memInbox{},
		meta: map[string]map[string]string{}, zsess: map[string]map[string]int64{}, sessRec: map[string]map[string]string{},
		owners: map[string]*memHash{}, active: map[string]int64{}, presence: map[string]*memHash{},
		locks: map[string]*memLockState{}, keys: map[string]*memHash{}, bells: map[*Manager]func(string, string){},
	}
	return &memStore{d: d, node: "a", fail: map[string]int{}, lose: map[string]int{}, calls: map[string]int{}}
}

// peer returns another front on the same data: another node's client.
func (s *memStore) peer(node string) *memStore {
	return &memStore{d: s.d, node: node, fail: map[string]int{}, lose: map[string]int{}, calls: map[string]int{}}
}

// Fault knobs.

// failNext makes the next n calls of method fail with ErrUnavailable,
// unapplied.
func (s *memStore) failNext(method string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail[method] = n
}

// loseNext makes the next n calls of method take effect and return
// ErrUnavailable, as a reply lost to a broken connection.
func (s *memStore) loseNext(method string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lose[method] = n
}

// hooks sets the before and after hooks (nil: none).
func (s *memStore) hooks(before, after func(c *memCall) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.before, s.after = before, after
}

// pause makes every call of this front wait until resume (a node stopped
// with SIGSTOP, or cut off from Redis).
func (s *memStore) pause() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.paused == nil {
		s.paused = make(chan struct{})
	}
}

func (s *memStore) resume() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.paused != nil {
		close(s.paused)
		s.paused = nil
	}
}

// callCount is how many calls of method this front received.
func (s *memStore) callCount(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[method]
}

// expireLock makes ws's lock expire now, as when its owner stopped
// extending it.
func (s *memStore) expireLock(ws string) {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	delete(s.d.locks, ws)
}

// snapshotStreams copies ws's session streams and their states, for
// rewindStreams.
func (s *memStore) snapshotStreams(ws string) map[string]*memStream {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	out := map[string]*memStream{}
	for k, st := range s.d.streams {
		if strings.HasPrefix(k, ws+"\x00") {
			out[k] = &memStream{events: slices.Clone(st.events), state: maps.Clone(st.state)}
		}
	}
	return out
}

// deleteStream removes a session's stream and its state, as a Redis that
// lost them does.
func (s *memStore) deleteStream(ws, sid string) {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	delete(s.d.streams, skey(ws, sid))
}

// snapshotInbox copies ws's inbox, for rewindInbox.
func (s *memStore) snapshotInbox(ws string) *memInbox {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	in := s.d.inboxes[ws]
	if in == nil {
		return nil
	}
	c := *in
	c.entries = slices.Clone(in.entries)
	c.pending = maps.Clone(in.pending)
	return &c
}

// rewindInbox puts ws's inbox back as snap has it (a lossy restart loses
// reads and acknowledgements too).
func (s *memStore) rewindInbox(ws string, snap *memInbox) {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	c := *snap
	c.entries = slices.Clone(snap.entries)
	c.pending = maps.Clone(snap.pending)
	s.d.inboxes[ws] = &c
}

// rewindStreams puts the streams back as snap has them, as a Redis that
// restarted from an older snapshot (or whose AOF lost its tail) does; the
// inbox, fence and locks are left as they are.
func (s *memStore) rewindStreams(snap map[string]*memStream) {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	for k, st := range snap {
		s.d.streams[k] = &memStream{events: slices.Clone(st.events), state: maps.Clone(st.state)}
	}
}

// subscribe delivers the workspaces' doorbell signals to m, as its node's
// eventlog.Bell does; the returned func ends it.
func (s *memStore) subscribe(m *Manager) func() {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	s.d.bells[m] = m.Signal
	return func() {
		s.d.mu.Lock()
		defer s.d.mu.Unlock()
		delete(s.d.bells, m)
	}
}

func unavailableErr(method string) error {
	return fmt.Errorf("%s: %w (injected)", method, model.ErrUnavailable)
}

func staleErr(op string, epoch, fence uint64) error {
	return fmt.Errorf("%s: %w (epoch %d fence %d)", op, model.ErrStaleWriter, epoch, fence)
}

func (s *memStore) enter(ctx context.Context, c *memCall) error {
	for {
		s.mu.Lock()
		p := s.paused
		s.mu.Unlock()
		if p == nil {
			break
		}
		select {
		case <-p:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	s.calls[c.Method]++
	before := s.before
	if s.fail[c.Method] > 0 {
		s.fail[c.Method]--
		s.mu.Unlock()
		return unavailableErr(c.Method)
	}
	s.mu.Unlock()
	if before != nil {
		return before(c)
	}
	return nil
}

// do runs fn as one call of this front (see memStore).
func (s *memStore) do(ctx context.Context, c *memCall, fn func(d *memData) error) error {
	if err := s.enter(ctx, c); err != nil {
		return err
	}
	s.d.mu.Lock()
	err := fn(s.d)
	sigs := s.d.signals
	s.d.signals = nil
	bells := slices.Collect(maps.Values(s.d.bells))
	s.d.mu.Unlock()
	for _, sg := range sigs {
		for _, b := range bells {
			b(sg[0], sg[1])
		}
	}
	if err != nil {
		return err
	}
	s.mu.Lock()
	after := s.after
	lost := s.lose[c.Method] > 0
	if lost {
		s.lose[c.Method]--
	}
	s.mu.Unlock()
	if lost {
		return unavailableErr(c.Method + " (reply lost)")
	}
	if after != nil {
		return after(c)
	}
	return nil
}

func (d *memData) signal(ws, msg string) { d.signals = append(d.signals, [2]string{ws, msg}) }

func nowMs() int64 { return time.Now().UnixMilli() }

func skey(ws, sid string) string { return ws + "\x00" + sid }

// checkFence is the fence check of every owner script: the fence must
// exist and equal epoch.
func (d *memData) checkFence(op, ws string, epoch uint64) error {
	f, ok := d.fence[ws]
	if !ok || f != epoch {
		return staleErr(op, epoch, f)
	}
	return nil
}

// Log.

func (s *memStore) AcquireEpoch(ctx context.Context, ws string) (uint64, error) {
	var n uint64
	err := s.do(ctx, &memCall{Method: "AcquireEpoch", WS: ws}, func(d *memData) error {
		d.fence[ws]++
		n = d.fence[ws]
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

func (s *memStore) CurrentEpoch(ctx context.Context, ws string) (uint64, error) {
	var n uint64
	err := s.do(ctx, &memCall{Method: "CurrentEpoch", WS: ws}, func(d *memData) error {
		n = d.fence[ws]
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

func (s *memStore) Append(ctx context.Context, ws, sid string, epoch uint64, recs ...model.Record) ([]model.Event, error) {
	return s.AppendState(ctx, ws, sid, epoch, nil, recs...)
}

func (s *memStore) AppendState(ctx context.Context, ws, sid string, epoch uint64, state map[string]string, recs ...model.Record) ([]model.Event, error) {
	if len(recs) == 0 && len(state) == 0 {
		return nil, nil
	}
	evs, err := s.appendParts(ctx, "AppendState", ws, epoch, []model.Part{{Session: sid, State: state, Records: recs}})
	if err != nil {
		return nil, err
	}
	return evs[0], nil
}

func (s *memStore) AppendParts(ctx context.Context, ws string, epoch uint64, parts []model.Part) ([][]model.Event, error) {
	return s.appendParts(ctx, "AppendParts", ws, epoch, parts)
}

// memValidStateField is eventlog's validStateField.
func memValidStateField(k string) bool {
	if k == "" || len(k) > 32 || k == "n" || k == "gen" || k == "src" || k == "tok" || k == "rcpt" || k == "disp" || k == "wd" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if (k[i] < 'a' || k[i] > 'z') && k[i] != '_' {
			return false
		}
	}
	return true
}

func (s *memStore) appendParts(ctx context.Context, method, ws string, epoch uint64, parts []model.Part) ([][]model.Event, error) {
	total := 0
	c := &memCall{Method: method, WS: ws, Epoch: epoch, State: map[string]string{}}
	for _, p := range parts {
		total += len(p.Records)
		c.Sessions = append(c.Sessions, p.Session)
		c.Records = append(c.Records, p.Records...)
		maps.Copy(c.State, p.State)
	}
	if len(parts) == 0 || len(parts) > 64 || total > 512 {
		return nil, fmt.Errorf("%w: %d parts of %d records", model.ErrInvalidRecord, len(parts), total)
	}
	bodies := make([][][]byte, len(parts))
	for pi, p := range parts {
		if !model.ValidID(ws) || !model.ValidID(p.Session) && p.Session != model.WorkspaceStream {
			return nil, model.ErrInvalidID
		}
		for k, v := range p.State {
			if !memValidStateField(k) && !(k == "src" && v == "") {
				return nil, fmt.Errorf("%w: state field %q", model.ErrInvalidRecord, k)
			}
		}
		for i := range p.Records {
			b, err := p.Records[i].NormalizeFor(p.Session)
			if err != nil {
				return nil, err
			}
			bodies[pi] = append(bodies[pi], b)
		}
	}
	out := make([][]model.Event, len(parts))
	err := s.do(ctx, c, func(d *memData) error {
		if err := d.checkFence("append "+ws, ws, epoch); err != nil {
			return err
		}
		now := time.Now()
		tag := strconv.FormatUint(uint64(now.UnixNano())&0xffffff|0x100000, 16)
		// Checked before anything is written, as lua/append.lua does.
		for _, p := range parts {
			st := d.streams[skey(ws, p.Session)]
			var stv map[string]string
			if st != nil {
				stv = st.state
			}
			n, _ := strconv.ParseUint(stv["n"], 10, 64)
			if p.Head > 0 && n < p.Head {
				return fmt.Errorf("append %s: %w", ws, &model.RewoundError{Session: p.Session, Head: n, Known: p.Head})
			}
			if p.Dispatch != "" && (stv["last_inbox"] == p.Dispatch || slices.Contains(strings.Fields(stv["disp"]), p.Dispatch)) {
				return fmt.Errorf("append %s: %w", ws, model.ErrDuplicate)
			}
			if p.Dispatch != "" && slices.Contains(strings.Fields(stv["wd"]), p.Dispatch) {
				return fmt.Errorf("append %s: %w", ws, model.ErrWithdrawn)
			}
		}
		for pi, p := range parts {
			st := d.streams[skey(ws, p.Session)]
			if st == nil {
				st = &memStream{state: map[string]string{}}
				d.streams[skey(ws, p.Session)] = st
			}
			gen := st.state["gen"]
			if gen == "" {
				gen = strconv.FormatInt(now.UnixMicro(), 16)
			}
			last, _ := strconv.ParseUint(st.state["n"], 10, 64)
			src := ""
			// Records at or below the stored source position of the same
			// connection, and the unsourced ones after them, are skipped.
			skip := 0
			_, fresh := p.State["src"]
			pconn, hasConn := p.State["conn"]
			if stored, err := strconv.ParseUint(st.state["src"], 10, 64); err == nil && !fresh && (!hasConn || pconn == st.state["conn"]) {
				for i, r := range p.Records {
					if pos, err := strconv.ParseUint(r.Source, 10, 64); err == nil {
						if pos > stored {
							break
						}
						skip = i + 1
					}
				}
				for skip > 0 && skip < len(p.Records) && p.Records[skip].Source == "" {
					skip++
				}
			}
			out[pi] = []model.Event{}
			if len(p.Records) > 0 && skip == len(p.Records) {
				continue // all in the stream already: the state stays
			}
			for i, r := range p.Records {
				if i < skip {
					continue
				}
				last++
				ev := model.Event{
					ID: model.Cursor{Gen: gen, Index: last, Tag: tag}.String(), Index: last, SessionID: p.Session, Tag: tag,
					CreatedAt: now.UnixMilli(), Type: r.Type, Body: bodies[pi][i], Source: r.Source, Epoch: epoch,
				}
				if r.Source != "" {
					src = r.Source
				}
				st.events = append(st.events, ev)
				out[pi] = append(out[pi], ev)
			}
			st.state["n"] = strconv.FormatUint(last, 10)
			st.state["gen"] = gen
			maps.Copy(st.state, p.State)
			if src != "" {
				st.state["src"] = src
			}
			if p.Dispatch != "" {
				ids := append(strings.Fields(st.state["disp"]), p.Dispatch)
				st.state["disp"] = strings.Join(ids[max(0, len(ids)-64):], " ")
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *memStore) State(ctx context.Context, ws, sid string) (map[string]string, error) {
	out := map[string]string{}
	err := s.do(ctx, &memCall{Method: "State", WS: ws}, func(d *memData) error {
		if st := d.streams[skey(ws, sid)]; st != nil {
			maps.Copy(out, st.state)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *memStore) Last(ctx context.Context, ws, sid string, n int) ([]model.Event, model.Cursor, error) {
	var evs []model.Event
	var head model.Cursor
	err := s.do(ctx, &memCall{Method: "Last", WS: ws}, func(d *memData) error {
		st := d.streams[skey(ws, sid)]
		if st == nil {
			return nil
		}
		head.Gen = st.state["gen"]
		head.Index, _ = strconv.ParseUint(st.state["n"], 10, 64)
		evs = slices.Clone(st.events[max(0, len(st.events)-n):])
		return nil
	})
	if err != nil {
		return nil, model.Cursor{}, err
	}
	return evs, head, nil
}

func (s *memStore) Before(ctx context.Context, ws, sid string, before uint64, n int) ([]model.Event, error) {
	if n <= 0 || n > 1000 {
		n = 1000
	}
	var out []model.Event
	err := s.do(ctx, &memCall{Method: "Before", WS: ws}, func(d *memData) error {
		st := d.streams[skey(ws, sid)]
		if st == nil {
			return nil
		}
		for i := len(st.events) - 1; i >= 0 && len(out) < n; i-- {
			if before == 0 || st.events[i].Index < before {
				out = append(out, st.events[i])
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// events returns a session stream's events (for assertions).
func (s *memStore) events(ws, sid string) []model.Event {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	if st := s.d.streams[skey(ws, sid)]; st != nil {
		return slices.Clone(st.events)
	}
	return nil
}

// state returns a session stream's state (for assertions).
func (s *memStore) state(ws, sid string) map[string]string {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	if st := s.d.streams[skey(ws, sid)]; st != nil {
		return maps.Clone(st.state)
	}
	return map[string]string{}
}

// Inbox.

func (d *memData) inbox(ws string) *memInbox {
	in := d.inboxes[ws]
	if in == nil {
		in = &memInbox{pending: map[string]string{}, lastDelivered: "0-0"}
		d.inboxes[ws] = in
	}
	return in
}

// xadd appends an inbox entry with an id "<ms>-<seq>" after every earlier
// one, as XADD * does.
func (d *memData) xadd(ws string, e model.InboxEntry) string {
	in := d.inbox(ws)
	ms := nowMs()
	if ms <= in.lastMs {
		ms, in.seq = in.lastMs, in.seq+1
	} else {
		in.seq = 0
	}
	in.lastMs = ms
	e.ID = fmt.Sprintf("%d-%d", ms, in.seq)
	in.entries = append(in.entries, e)
	return e.ID
}

// Withdraw is lua/withdraw.lua (without its workspace-stream entry).
func (s *memStore) Withdraw(ctx context.Context, ws string, w model.Withdraw) (model.WithdrawStatus, bool, error) {
	var status model.WithdrawStatus
	already := false
	err := s.do(ctx, &memCall{Method: "Withdraw", WS: ws}, func(d *memData) error {
		if m := d.meta[ws]; len(m) == 0 || m["deletedAt"] != "" {
			status = model.WithdrawNoWorkspace
			return nil
		}
		st := d.streams[skey(ws, w.Session)]
		if st == nil {
			st = &memStream{state: map[string]string{}}
			d.streams[skey(ws, w.Session)] = st
		}
		dispatched := st.state["last_inbox"] == w.ID || slices.Contains(strings.Fields(st.state["disp"]), w.ID)
		wd := slices.Contains(strings.Fields(st.state["wd"]), w.ID)
		var e *model.InboxEntry
		for i := range d.inbox(ws).entries {
			if d.inbox(ws).entries[i].ID == w.ID {
				e = &d.inbox(ws).entries[i]
			}
		}
		switch {
		case e == nil && dispatched:
			status = model.WithdrawDispatched
		case e == nil && wd:
			status, already = model.WithdrawOK, true
		case e == nil || e.Kind != cmdPrompt || e.Session != w.Session:
			status = model.WithdrawNotFound
		case !w.Admin && e.User != w.User:
			status = model.WithdrawForbidden
		case dispatched:
			status = model.WithdrawDispatched
		case wd:
			status, already = model.WithdrawOK, true
		default:
			status = model.WithdrawOK
			st.state["wd"] = strings.TrimSpace(st.state["wd"] + " " + w.ID)
		}
		return nil
	})
	return status, already, err
}

func (s *memStore) EnsureInbox(ctx context.Context, ws string) error {
	return s.do(ctx, &memCall{Method: "EnsureInbox", WS: ws}, func(d *memData) error {
		d.inbox(ws).group = true
		return nil
	})
}

func (s *memStore) ReadInbox(ctx context.Context, ws string, epoch uint64, consumer string, count int, after string) ([]model.InboxEntry, error) {
	if after == "" {
		after = "0-0"
	}
	var out []model.InboxEntry
	c := &memCall{Method: "ReadInbox", WS: ws, Epoch: epoch}
	err := s.do(ctx, c, func(d *memData) error {
		if err := d.checkFence("read inbox "+ws, ws, epoch); err != nil {
			return err
		}
		in := d.inbox(ws)
		if !in.group {
			in.group = true // NOGROUP: eventlog creates it and answers nothing
			return nil
		}
		for _, e := range in.entries { // pending for consumer after after
			if len(out) < count && in.pending[e.ID] == consumer && idAfter(e.ID, after) {
				out = append(out, e)
			}
		}
		if len(out) == 0 {
			for _, e := range in.entries {
				if len(out) < count && idAfter(e.ID, in.lastDelivered) {
					out = append(out, e)
					in.pending[e.ID] = consumer
					in.lastDelivered = e.ID
				}
			}
		}
		c.N = len(out)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *memStore) ClaimInbox(ctx context.Context, ws string, epoch uint64, consumer, start string, count int) ([]model.InboxEntry, string, error) {
	var out []model.InboxEntry
	next := "0-0"
	c := &memCall{Method: "ClaimInbox", WS: ws, Epoch: epoch}
	err := s.do(ctx, c, func(d *memData) error {
		if err := d.checkFence("claim inbox "+ws, ws, epoch); err != nil {
			return err
		}
		in := d.inboxes[ws]
		if in == nil || !in.group {
			return errors.New("NOGROUP no such key or consumer group")
		}
		for _, e := range in.entries {
			if _, ok := in.pending[e.ID]; !ok || (e.ID != start && !idAfter(e.ID, start)) {
				continue
			}
			if len(out) == count {
				next = e.ID
				break
			}
			in.pending[e.ID] = consumer
			out = append(out, e)
		}
		c.N = len(out)
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return out, next, nil
}

// AckInbox acknowledges and deletes entries, as eventlog's fenced script
// does (the consumers a complete claim deletes in eventlog are not
// modelled: nothing here reads them).
func (s *memStore) AckInbox(ctx context.Context, ws string, epoch uint64, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	return s.do(ctx, &memCall{Method: "AckInbox", WS: ws, Epoch: epoch}, func(d *memData) error {
		if err := d.checkFence("ack inbox "+ws, ws, epoch); err != nil {
			return err
		}
		in := d.inbox(ws)
		for _, id := range ids {
			if _, ok := in.pending[id]; ok {
				delete(in.pending, id)
				in.entries = slices.DeleteFunc(in.entries, func(e model.InboxEntry) bool { return e.ID == id })
			}
		}
		return nil
	})
}

func (s *memStore) InboxPending(ctx context.Context, ws string) (int64, error) {
	var n int64
	err := s.do(ctx, &memCall{Method: "InboxPending", WS: ws}, func(d *memData) error {
		n = int64(len(d.inbox(ws).pending))
		return nil
	})
	return n, err
}

func (s *memStore) InboxDepth(ctx context.Context, ws string) (int64, error) {
	var n int64
	err := s.do(ctx, &memCall{Method: "InboxDepth", WS: ws}, func(d *memData) error {
		in := d.inbox(ws)
		n = int64(len(in.pending))
		for _, e := range in.entries {
			if idAfter(e.ID, in.lastDelivered) {
				n++
			}
		}
		return nil
	})
	return n, err
}

// inboxView returns the inbox's entries and which are pending with whom
// (for assertions).
func (s *memStore) inboxView(ws string) ([]model.InboxEntry, map[string]string) {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	in := s.d.inbox(ws)
	return slices.Clone(in.entries), maps.Clone(in.pending)
}

// getKey and setKey are the expiring string keys of the enqueue script.
func (d *memData) getKey(k string) (string, bool) {
	h := d.keys[k]
	if h == nil || expired(h.exp) {
		delete(d.keys, k)
		return "", false
	}
	return h.f["v"], true
}

func (d *memData) setKey(k, v string, ttl time.Duration) {
	d.keys[k] = &memHash{f: map[string]string{"v": v}, exp: time.Now().Add(ttl)}
}

// Enqueue is lua/enqueue.lua.
func (s *memStore) Enqueue(ctx context.Context, ws string, e model.Enqueue) (model.Enqueued, error) {
	if !model.ValidID(ws) || !model.ValidID(e.Session) {
		return model.Enqueued{}, model.ErrInvalidID
	}
	var out model.Enqueued
	err := s.do(ctx, &memCall{Method: "Enqueue", WS: ws}, func(d *memData) error {
		m := d.meta[ws]
		if len(m) == 0 || m["deletedAt"] != "" {
			out.Status = model.EnqueueNoWorkspace
			return nil
		}
		idem := ws + "/idem/" + e.IdemKey
		if e.IdemTTL > 0 {
			if prev, ok := d.getKey(idem); ok {
				out = model.Enqueued{Status: model.EnqueueDuplicate, ID: prev}
				return nil
			}
		}
		now := nowMs()
		rec := d.sessRec[skey(ws, e.Session)]
		rate := ws + "/rate/" + e.RateKey
		interval := e.RateInterval.Milliseconds()
		var newTat int64
		if interval > 0 {
			v, _ := d.getKey(rate)
			tat, _ := strconv.ParseInt(v, 10, 64)
			tat = max(tat, now)
			if tol := e.RateTolerance.Milliseconds(); tat-now > tol {
				out = model.Enqueued{Status: model.EnqueueRateLimited, RetryAfter: time.Duration(tat-now-tol) * time.Millisecond}
				return nil
			}
			newTat = tat + interval
		}
		switch {
		case rec["id"] == "":
			if !e.Create {
				out.Status = model.EnqueueNoSession
				return nil
			}
			if e.MaxSessions > 0 && len(d.zsess[ws]) >= e.MaxSessions {
				out.Status = model.EnqueueTooMany
				return nil
			}
			agent := e.Agent
			if agent == "" {
				agent = m["agent"]
			}
			if agent != m["agent"] && !slices.Contains(strings.Split(m["agents"], ","), agent) {
				out.Status = model.EnqueueAgent
				return nil
			}
			if rec == nil {
				rec = map[string]string{}
				d.sessRec[skey(ws, e.Session)] = rec
			}
			maps.Copy(rec, map[string]string{"id": e.Session, "agent": agent, "createdAt": strconv.FormatInt(now, 10), "sandboxId": m["sandboxId"]})
			if d.zsess[ws] == nil {
				d.zsess[ws] = map[string]int64{}
			}
			d.zsess[ws][e.Session] = now
			out.Created = true
		case rec["destroyedAt"] != "" && e.Kind != cmdDestroy:
			out.Status = model.EnqueueDestroyed
			return nil
		}
		out.Status = model.EnqueueOK
		out.ID = d.xadd(ws, model.InboxEntry{Kind: e.Kind, Session: e.Session, User: e.User, Text: e.Text})
		if e.IdemTTL > 0 {
			d.setKey(idem, out.ID, e.IdemTTL)
		}
		if interval > 0 {
			d.setKey(rate, strconv.FormatInt(newTat, 10), time.Duration(newTat-now+1000)*time.Millisecond)
		}
		d.signal(ws, sigInbox)
		return nil
	})
	if err != nil {
		return model.Enqueued{}, err
	}
	return out, nil
}

// Records.

func memParseMeta(v map[string]string) model.WorkspaceMeta {
	created, _ := strconv.ParseInt(v["createdAt"], 10, 64)
	return model.WorkspaceMeta{
		SandboxURL: v["sandboxUrl"], SandboxToken: v["sandboxToken"], SandboxID: v["sandboxId"], Agent: v["agent"],
		CreatedAt: created, Deleted: v["deletedAt"] != "", PermissionPolicy: v["permissionPolicy"], Agents: memAgents(v["agents"]),
		SpeakerLabels: v["speakerLabels"],
	}
}

func memAgents(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func (s *memStore) PutWorkspace(ctx context.Context, ws string, m model.WorkspaceMeta, now int64) (bool, error) {
	if !model.ValidID(ws) {
		return false, model.ErrInvalidID
	}
	var created bool
	err := s.do(ctx, &memCall{Method: "PutWorkspace", WS: ws}, func(d *memData) error {
		h := d.meta[ws]
		if h["deletedAt"] != "" || (len(h) == 0 && len(d.zsess[ws]) > 0) {
			return fmt.Errorf("put workspace %s: %w", ws, model.ErrWorkspaceDeleted) // lua/put_workspace.lua
		}
		if h == nil {
			h = map[string]string{}
			d.meta[ws] = h
		}
		if _, ok := h["createdAt"]; !ok {
			h["createdAt"] = strconv.FormatInt(now, 10)
			created = true
		}
		maps.Copy(h, map[string]string{"sandboxUrl": m.SandboxURL, "sandboxToken": m.SandboxToken, "sandboxId": m.SandboxID,
			"agent": m.Agent, "agents": strings.Join(m.Agents, ","), "updatedAt": strconv.FormatInt(now, 10)})
		if m.PermissionPolicy != "" {
			h["permissionPolicy"] = m.PermissionPolicy
		}
		if m.SpeakerLabels != "" {
			h["speakerLabels"] = m.SpeakerLabels
		}
		return nil
	})
	return created, err
}

func (s *memStore) WorkspaceMeta(ctx context.Context, ws string) (model.WorkspaceMeta, bool, error) {
	var m model.WorkspaceMeta
	var found bool
	err := s.do(ctx, &memCall{Method: "WorkspaceMeta", WS: ws}, func(d *memData) error {
		if h := d.meta[ws]; h["createdAt"] != "" { // a tombstone has none
			m, found = memParseMeta(h), true
		}
		return nil
	})
	if err != nil {
		return model.WorkspaceMeta{}, false, err
	}
	return m, found, nil
}

func (s *memStore) WorkspaceExists(ctx context.Context, ws string) (bool, error) {
	var ok bool
	err := s.do(ctx, &memCall{Method: "WorkspaceExists", WS: ws}, func(d *memData) error {
		h := d.meta[ws]
		ok = h["createdAt"] != "" && h["deletedAt"] == ""
		return nil
	})
	return ok, err
}

func (d *memData) sessionIDs(ws string) []string {
	z := d.zsess[ws]
	ids := slices.Collect(maps.Keys(z))
	sort.Slice(ids, func(i, j int) bool {
		if z[ids[i]] != z[ids[j]] {
			return z[ids[i]] < z[ids[j]]
		}
		return ids[i] < ids[j]
	})
	return ids
}

func (d *memData) lockHeld(ws string) bool {
	l := d.locks[ws]
	return l != nil && !expired(l.exp)
}

func (d *memData) owner(ws string) *memHash {
	h := d.owners[ws]
	if h != nil && expired(h.exp) {
		delete(d.owners, ws)
		return nil
	}
	return h
}

func (s *memStore) Workspace(ctx context.Context, ws string) (model.WorkspaceView, error) {
	var v model.WorkspaceView
	err := s.do(ctx, &memCall{Method: "Workspace", WS: ws}, func(d *memData) error {
		v = model.WorkspaceView{Found: d.meta[ws]["createdAt"] != "", Meta: memParseMeta(d.meta[ws]), Sessions: d.sessionIDs(ws)}
		if o := d.owner(ws); o != nil && d.lockHeld(ws) {
			ep, _ := strconv.ParseUint(o.f["epoch"], 10, 64)
			since, _ := strconv.ParseInt(o.f["since"], 10, 64)
			v.Owner = &model.OwnerRecord{Node: o.f["node"], Epoch: ep, Since: since, Health: o.f["health"]}
		}
		return nil
	})
	return v, err
}

// DeleteWorkspace is lua/delete_workspace.lua.
func (s *memStore) DeleteWorkspace(ctx context.Context, ws string) (bool, error) {
	var found bool
	err := s.do(ctx, &memCall{Method: "DeleteWorkspace", WS: ws}, func(d *memData) error {
		h := d.meta[ws]
		if len(h) == 0 || h["deletedAt"] != "" {
			return nil
		}
		now := strconv.FormatInt(nowMs(), 10)
		for _, sid := range d.sessionIDs(ws) {
			rec := d.sessRec[skey(ws, sid)]
			if rec == nil {
				rec = map[string]string{}
				d.sessRec[skey(ws, sid)] = rec
			}
			if rec["destroyedAt"] == "" {
				rec["destroyedAt"] = now
			}
		}
		h["deletedAt"] = now
		d.xadd(ws, model.InboxEntry{Kind: cmdDestroyWS})
		d.signal(ws, sigInbox)
		found = true
		return nil
	})
	return found, err
}

func (s *memStore) FinishDelete(ctx context.Context, ws string, epoch uint64) error {
	return s.do(ctx, &memCall{Method: "FinishDelete", WS: ws, Epoch: epoch}, func(d *memData) error {
		err := d.checkFence("finish delete "+ws, ws, epoch)
		if at := d.meta[ws]["deletedAt"]; err == nil && at != "" {
			d.meta[ws] = map[string]string{"deletedAt": at} // the tombstone
		}
		delete(d.active, ws) // eventlog removes the mark whatever the script said
		return err
	})
}

// PurgeWorkspace is lua/purge_workspace.lua.
func (s *memStore) PurgeWorkspace(ctx context.Context, ws string) (model.PurgeStatus, error) {
	if !model.ValidID(ws) {
		return "", model.ErrInvalidID
	}
	var st model.PurgeStatus
	err := s.do(ctx, &memCall{Method: "PurgeWorkspace", WS: ws}, func(d *memData) error {
		h := d.meta[ws]
		hasFence := d.fence[ws] != 0
		in := d.inboxes[ws] // read calls make one, empty, as Redis makes no key
		hasInbox := in != nil && (in.group || len(in.entries) > 0)
		switch {
		case h["createdAt"] != "" && h["deletedAt"] == "":
			st = model.PurgeLive
		case h["createdAt"] != "":
			st = model.PurgeDeleting
		case h["deletedAt"] == "" && len(d.zsess[ws]) == 0 && !hasFence && !hasInbox:
			st = model.PurgeNone
		case d.lockHeld(ws):
			st = model.PurgeBusy
		default:
			st = model.PurgeOK
			for _, sid := range d.sessionIDs(ws) {
				delete(d.streams, skey(ws, sid))
				delete(d.sessRec, skey(ws, sid))
				delete(d.perms, skey(ws, sid))
			}
			delete(d.meta, ws)
			delete(d.zsess, ws)
			delete(d.fence, ws)
			delete(d.owners, ws)
			delete(d.inboxes, ws)
			delete(d.presence, ws)
			for k := range d.keys {
				if strings.HasPrefix(k, ws+"/") {
					delete(d.keys, k)
				}
			}
		}
		return nil
	})
	return st, err
}

func (s *memStore) MarkActive(ctx context.Context, ws string) error {
	return s.do(ctx, &memCall{Method: "MarkActive", WS: ws}, func(d *memData) error {
		if _, ok := d.active[ws]; !ok {
			d.active[ws] = nowMs()
		}
		return nil
	})
}

// The active set is scored by when pollers should look (eventlog/active.go).

func (s *memStore) LeaseActive(ctx context.Context, ws string, ttl time.Duration) error {
	return s.do(ctx, &memCall{Method: "LeaseActive", WS: ws}, func(d *memData) error {
		if at, ok := d.active[ws]; ok {
			d.active[ws] = max(at, nowMs()+ttl.Milliseconds())
		}
		return nil
	})
}

func (s *memStore) HandOffActive(ctx context.Context, ws string) error {
	return s.do(ctx, &memCall{Method: "HandOffActive", WS: ws}, func(d *memData) error {
		if _, ok := d.active[ws]; ok {
			d.active[ws] = nowMs()
		}
		return nil
	})
}

func (s *memStore) DueActive(ctx context.Context, n int, retry time.Duration) ([]string, bool, error) {
	var free []string
	full := false
	err := s.do(ctx, &memCall{Method: "DueActive"}, func(d *memData) error {
		now := nowMs()
		var due []string
		for ws, at := range d.active {
			if at <= now {
				due = append(due, ws)
			}
		}
		sort.Slice(due, func(i, j int) bool {
			if d.active[due[i]] != d.active[due[j]] {
				return d.active[due[i]] < d.active[due[j]]
			}
			return due[i] < due[j]
		})
		full = len(due) >= n
		due = due[:min(n, len(due))]
		for _, ws := range due {
			next := now + retry.Milliseconds()
			if d.lockHeld(ws) {
				next = d.locks[ws].exp.UnixMilli()
			} else {
				free = append(free, ws)
			}
			d.active[ws] = max(d.active[ws], next)
		}
		return nil
	})
	return free, full, err
}

func (s *memStore) UnmarkActive(ctx context.Context, ws string) error {
	return s.do(ctx, &memCall{Method: "UnmarkActive", WS: ws}, func(d *memData) error {
		delete(d.active, ws)
		return nil
	})
}

func (s *memStore) Active(ctx context.Context, n int) ([]string, error) {
	var out []string
	err := s.do(ctx, &memCall{Method: "Active"}, func(d *memData) error {
		out = slices.Collect(maps.Keys(d.active))
		sort.Slice(out, func(i, j int) bool {
			if d.active[out[i]] != d.active[out[j]] {
				return d.active[out[i]] < d.active[out[j]]
			}
			return out[i] < out[j]
		})
		out = out[:min(n, len(out))]
		return nil
	})
	return out, err
}

func (s *memStore) Locked(ctx context.Context, wss []string) ([]bool, error) {
	out := make([]bool, len(wss))
	err := s.do(ctx, &memCall{Method: "Locked"}, func(d *memData) error {
		for i, ws := range wss {
			out[i] = d.lockHeld(ws)
		}
		return nil
	})
	return out, err
}

func (s *memStore) RecordSent(ctx context.Context, ws string, ids []string, at []int64) error {
	return s.do(ctx, &memCall{Method: "RecordSent", WS: ws, N: len(ids)}, func(d *memData) error {
		if d.sent == nil {
			d.sent = map[string][]string{}
		}
		for _, id := range ids {
			if !slices.Contains(d.sent[ws], id) {
				d.sent[ws] = append(d.sent[ws], id)
			}
		}
		return nil
	})
}

func (s *memStore) SentPrompts(ctx context.Context, ws string) ([]string, error) {
	var out []string
	err := s.do(ctx, &memCall{Method: "SentPrompts", WS: ws}, func(d *memData) error {
		out = slices.Clone(d.sent[ws])
		return nil
	})
	return out, err
}

func (s *memStore) SetOwner(ctx context.Context, ws string, o model.OwnerRecord, ttl time.Duration) error {
	return s.do(ctx, &memCall{Method: "SetOwner", WS: ws, Epoch: o.Epoch}, func(d *memData) error {
		if err := d.checkFence("record owner", ws, o.Epoch); err != nil {
			return err
		}
		h := d.owner(ws)
		if h == nil {
			h = &memHash{f: map[string]string{}}
			d.owners[ws] = h
		}
		maps.Copy(h.f, map[string]string{"node": o.Node, "epoch": strconv.FormatUint(o.Epoch, 10),
			"since": strconv.FormatInt(o.Since, 10), "health": o.Health})
		h.exp = time.Now().Add(ttl)
		return nil
	})
}

func (s *memStore) ExpireOwner(ctx context.Context, ws string, ttl time.Duration) error {
	return s.do(ctx, &memCall{Method: "ExpireOwner", WS: ws}, func(d *memData) error {
		if h := d.owner(ws); h != nil {
			h.exp = time.Now().Add(ttl)
		}
		return nil
	})
}

func (s *memStore) SetOwnerHealth(ctx context.Context, ws, health string) error {
	return s.do(ctx, &memCall{Method: "SetOwnerHealth", WS: ws}, func(d *memData) error {
		h := d.owner(ws)
		if h == nil { // HSET on a missing key makes one, with no expiry
			h = &memHash{f: map[string]string{}}
			d.owners[ws] = h
		}
		h.f["health"] = health
		return nil
	})
}

func (s *memStore) DeleteOwner(ctx context.Context, ws string, epoch uint64) error {
	return s.do(ctx, &memCall{Method: "DeleteOwner", WS: ws, Epoch: epoch}, func(d *memData) error {
		if h := d.owner(ws); h != nil && h.f["epoch"] == strconv.FormatUint(epoch, 10) {
			delete(d.owners, ws)
		}
		return nil
	})
}

// ownerRecord returns ws's owner record, nil when there is none (for
// assertions).
func (s *memStore) ownerRecord(ws string) map[string]string {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	if h := s.d.owner(ws); h != nil {
		return maps.Clone(h.f)
	}
	return nil
}

// memParseRecord is eventlog's parseRecord.
func memParseRecord(v map[string]string) model.SessionRecord {
	r := model.SessionRecord{ID: v["id"], Agent: v["agent"], AgentSessionID: v["agentSessionId"],
		LastConnectionID: v["lastConnectionId"], SandboxID: v["sandboxId"]}
	r.CreatedAt, _ = strconv.ParseInt(v["createdAt"], 10, 64)
	if d, err := strconv.ParseInt(v["destroyedAt"], 10, 64); err == nil {
		r.DestroyedAt = &d
	}
	if s := v["sessionInit"]; s != "" && json.Valid([]byte(s)) {
		r.SessionInit = []byte(s)
	}
	model.ParseSessionConfig(&r, v)
	return r
}

func (s *memStore) Session(ctx context.Context, ws, sid string) (model.SessionRecord, bool, error) {
	var rec model.SessionRecord
	var found bool
	err := s.do(ctx, &memCall{Method: "Session", WS: ws}, func(d *memData) error {
		if h := d.sessRec[skey(ws, sid)]; len(h) > 0 {
			rec, found = memParseRecord(h), true
		}
		return nil
	})
	if err != nil {
		return model.SessionRecord{}, false, err
	}
	return rec, found, nil
}

func (s *memStore) SessionOf(ctx context.Context, ws, sid string) (model.SessionRecord, bool, bool, error) {
	var rec model.SessionRecord
	var wsFound, found bool
	err := s.do(ctx, &memCall{Method: "SessionOf", WS: ws}, func(d *memData) error {
		if d.meta[ws]["createdAt"] == "" {
			return nil
		}
		wsFound = true
		if h := d.sessRec[skey(ws, sid)]; h["id"] != "" {
			rec, found = memParseRecord(h), true
		}
		return nil
	})
	if err != nil {
		return model.SessionRecord{}, false, false, err
	}
	return rec, wsFound, found, nil
}

func (s *memStore) SessionIDs(ctx context.Context, ws string) ([]string, error) {
	var out []string
	err := s.do(ctx, &memCall{Method: "SessionIDs", WS: ws}, func(d *memData) error {
		out = d.sessionIDs(ws)
		return nil
	})
	return out, err
}

func (s *memStore) MarkSessionDestroyed(ctx context.Context, ws, sid string, now int64) error {
	return s.do(ctx, &memCall{Method: "MarkSessionDestroyed", WS: ws}, func(d *memData) error {
		h := d.sessRec[skey(ws, sid)]
		if h == nil { // HSETNX on a missing key makes one
			h = map[string]string{}
			d.sessRec[skey(ws, sid)] = h
		}
		if h["destroyedAt"] == "" {
			h["destroyedAt"] = strconv.FormatInt(now, 10)
		}
		return nil
	})
}

func (s *memStore) RecordAgentSession(ctx context.Context, ws, sid string, epoch uint64, agentSessionID, connID, init string) error {
	return s.do(ctx, &memCall{Method: "RecordAgentSession", WS: ws, Epoch: epoch}, func(d *memData) error {
		if err := d.checkFence("record session "+sid, ws, epoch); err != nil {
			return err
		}
		h := d.sessRec[skey(ws, sid)]
		if h == nil {
			h = map[string]string{}
			d.sessRec[skey(ws, sid)] = h
		}
		maps.Copy(h, map[string]string{"agentSessionId": agentSessionID, "lastConnectionId": connID, "sessionInit": init})
		return nil
	})
}

func (s *memStore) ListSessions(ctx context.Context, ws string, afterScore int64, afterID string, limit int) ([]model.SessionRecord, int64, string, error) {
	var recs []model.SessionRecord
	nextScore, nextID := int64(-1), ""
	err := s.do(ctx, &memCall{Method: "ListSessions", WS: ws}, func(d *memData) error {
		var ids []string
		for _, id := range d.sessionIDs(ws) {
			sc := d.zsess[ws][id]
			if afterScore >= 0 && (sc < afterScore || sc == afterScore && id <= afterID) {
				continue
			}
			ids = append(ids, id)
		}
		if len(ids) > limit {
			ids = ids[:limit]
			nextScore, nextID = d.zsess[ws][ids[len(ids)-1]], ids[len(ids)-1]
		}
		for _, id := range ids {
			if h := d.sessRec[skey(ws, id)]; len(h) > 0 {
				recs = append(recs, memParseRecord(h))
			}
		}
		return nil
	})
	if err != nil {
		return nil, -1, "", err
	}
	if recs == nil {
		recs = []model.SessionRecord{}
	}
	return recs, nextScore, nextID, nil
}

func (s *memStore) ReportPresence(ctx context.Context, node string, put map[string][]byte, drop, changed []string, ttl time.Duration, sig string) error {
	return s.do(ctx, &memCall{Method: "ReportPresence"}, func(d *memData) error {
		for ws, b := range put {
			h := d.presence[ws]
			if h == nil || expired(h.exp) {
				h = &memHash{f: map[string]string{}}
				d.presence[ws] = h
			}
			h.f[node] = string(b)
			h.exp = time.Now().Add(ttl)
		}
		for _, ws := range drop {
			if h := d.presence[ws]; h != nil {
				delete(h.f, node)
				if len(h.f) == 0 {
					delete(d.presence, ws)
				}
			}
		}
		for _, ws := range changed {
			d.signal(ws, sig)
		}
		return nil
	})
}

func (s *memStore) PresenceReports(ctx context.Context, ws string) (map[string]string, error) {
	out := map[string]string{}
	err := s.do(ctx, &memCall{Method: "PresenceReports", WS: ws}, func(d *memData) error {
		if h := d.presence[ws]; h != nil && !expired(h.exp) {
			// Reports expired for longer than the grace are deleted, as
			// eventlog's read script does.
			for node, raw := range h.f {
				var p model.PresenceReport
				if json.Unmarshal([]byte(raw), &p) == nil && p.Exp+eventlog.PresenceGrace.Milliseconds() < nowMs() {
					delete(h.f, node)
				}
			}
			maps.Copy(out, h.f)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *memStore) Signal(ctx context.Context, ws, msg string) error {
	return s.do(ctx, &memCall{Method: "Signal", WS: ws}, func(d *memData) error {
		d.signal(ws, msg)
		return nil
	})
}

// Locks.

// errMemLockTaken is eventlog.ErrLockTaken's counterpart.
var errMemLockTaken = errors.New("lock held elsewhere")

func (s *memStore) NewLock(ws string, ttl time.Duration) (model.Lock, error) {
	if !model.ValidID(ws) {
		return nil, model.ErrInvalidID
	}
	s.d.mu.Lock()
	s.d.lockSeq++
	v := fmt.Sprintf("%s-%d", s.node, s.d.lockSeq)
	s.d.mu.Unlock()
	return &memLock{s: s, ws: ws, ttl: ttl, value: v}, nil
}

// memLock is a redsync mutex: a key holding its taker's value, with an
// expiry.
type memLock struct {
	s     *memStore
	ws    string
	ttl   time.Duration
	value string
}

func (l *memLock) TryLock(ctx context.Context) error {
	return l.s.do(ctx, &memCall{Method: "TryLock", WS: l.ws}, func(d *memData) error {
		if d.lockHeld(l.ws) {
			return errMemLockTaken
		}
		d.locks[l.ws] = &memLockState{value: l.value, exp: time.Now().Add(l.ttl)}
		return nil
	})
}

func (l *memLock) Extend(ctx context.Context) error {
	return l.s.do(ctx, &memCall{Method: "Extend", WS: l.ws}, func(d *memData) error {
		if !d.lockHeld(l.ws) || d.locks[l.ws].value != l.value {
			return errors.New("lock extension: not extended")
		}
		d.locks[l.ws].exp = time.Now().Add(l.ttl)
		return nil
	})
}

func (l *memLock) Unlock(ctx context.Context) error {
	return l.s.do(ctx, &memCall{Method: "Unlock", WS: l.ws}, func(d *memData) error {
		if !d.lockHeld(l.ws) || d.locks[l.ws].value != l.value {
			return errors.New("unlock: the lock is not held by this mutex")
		}
		delete(d.locks, l.ws)
		return nil
	})
}

// lockHolder returns the value of ws's lock, "" when it is free (for
// assertions).
func (s *memStore) lockHolder(ws string) string {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	if !s.d.lockHeld(ws) {
		return ""
	}
	return s.d.locks[ws].value
}

// isActive reports whether ws is in the active set (for assertions).
func (s *memStore) isActive(ws string) bool {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	_, ok := s.d.active[ws]
	return ok
}
