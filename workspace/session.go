package workspace

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptrace"
	"strings"
	"time"

	"github.com/tandem-dev/tandem/acp"
	"github.com/tandem-dev/tandem/eventlog/model"
)

// sessionEvent is the body of a session.event: the SDK's SessionEvent
// without the fields every event has.
type sessionEvent struct {
	ConnectionID string          `json:"connectionId"`
	Sender       string          `json:"sender"` // client or agent
	Payload      json.RawMessage `json:"payload"`
}

func envelopeRecord(connID, sender string, payload []byte, source string) model.Record {
	b, _ := json.Marshal(sessionEvent{ConnectionID: connID, Sender: sender, Payload: payload})
	return model.Record{Type: TypeSessionEvent, Body: b, Source: source}
}

// newConnID names a new ACP connection on the sandbox. The epoch and a
// random suffix make it unique across owners and restarts.
func (o *owner) newConnID(sid string) string {
	sum := sha256.Sum256([]byte(o.ws + "/" + sid))
	var r [4]byte
	_, _ = rand.Read(r[:])
	return fmt.Sprintf("tandem-%s-%d-%s", hex.EncodeToString(sum[:6]), o.epoch, hex.EncodeToString(r[:]))
}

// open connects a session to its agent on a helper goroutine: it
// re-attaches to the ACP connection the stream's state names, resuming
// after the last event ingested, or, when the server no longer knows it,
// creates a new connection and agent session (a restore).
func (o *owner) open(ctx context.Context, s *session) {
	if o.sandbox() == nil || s.opening {
		return
	}
	s.opening = true
	prev := s.state["conn"]
	if prev == "" {
		prev = s.rec.LastConnectionID
	}
	src := s.state["src"]
	if s.connID != "" && s.connID != prev {
		src = "" // a connection of ours that was never recorded
	}
	agent := s.rec.Agent
	if agent == "" {
		agent = o.meta.Agent
	}
	newID := o.newConnID(s.id)
	s.closed = make(chan struct{})
	closed := s.closed
	// Messages are accepted from the connection being opened, whichever it
	// turns out to be.
	s.connID = prev
	if prev == "" {
		s.connID = newID
	}
	client := o.sandbox()
	sid := s.id
	// A session that had an agent session before gets a new one only when
	// the old is lost: that is a restore, and the next prompt carries the
	// history.
	hadAgent := s.rec.AgentSessionID != ""
	cwd := o.m.cfg.AgentCwd
	firstID := int64(o.epoch)*1_000_000 + 1
	o.spawn(func() {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		res := openResult{}
		if prev != "" {
			// Resume after the last message the stream holds: its state is
			// written with every append, while what this owner loaded
			// when it took over is behind by everything it ingested since,
			// and an append whose answer was lost may have landed.
			st, err := o.log().State(ctx, o.ws, sid)
			if err != nil {
				res.err = err
				o.report(func(ctx context.Context) { o.opened(ctx, s, res) })
				return
			}
			if st["conn"] == prev {
				src = st["src"]
			}
			conn, err := client.Dial(ctx, acp.ConnConfig{
				ServerID: prev, LastEventID: src, FirstID: firstID,
				OnMessage: o.onMessage(sid, prev, closed), OnSend: o.onSend(sid, prev),
			})
			if err == nil {
				stTurn := st["turn"]
				res.conn, res.connID, res.stateTurn = conn, prev, &stTurn
				o.report(func(ctx context.Context) { o.opened(ctx, s, res) })
				return
			}
			if !errors.Is(err, acp.ErrUnknownConnection) {
				res.err = err
				o.report(func(ctx context.Context) { o.opened(ctx, s, res) })
				return
			}
			o.report(func(context.Context) { s.connID = newID })
		}
		res.restored = hadAgent
		// A server that does not answer gets no initialize: the stream
		// records attempts that reached the agent, not retries into the void.
		if err := client.Health(ctx); err != nil {
			res.err = fmt.Errorf("sandbox not healthy: %w", err)
			o.report(func(ctx context.Context) { o.opened(ctx, s, res) })
			return
		}
		conn, err := client.Dial(ctx, acp.ConnConfig{
			ServerID: newID, Agent: agent, FirstID: firstID,
			OnMessage: o.onMessage(sid, newID, closed), OnSend: o.onSend(sid, newID),
		})
		if err == nil {
			_, err = conn.Call(ctx, acp.MethodInitialize, acp.InitializeParams{ProtocolVersion: acp.ProtocolVersion})
		}
		var result json.RawMessage
		init := acp.NewSessionParams{Cwd: cwd}
		if err == nil {
			result, err = conn.Call(ctx, acp.MethodSessionNew, init)
		}
		if err == nil {
			var nr acp.NewSessionResult
			if err = json.Unmarshal(result, &nr); err == nil && nr.SessionID == "" {
				err = errors.New("session/new returned no sessionId")
			}
			res.agentSID = nr.SessionID
		}
		if err != nil && conn != nil {
			conn.Close()
			dctx, dcancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = client.Delete(dctx, newID)
			dcancel()
			conn = nil
		}
		res.conn, res.connID, res.err = conn, newID, err
		res.init, _ = json.Marshal(init)
		o.report(func(ctx context.Context) { o.opened(ctx, s, res) })
	})
}

