package workspace

// Connecting a session to its agent: opening (or re-attaching to) its ACP
// connection on the sandbox, and what happens when a connection ends.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/tandem-dev/tandem/acp"
	"github.com/tandem-dev/tandem/eventlog/model"
)

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
	prev := s.state.Conn
	if prev == "" {
		prev = s.rec.LastConnectionID
	}
	src := s.state.Src
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
	newParams := o.newSessionParams(s)
	var hs *handshake // a retry's handshake is appended only when it succeeds
	if s.failures > 0 {
		hs = &handshake{on: true}
	}
	firstID := requestIDBase(o.epoch) + 1
	o.spawn(func() {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		res := openResult{closed: closed}
		if prev != "" {
			// Resume after the last message the stream holds: its state is
			// written with every append, while what this owner loaded
			// when it took over is behind by everything it ingested since,
			// and an append whose answer was lost may have landed.
			st, err := o.readState(ctx, sid)
			if err != nil {
				res.err = err
				o.report(func(ctx context.Context) { o.opened(ctx, s, res) })
				return
			}
			if st.Conn == prev {
				src = st.Src
			}
			conn, err := client.Dial(ctx, acp.ConnConfig{
				ServerID: prev, LastEventID: src, FirstID: firstID,
				OnMessage: o.onMessage(sid, prev, closed), OnSend: o.onSend(sid, prev),
			})
			if err == nil {
				res.conn, res.connID, res.reattached, res.stateTurn = conn, prev, true, st.Turn
				o.report(func(ctx context.Context) { o.opened(ctx, s, res) })
				return
			}
			if !errors.Is(err, acp.ErrUnknownConnection) {
				res.err = err
				o.report(func(ctx context.Context) { o.opened(ctx, s, res) })
				return
			}
			// The new connection's messages are taken only once the
			// owner knows its id: they are read on other goroutines and
			// may reach the owner before this report, which would drop
			// them as another connection's (the agent's answer to
			// initialize, lost: found as a flake of TestFakeRestore).
			known := make(chan struct{})
			o.report(func(context.Context) { s.connID = newID; close(known) })
			select {
			case <-known:
			case <-o.stopping:
				return
			}
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
			OnMessage: hs.wrapMsg(o.onMessage(sid, newID, closed), newID), OnSend: hs.wrapSend(o.onSend(sid, newID), newID),
		})
		var initResult json.RawMessage
		if err == nil {
			initResult, err = conn.Call(ctx, acp.MethodInitialize, acp.InitializeParams{ProtocolVersion: acp.ProtocolVersion})
		}
		if err == nil {
			res.authMethods, err = autoAuthenticate(ctx, conn, initResult)
		}
		var result json.RawMessage
		init := newParams
		if err == nil {
			result, err = conn.Call(ctx, acp.MethodSessionNew, init)
		}
		if err == nil {
			var nr acp.NewSessionResult
			if err = json.Unmarshal(result, &nr); err == nil && nr.SessionID == "" {
				err = errors.New("session/new returned no sessionId")
			}
			res.agentSID, res.newResult = nr.SessionID, result
		}
		if err == nil {
			err = hs.flush(ctx, o, sid, newID)
			res.flushed = hs != nil && err == nil
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
	// closed is the session's closed channel of this open: closed before
	// the result is taken when the connection was dropped meanwhile.
	closed   <-chan struct{}
	conn     *acp.Conn
	connID   string
	agentSID string // set when a new agent session was made
	init     json.RawMessage
	restored bool
	// newResult is session/new's result (modes, models, configOptions).
	newResult json.RawMessage
	// authMethods are those initialize advertised; flushed says a retry's
	// handshake was appended (agent_failure.go).
	authMethods []authMethod
	flushed     bool
	// reattached says conn is the connection the state named, resumed;
	// stateTurn is the turn the stream's state held then (nil: none).
	reattached bool
	stateTurn  *turnRecord
	err        error
}

// opened takes the result of open on the owner's goroutine.
func (o *owner) opened(ctx context.Context, s *session, r openResult) {
	s.opening = false
	if r.err != nil {
		s.failures++
		s.retryAt = time.Now().Add(min(time.Duration(s.failures)*time.Second, 10*time.Second))
		o.logger.Warn("opening session failed", slog.String("sid", s.id), slog.Any("err", r.err))
		o.agentFailed(ctx, s, r)
		if s.turn != nil && s.turn.Conn != "" && s.turn.Conn != s.connID {
			o.endTurn(ctx, s, "error", "the agent connection was lost")
		}
		return
	}
	s.failures = 0
	if isClosed(r.closed) {
		// Dropped while it was being opened (an append of its messages
		// failed): what was not persisted is read again by a new open,
		// from the last persisted event. A connection never recorded is
		// removed from the server.
		o.dropConn(s, r.conn, r.connID, r.connID != s.state.Conn)
		s.retryAt = time.Now().Add(500 * time.Millisecond)
		return
	}
	if s.rec.DestroyedAt != nil || o.deleted {
		o.dropConn(s, r.conn, r.connID, true)
		return
	}
	s.conn, s.connID = r.conn, r.connID
	if s.settling {
		s.lastMsg = time.Now() // the replay comes from now
	}
	if r.flushed {
		s.srcConn = r.connID // the handshake's messages are stored
	}
	if t := s.turn; t != nil && r.reattached && !sameTurn(r.stateTurn, t.Req) {
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
		// No message of the new connection is stored yet when srcConn is
		// another: the stored resume position is the old connection's and
		// must not be used to re-attach to this one.
		state := stateWrite{conn: ptr(r.connID), clearSrc: s.srcConn != r.connID, clearTurn: prevTurn != nil && s.turn == nil}
		if _, err := o.appendTo(ctx, s, state.fields(), "", recs...); err != nil {
			if o.stale(err) {
				return
			}
			o.logger.Warn("recording the connection failed", slog.Any("err", err))
		}
		s.state.Conn = r.connID
		o.sessionOpened(ctx, s, r.newResult, r.restored)
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

// isClosed reports whether ch is closed.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
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
