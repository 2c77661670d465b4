package workspace

// Ingest: every ACP message of every session is persisted, with its SSE
// id, before the owner acts on it (guarantee 4).

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
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
	state      stateWrite
	ended      *turn
	stopReason string
	requests   []acp.Envelope
	perms      []permAsked // permission requests among them (permission.go)
	persisted  bool        // every record of it landed
}

func (o *owner) prepareIngest(sid string, msgs []acpMsg) *ingested {
	s := o.sessions[sid]
	if s == nil {
		return nil
	}
	w := &ingested{s: s}
	for _, m := range msgs {
		if m.connID != s.connID || m.closed != s.closed || isClosed(m.closed) {
			// A connection this owner dropped: another one, or this one
			// before a re-attach, which resumes after the last message
			// persisted and must not find later ones already appended.
			continue
		}
		s.lastMsg = time.Now()
		o.lastBusy = s.lastMsg
		// The turn the stream knows is in flight at this message (one
		// ended earlier in this batch is not).
		known := s.turn
		if w.ended != nil {
			known = nil
		}
		w.recs = append(w.recs, envelopeRecord(m.connID, "agent", capPayload(m.ev.Data, o.maxEventBytes()), m.ev.ID))
		w.state.conn = ptr(m.connID)
		if inbox, ok := markedPrompt(m.env); ok {
			// A dispatch marker's answer: this owner's own (the turn's),
			// or one an earlier owner sent before a prompt the stream may
			// not know of (marker.go).
			if s.turn == nil || s.turn.Inbox != inbox {
				// Kept in the state with the answer too: an owner that
				// takes over after this append re-attaches past the
				// answer, and learns of it only there.
				o.sentElsewhere.add(inbox)
				s.state.Sent = withSent(s.state.Sent, inbox)
				w.state.sent = s.state.Sent
			}
			continue
		}
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
				w.state.clearTurn = true
			}
		case acp.KindRequest:
			if m.env.Method == MethodRequestPermission {
				req := parsePermissionRequest(m.connID, m.env, time.Now(), o.m.cfg.PermissionTimeout)
				w.perms = append(w.perms, permAsked{idx: len(w.recs), req: req})
				w.recs = append(w.recs, requestedRecord(req))
				if s.turn != nil {
					s.turn.delivery = deliveryWritten
				}
				continue
			}
			w.requests = append(w.requests, m.env)
		case acp.KindNotification:
			if m.env.Method == acp.MethodSessionUpdate && s.turn != nil {
				s.turn.delivery = deliveryWritten // the agent is working: it has the prompt
			}
		}
		if s.settling && !s.diverged && turnOutput(m.env) && !ofTurn(m.env, known) {
			o.logger.Warn("the agent answers a prompt the stream does not know: Redis lost its record", slog.String("sid", s.id))
			s.diverged = true
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
	failed = !o.recordPermissions(ctx, work)
	flush := func() {
		if len(parts) == 0 || failed {
			return
		}
		evs, err := o.log().AppendParts(ctx, o.ws, o.epoch, parts)
		if err != nil {
			failed = true
			o.rewoundBy(err)
			if o.stale(err) {
				return
			}
			o.logger.Warn("persisting agent messages failed; re-attaching", slog.Any("err", err))
			return
		}
		for i, p := range parts {
			if s := o.sessions[p.Session]; s != nil {
				o.acknowledged(s, evs[i])
			}
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
			st := w.state.fields()
			if k < len(recs) {
				st = stateWrite{conn: ptr(w.s.connID), sent: w.state.sent}.fields() // the rest follows
			}
			parts = append(parts, model.Part{Session: w.s.id, State: st, Records: recs[:k], Head: w.s.head})
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
				if w.s.conn != nil {
					o.dropConn(w.s, w.s.conn, w.s.connID, false)
				} else if w.s.opening && !isClosed(w.s.closed) {
					// The connection is being opened: its later messages
					// are refused from now on, and opened drops it.
					close(w.s.closed)
				}
				w.s.retryAt = time.Now().Add(500 * time.Millisecond)
			}
			continue
		}
		for _, r := range w.requests {
			o.answerAgent(ctx, w.s, r)
		}
		o.permissionsAsked(ctx, w)
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

// ofTurn reports whether env, the agent working on a prompt, can be the
// work of turn t (nil: none known): a notification while t runs, or t's
// own answer. A prompt's answer to another request id is not.
func ofTurn(env acp.Envelope, t *turn) bool {
	if t == nil {
		return false
	}
	if env.Kind() == acp.KindResponse {
		return string(env.ID) == fmt.Sprint(t.Req)
	}
	return true
}

// turnOutput reports whether env is the agent working on a prompt: a
// prompt's answer (a response with a stopReason) or a turn's output (a
// message chunk, a thought, a tool call or a plan), not the notices an
// agent sends on its own (commands, mode changes).
func turnOutput(env acp.Envelope) bool {
	switch env.Kind() {
	case acp.KindResponse:
		var pr acp.PromptResult
		return env.Error == nil && json.Unmarshal(env.Result, &pr) == nil && pr.StopReason != ""
	case acp.KindNotification:
		if env.Method != acp.MethodSessionUpdate {
			return false
		}
		var p struct {
			Update struct {
				SessionUpdate string `json:"sessionUpdate"`
			} `json:"update"`
		}
		if json.Unmarshal(env.Params, &p) != nil {
			return false
		}
		switch p.Update.SessionUpdate {
		case "agent_message_chunk", "agent_thought_chunk", "tool_call", "tool_call_update", "plan":
			return true
		}
	}
	return false
}

// answerAgent replies to a request of the agent other than a permission
// request (those are the room's to answer, permission.go): Tandem serves
// no files or terminals, so anything else is answered "method not
// found", and the agent never waits.
func (o *owner) answerAgent(ctx context.Context, s *session, env acp.Envelope) {
	conn := s.conn
	if conn == nil {
		return
	}
	var result any
	rpcErr := &acp.RPCError{Code: -32601, Message: "method not supported by Tandem: " + env.Method}
	id := env.ID
	o.spawn(func() {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_ = conn.Reply(ctx, id, result, rpcErr)
	})
}