type openResult struct {
	conn     *acp.Conn
	connID   string
	agentSID string // set when a new agent session was made
	init     json.RawMessage
	restored bool
	// stateTurn is the turn the stream's state held when a connection was
	// re-attached (nil otherwise).
	stateTurn *string
	err       error
}

// opened takes the result of open on the owner's goroutine.
func (o *owner) opened(ctx context.Context, s *session, r openResult) {
	s.opening = false
	if r.err != nil {
		s.failures++
		s.retryAt = time.Now().Add(min(time.Duration(s.failures)*time.Second, 10*time.Second))
		o.logger.Warn("opening session failed", slog.String("sid", s.id), slog.Any("err", r.err))
		if s.turn != nil && s.turn.Conn != "" && s.turn.Conn != s.connID {
			o.endTurn(ctx, s, "error", "the agent connection was lost")
		}
		return
	}
	s.failures = 0
	if s.rec.DestroyedAt != nil || o.deleted {
		o.dropConn(s, r.conn, r.connID, true)
		return
	}
	s.conn, s.connID = r.conn, r.connID
	if t := s.turn; t != nil && r.stateTurn != nil && !sameTurn(*r.stateTurn, t.Req) {
		// The turn's end is in the stream, but the answer to that append
		// was lost (the connection was dropped for it, and is resumed
		// after the agent's response): the turn is over.
		if t.cancel != nil {
			t.cancel()
		}
		s.turn = nil
		o.ack(ctx, t.Inbox)
	}
	o.spawn(func() {
		select {
		case <-r.conn.Done():
			err := r.conn.Err()
			o.report(func(ctx context.Context) { o.connDone(ctx, s, r.connID, err) })
		case <-o.stopping:
		}
	})
	if r.agentSID != "" {
		s.agentSID = r.agentSID
		if err := o.m.store.RecordAgentSession(ctx, o.ws, s.id, o.epoch, r.agentSID, r.connID, string(r.init)); o.stale(err) {
			return
		}
		s.rec.AgentSessionID, s.rec.LastConnectionID = r.agentSID, r.connID
		recs := []model.Record{}
		prevTurn := s.turn
		if r.restored {
			s.restore = true
			recs = append(recs, statusRecord(StatusSessionRestored, map[string]any{"connectionId": r.connID, "agentSessionId": r.agentSID}))
		}
		if prevTurn != nil && prevTurn.Conn != r.connID {
			// The turn's connection is gone with its agent: it ends here.
			recs = append(recs, statusRecord(StatusTurnEnded, map[string]any{"stopReason": "error", "requestId": prevTurn.Req, "promptId": prevTurn.Inbox, "reason": "the agent connection was lost"}))
			s.turn = nil
			o.ack(ctx, prevTurn.Inbox)
		}
		state := map[string]string{"conn": r.connID}
		if s.srcConn != r.connID {
			// No message of the new connection is stored yet: the stored
			// resume position is the old connection's and must not be used
			// to re-attach to this one.
			state["src"] = ""
		}
		if prevTurn != nil && s.turn == nil {
			state["turn"] = ""
		}
		if _, err := o.log().AppendState(ctx, o.ws, s.id, o.epoch, state, recs...); err != nil {
			if o.stale(err) {
				return
			}
			o.logger.Warn("recording the connection failed", slog.Any("err", err))
		}
		s.state["conn"] = r.connID
	}
	o.dispatch(ctx, s)
}

// connDone handles the end of a session's ACP connection.
func (o *owner) connDone(ctx context.Context, s *session, connID string, err error) {
	if s.connID != connID || s.conn == nil {
		return
	}
	if errors.Is(err, acp.ErrClosed) {
		return
	}
	o.logger.Warn("ACP connection ended", slog.String("sid", s.id), slog.String("conn", connID), slog.Any("err", err))
	s.conn = nil
	close(s.closed)
	// Open again (a restore when the server lost it); a turn in flight
	// ends then, since its agent is gone.
	s.restore = true
	if !o.unhealthy {
		o.open(ctx, s)
	}
}

// onMessage is a connection's OnMessage: every message goes to the owner's
// goroutine, which persists it.
func (o *owner) onMessage(sid, connID string, closed <-chan struct{}) func(acp.Event, acp.Envelope) error {
	return func(ev acp.Event, env acp.Envelope) error {
		select {
		case o.msgs <- acpMsg{sid: sid, connID: connID, closed: closed, ev: ev, env: env}:
			return nil
		case <-closed:
			return acp.ErrClosed
		case <-o.stopping:
			return acp.ErrClosed
		}
	}
}

// onSend persists what the owner sends to the agent (initialize,
// session/new, replies, cancels) before it is sent. Prompts are persisted
// by dispatch, together with their chat.user entry, and posted directly.
func (o *owner) onSend(sid, connID string) func(context.Context, []byte) error {
	return func(ctx context.Context, msg []byte) error {
		_, err := o.log().Append(ctx, o.ws, sid, o.epoch, envelopeRecord(connID, "client", msg, ""))
		if o.stale(err) {
			return ErrNotOwner
		}
		return err
	}
}

// ingest persists ACP messages: the one given and whatever else is waiting,
// one append per session, each with its SSE id so that the next owner
// resumes right after it.
func (o *owner) ingest(ctx context.Context, first acpMsg) {
	batch := []acpMsg{first}
	for len(batch) < 256 {
		select {
		case m := <-o.msgs:
			batch = append(batch, m)
			continue
		default:
		}
		break
	}
	order := []string{}
	per := map[string][]acpMsg{}
	for _, m := range batch {
		if _, ok := per[m.sid]; !ok {
			order = append(order, m.sid)
		}
		per[m.sid] = append(per[m.sid], m)
	}
	var work []*ingested
	for _, sid := range order {
		if w := o.prepareIngest(sid, per[sid]); w != nil {
			work = append(work, w)
		}
	}
	o.persistIngested(ctx, work)
}

// ingested is what one session's messages of a batch make: the records and
// state to append, and what to do once they are appended.
type ingested struct {
	s          *session
	recs       []model.Record
	state      map[string]string
	ended      *turn
	stopReason string
	requests   []acp.Envelope
	persisted  bool // every record of it landed
}

func (o *owner) prepareIngest(sid string, msgs []acpMsg) *ingested {
	s := o.sessions[sid]
	if s == nil {
		return nil
	}
	w := &ingested{s: s, state: map[string]string{}}
	for _, m := range msgs {
		if m.connID != s.connID || m.closed != s.closed || isClosed(m.closed) {
			// A connection this owner dropped: another one, or this one
			// before a re-attach, which resumes after the last message
			// persisted and must not find later ones already appended.
			continue
		}
		s.lastMsg = time.Now()
		o.lastBusy = s.lastMsg
		w.recs = append(w.recs, envelopeRecord(m.connID, "agent", m.ev.Data, m.ev.ID))
		w.state["conn"] = m.connID
		switch m.env.Kind() {
		case acp.KindResponse:
			if t := s.turn; t != nil && w.ended == nil && string(m.env.ID) == fmt.Sprint(t.Req) {
				w.ended = t
				w.stopReason = "error"
				if m.env.Error == nil {
					var pr acp.PromptResult
					_ = json.Unmarshal(m.env.Result, &pr)
					w.stopReason = pr.StopReason
				}
				detail := map[string]any{"stopReason": w.stopReason, "requestId": t.Req, "promptId": t.Inbox}
				if m.env.Error != nil {
					detail["error"] = m.env.Error.Message
				}
				w.recs = append(w.recs, statusRecord(StatusTurnEnded, detail))
				w.state["turn"] = ""
			}
		case acp.KindRequest:
			w.requests = append(w.requests, m.env)
		case acp.KindNotification:
			if m.env.Method == acp.MethodSessionUpdate && s.turn != nil {
				s.turn.written = true // the agent is working: it has the prompt
			}
		}
	}
	if len(w.recs) == 0 {
		return nil
	}
	return w
}

// Limits of one ingest append: the append script's.
const (
	ingestRecords = 512
	ingestParts   = 64
)

// persistIngested appends the sessions' records, several sessions per
// script call (one round trip for a busy room), each with its ACP event
// ids and state, then answers the agents' requests and ends the turns that
// ended, for every session whose records all landed.
func (o *owner) persistIngested(ctx context.Context, work []*ingested) {
	var parts []model.Part
	var pending []*ingested // sessions whose last part is in parts
	n := 0
	failed := false
	flush := func() {
		if len(parts) == 0 || failed {
			return
		}
		if _, err := o.log().AppendParts(ctx, o.ws, o.epoch, parts); err != nil {
			failed = true
			if o.stale(err) {
				return
			}
			o.logger.Warn("persisting agent messages failed; re-attaching", slog.Any("err", err))
			return
		}
		for _, w := range pending {
			w.persisted = true
			w.s.srcConn = w.s.connID
		}
		parts, pending, n = parts[:0], pending[:0], 0
	}
	for _, w := range work {
		recs := w.recs
		for len(recs) > 0 && !failed {
			k := min(len(recs), ingestRecords-n)
			st := w.state
			if k < len(recs) {
				st = map[string]string{"conn": w.s.connID} // the rest follows
			}
			parts = append(parts, model.Part{Session: w.s.id, State: st, Records: recs[:k]})
			n += k
			recs = recs[k:]
			if len(recs) == 0 {
				pending = append(pending, w)
			}
			if n == ingestRecords || len(parts) == ingestParts {
				flush()
			}
		}
	}
	flush()
	for _, w := range work {
		if !w.persisted {
			if failed && !o.isLost() {
				// Redis is away: what of this session was not persisted is
				// read again: its connection is dropped and opened again
				// from the last persisted event.
				o.dropConn(w.s, w.s.conn, w.s.connID, false)
				w.s.retryAt = time.Now().Add(500 * time.Millisecond)
			}
			continue
		}
		for _, r := range w.requests {
			o.answerAgent(ctx, w.s, r)
		}
		if w.ended != nil {
			o.m.obs.TurnEnded(w.stopReason)
			if w.ended.cancel != nil {
				w.ended.cancel()
			}
			w.s.turn = nil
			o.ack(ctx, w.ended.Inbox)
			o.dispatch(ctx, w.s)
		}
	}
}

// answerAgent replies to a request of the agent. Tandem has no one to ask
// for permissions or files: permission requests are answered "cancelled"
// and anything else "method not found", so that the agent never waits.
func (o *owner) answerAgent(ctx context.Context, s *session, env acp.Envelope) {
	conn := s.conn
	if conn == nil {
		return
	}
	var result any
	var rpcErr *acp.RPCError
	if env.Method == "session/request_permission" {
		result = map[string]any{"outcome": map[string]any{"outcome": "cancelled"}}
	} else {
		rpcErr = &acp.RPCError{Code: -32601, Message: "method not supported by Tandem: " + env.Method}
	}
	id := env.ID
	o.spawn(func() {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_ = conn.Reply(ctx, id, result, rpcErr)
	})
}

// dispatch sends the session's next queued prompt when no turn runs.
func (o *owner) dispatch(ctx context.Context, s *session) {
	if s.turn != nil || len(s.queue) == 0 || s.rec.DestroyedAt != nil {
		return
	}
	if s.conn == nil {
		if !s.opening && time.Now().After(s.retryAt) && !o.unhealthy {
			o.open(ctx, s)
		}
		return
	}
	e := s.queue[0]
	blocks := []acp.ContentBlock{}
	if s.restore {
		if h := o.history(ctx, s.id); h != "" {
			blocks = append(blocks, acp.TextBlock(h))
		}
	}
	blocks = append(blocks, acp.TextBlock(e.Text))
	if s.unsure == e.ID {
		// The last try's append failed: it may have landed with its answer
		// lost, and then the prompt is dispatched but not yet sent.
		st, err := o.log().State(ctx, o.ws, s.id)
		if err != nil {
			return // tried again on the next inbox poll
		}
		s.unsure = ""
		// The dispatch's append writes the turn: a turn of this prompt in
		// the state says it landed (nothing else ends it, as it was not
		// sent).
		var t turn
		if json.Unmarshal([]byte(st["turn"]), &t) == nil && t.Inbox == e.ID {
			t.text, t.since = e.Text, time.Now()
			s.queue = s.queue[1:]
			s.restore = false
			s.state["last_inbox"] = st["last_inbox"]
			s.turn = &t
			o.lastBusy = time.Now()
			o.send(ctx, s, &t, o.promptEnvelope(s, t.Req, blocks))
			return
		}
	}
	o.reqSeq++
	t := &turn{Req: o.reqSeq, Inbox: e.ID, Started: time.Now().UnixMilli(), Conn: s.connID, text: e.Text, since: time.Now()}
	env := o.promptEnvelope(s, t.Req, blocks)
	user, _ := json.Marshal(map[string]any{"userId": e.User, "text": e.Text, "promptId": e.ID})
	tj, _ := json.Marshal(t)
	recs := []model.Record{
		{Type: TypeChatUser, Body: user},
		statusRecord(StatusTurnStarted, map[string]any{"promptId": e.ID, "requestId": t.Req, "userId": e.User}),
		envelopeRecord(s.connID, "client", env, ""),
	}
	// last_inbox is the newest prompt dispatched: it never moves back,
	// also when a prompt older than it is dispatched late (one an earlier
	// owner never received), so that every prompt after it is known to be
	// new.
	last := e.ID
	if cur := s.state["last_inbox"]; cur != "" && idAfter(cur, e.ID) {
		last = cur
	}
	state := map[string]string{"turn": string(tj), "last_inbox": last, "conn": s.connID}
	if _, err := o.log().AppendState(ctx, o.ws, s.id, o.epoch, state, recs...); err != nil {
		if !o.stale(err) {
			s.unsure = e.ID
			o.logger.Warn("dispatch failed; will retry", slog.String("sid", s.id), slog.Any("err", err))
		}
		return
	}
	s.queue = s.queue[1:]
	s.restore = false
	s.state["last_inbox"] = last
	s.turn = t
	o.lastBusy = time.Now()
	o.send(ctx, s, t, env)
}

// isClosed reports whether ch is closed.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// sameTurn reports whether the turn state js (a stream state's "turn")
// is the turn of request req.
func sameTurn(js string, req int64) bool {
	var t turn
	return js != "" && json.Unmarshal([]byte(js), &t) == nil && t.Req == req
}

// send posts a dispatched prompt, unless the owner lost the workspace.
func (o *owner) send(ctx context.Context, s *session, t *turn, env []byte) {
	// A last check right before the request goes out: an owner that was
	// paused between the append and here must not send.
	ep, err := o.log().CurrentEpoch(ctx, o.ws)
	if err != nil {
		// Not known now (Redis is away): the next tick tries again. The
		// prompt was not sent, so it is never sent twice.
		t.unsent = env
		return
	}
	if ep != o.epoch {
		o.loseOwnership(ErrNotOwner)
		return
	}
	t.unsent = nil
	o.post(ctx, s, t, env)
}

func (o *owner) promptEnvelope(s *session, req int64, blocks []acp.ContentBlock) []byte {
	env, _ := acp.NewRequest(req, acp.MethodSessionPrompt, acp.PromptParams{SessionID: s.agentSID, Prompt: blocks})
	return env
}

// post sends a prompt on a helper goroutine. The server answers the POST
// only when the turn ends (or never), so the response is taken from the
// stream; the POST is cancelled when the turn ends. Once the request is
// written, its inbox entry is acknowledged: it reached the sandbox.
func (o *owner) post(ctx context.Context, s *session, t *turn, env []byte) {
	client, connID := o.sandbox(), s.connID
	ctx, cancel := context.WithCancel(ctx)
	t.cancel = cancel
	inbox := t.Inbox
	o.spawn(func() {
		defer cancel()
		written := false
		tctx := httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
			WroteRequest: func(i httptrace.WroteRequestInfo) {
				if i.Err == nil && !written {
					written = true
					o.report(func(ctx context.Context) {
						if s.turn == t {
							t.written = true
						}
						o.ack(ctx, inbox)
					})
				}
			},
		})
		for attempt := 0; ; attempt++ {
			_, _, err := client.Post(tctx, connID, "", env)
			if err == nil || ctx.Err() != nil || written {
				return
			}
			if attempt == 3 {
				o.report(func(ctx context.Context) {
					if s.turn == t {
						o.logger.Warn("prompt could not be sent", slog.String("sid", s.id), slog.Any("err", err))
						o.endTurn(ctx, s, "error", "the prompt could not be sent to the agent")
					}
				})
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Duration(attempt+1) * 200 * time.Millisecond):
			}
		}
	})
}

// endTurn ends the running turn without an answer from the agent.
func (o *owner) endTurn(ctx context.Context, s *session, stopReason, reason string) {
	t := s.turn
	if t == nil {
		return
	}
	if t.cancel != nil {
		t.cancel()
	}
	_, err := o.log().AppendState(ctx, o.ws, s.id, o.epoch, map[string]string{"turn": ""},
		statusRecord(StatusTurnEnded, map[string]any{"stopReason": stopReason, "requestId": t.Req, "promptId": t.Inbox, "reason": reason}))
	if o.stale(err) {
		return
	}
	o.m.obs.TurnEnded(stopReason)
	s.turn = nil
	o.ack(ctx, t.Inbox)
	o.dispatch(ctx, s)
}

// sendCancel sends session/cancel for the running turn.
func (o *owner) sendCancel(ctx context.Context, s *session) {
	conn, agentSID := s.conn, s.agentSID
	o.spawn(func() {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := conn.Notify(ctx, acp.MethodSessionCancel, acp.CancelParams{SessionID: agentSID}); err != nil {
			o.logger.Warn("cancel failed", slog.String("sid", s.id), slog.Any("err", err))
		}
	})
}

// dropConn closes a connection on a helper goroutine; with remove, it is
// also deleted on the server (bounded to 2 s: the server's DELETE can
// hang).
func (o *owner) dropConn(s *session, conn *acp.Conn, connID string, remove bool) {
	if s.conn == conn && conn != nil {
		s.conn = nil
		close(s.closed)
	}
	client := o.sandbox()
	o.spawn(func() {
		if conn != nil {
			conn.Close()
		}
		if remove && client != nil && connID != "" {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = client.Delete(ctx, connID)
		}
	})
}

// destroySession cancels the session's turn, closes its connection and
// records the end; false means the end could not be recorded now (Redis
// did not answer) and it must be tried again.
func (o *owner) destroySession(ctx context.Context, s *session) bool {
	if s.turn != nil && s.conn != nil {
		o.sendCancel(ctx, s)
	}
	recs := []model.Record{}
	if s.turn != nil {
		if s.turn.cancel != nil {
			s.turn.cancel()
		}
		recs = append(recs, statusRecord(StatusTurnEnded, map[string]any{"stopReason": "cancelled", "requestId": s.turn.Req, "promptId": s.turn.Inbox, "reason": "session destroyed"}))
		o.ack(ctx, s.turn.Inbox)
		s.turn = nil
	}
	for _, e := range s.queue {
		o.ack(ctx, e.ID)
	}
	s.queue = nil
	recs = append(recs, statusRecord(StatusSessionDestroyed, nil))
	if _, err := o.log().AppendState(ctx, o.ws, s.id, o.epoch, map[string]string{"turn": "", "conn": ""}, recs...); err != nil {
		return o.stale(err) // a stale owner is done: the next one destroys it
	}
	now := time.Now().UnixMilli()
	if s.rec.DestroyedAt == nil {
		s.rec.DestroyedAt = &now
	}
	o.dropConn(s, s.conn, s.connID, true)
	return true
}

// destroyWorkspace destroys every session of the workspace; false means
// Redis did not answer and it must be tried again.
func (o *owner) destroyWorkspace(ctx context.Context) bool {
	sids, err := o.m.store.SessionIDs(ctx, o.ws)
	if err != nil {
		return false
	}
	for _, sid := range sids {
		s, err := o.loadSession(ctx, sid)
		if errors.Is(err, ErrSessionNotFound) {
			continue
		}
		if err != nil {
			return false
		}
		if s.conn != nil || s.turn != nil || s.state["conn"] != "" {
			if !o.destroySession(ctx, s) {
				return false
			}
		}
	}
	o.deleted = true
	return true
}

// closeSessions ends every connection as the owner stops. Handing over
// (node shutdown) or losing the workspace keeps the connections on the
// server for the next owner to re-attach to; going idle deletes them (the
// next owner restores the sessions from history).
func (o *owner) closeSessions(ctx context.Context, mode stopMode) {
	for _, s := range o.sessions {
		if s.turn != nil && s.turn.cancel != nil {
			s.turn.cancel()
		}
		if s.conn == nil && !(mode == stopIdle && s.state["conn"] != "") {
			continue
		}
		if mode == stopIdle {
			if _, err := o.log().AppendState(ctx, o.ws, s.id, o.epoch, map[string]string{"conn": ""}); err != nil {
				o.logger.Warn("clearing the connection failed", slog.Any("err", err))
			}
		}
		o.dropConn(s, s.conn, s.connID, mode == stopIdle)
	}
}

// history is the text block a restored session's next prompt starts with:
// the conversation of the last HistoryEvents events, at most HistoryChars
// characters.
func (o *owner) history(ctx context.Context, sid string) string {
	evs, _, err := o.log().Last(ctx, o.ws, sid, 4*o.m.cfg.HistoryEvents)
	if err != nil || len(evs) == 0 {
		return ""
	}
	var lines []string
	var agent strings.Builder
	flush := func() {
		if agent.Len() > 0 {
			lines = append(lines, "assistant: "+agent.String())
			agent.Reset()
		}
	}
	n := 0
	for i := len(evs) - 1; i >= 0 && n < o.m.cfg.HistoryEvents; i-- {
		switch evs[i].Type {
		case TypeChatUser, TypeSessionEvent:
			n++
		}
	}
	for _, ev := range evs[len(evs)-n:] {
		switch ev.Type {
		case TypeChatUser:
			flush()
			var b struct{ UserID, Text string }
			_ = json.Unmarshal(ev.Body, &b)
			lines = append(lines, b.UserID+": "+b.Text)
		case TypeSessionEvent:
			if t := chunkText(ev.Body); t != "" {
				agent.WriteString(t)
			}
		}
	}
	flush()
	if len(lines) == 0 {
		return ""
	}
	text := strings.Join(lines, "\n")
	if len(text) > o.m.cfg.HistoryChars {
		text = text[len(text)-o.m.cfg.HistoryChars:]
	}
	return "Conversation so far (restored after the agent connection was lost):\n" + text
}

// chunkText returns the text of an agent_message_chunk session.event.
func chunkText(body json.RawMessage) string {
	var ev struct {
		Sender  string
		Payload struct {
			Method string
			Params struct {
				Update struct {
					SessionUpdate string
					Content       struct{ Type, Text string }
				}
			}
		}
	}
	if json.Unmarshal(body, &ev) != nil || ev.Sender != "agent" || ev.Payload.Method != acp.MethodSessionUpdate {
		return ""
	}
	if ev.Payload.Params.Update.SessionUpdate != "agent_message_chunk" || ev.Payload.Params.Update.Content.Type != "text" {
		return ""
	}
	return ev.Payload.Params.Update.Content.Text
}
