package workspace

// Turns: dispatching a session's next prompt (its chat.user, turn start
// and request appended together, then sent), and ending it.

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tandem-dev/tandem/acp"
	"github.com/tandem-dev/tandem/eventlog/model"
)

// dispatch sends the session's next queued prompt when no turn runs.
func (o *owner) dispatch(ctx context.Context, s *session) {
	if s.turn != nil || len(s.queue) == 0 || s.rec.DestroyedAt != nil || s.configuring > 0 {
		return
	}
	if s.conn == nil {
		if !s.opening && time.Now().After(s.retryAt) && !o.unhealthy {
			o.open(ctx, s)
		}
		return
	}
	if s.settling {
		// The agent's messages the stream lacks are being read from the
		// re-attached connection: they belong before the next prompt.
		// tick tries again.
		if time.Since(s.lastMsg) < rewindSettle {
			return
		}
		s.settling = false
	}
	e := s.queue[0]
	if o.dispatchedIDs.has(e.ID) {
		// This node dispatched it under an earlier epoch and Redis lost
		// its record (carryOut queued it, to be recorded after the turn
		// in flight): recorded again, ended, never sent again.
		if o.endUnknown(ctx, s, e, reasonRecordLost) {
			o.logger.Warn("a prompt this node dispatched lost its record with Redis's last writes; recorded again, ended delivery_unknown", slog.String("sid", s.id), slog.String("prompt", e.ID))
			s.queue = s.queue[1:]
			o.ack(ctx, e.ID)
			o.dispatch(ctx, s)
		}
		return
	}
	if o.sentElsewhere.has(e.ID) && !o.dispatchedIDs.has(e.ID) {
		// An earlier owner was sending it when Redis lost the record of
		// its dispatch: it may have reached the agent.
		o.deliveryUnknown(ctx, s, e)
		return
	}
	if s.diverged && !o.inherited && acceptedBefore(e.ID, o.started) && !o.dispatchedIDs.has(e.ID) {
		o.deliveryUnknown(ctx, s, e)
		return
	}
	blocks := []acp.ContentBlock{}
	if o.meta.SpeakerLabels == nil || *o.meta.SpeakerLabels {
		// The agent knows who speaks: a first block naming the sender.
		blocks = append(blocks, acp.TextBlock(SpeakerLabel(e.User)))
	}
	if s.restore {
		if h := o.history(ctx, s.id); h != "" {
			blocks = append(blocks, acp.TextBlock(h))
		}
	}
	blocks = append(blocks, acp.TextBlock(e.Text))
	if s.unsure == e.ID {
		// The last try's append failed: it may have landed with its answer
		// lost, and then the prompt is dispatched but not yet sent.
		st, err := o.readState(ctx, s.id)
		if err != nil {
			return // tried again on the next inbox poll
		}
		s.unsure = ""
		// The dispatch's append writes the turn: a turn of this prompt in
		// the state says it landed (nothing else ends it, as it was not
		// sent).
		if st.Turn == nil && (st.LastInbox == e.ID || o.dispatchedIDs.has(e.ID)) {
			// Dispatched, and its turn is over (ended by an earlier owner,
			// or lost with Redis's last writes): not sent again. When
			// Redis lost its record, the record is written again, ended.
			if st.LastInbox != e.ID {
				s.state.LastInbox = st.LastInbox
				if lost, err := o.recordLost(ctx, s, e); err != nil || (lost && !o.endUnknown(ctx, s, e, reasonRecordLost)) {
					return // tried again on the next inbox poll
				}
			}
			s.queue = s.queue[1:]
			o.ack(ctx, e.ID)
			o.dispatch(ctx, s)
			return
		}
		if st.Turn != nil && st.Turn.Inbox == e.ID {
			o.markDispatched(e.ID)
			t := &turn{turnRecord: *st.Turn, text: e.Text, since: time.Now()}
			s.queue = s.queue[1:]
			s.restore = false
			s.state.LastInbox = st.LastInbox
			s.turn = t
			o.lastBusy = time.Now()
			o.send(ctx, s, t, o.promptEnvelope(s, t.Req, blocks))
			return
		}
	}
	o.reqSeq++
	t := &turn{turnRecord: turnRecord{Req: o.reqSeq, Inbox: e.ID, Started: time.Now().UnixMilli(), Conn: s.connID}, text: e.Text, since: time.Now()}
	env := o.promptEnvelope(s, t.Req, blocks)
	user, _ := json.Marshal(map[string]any{"userId": e.User, "text": e.Text, "promptId": e.ID})
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
	if cur := s.state.LastInbox; cur != "" && idAfter(cur, e.ID) {
		last = cur
	}
	state := stateWrite{turn: &t.turnRecord, lastInbox: last, conn: ptr(s.connID)}
	if _, err := o.appendTo(ctx, s, state.fields(), e.ID, recs...); err != nil {
		if errors.Is(err, model.ErrWithdrawn) {
			// Its sender withdrew it (decided in Redis against this very
			// dispatch): it never reaches the agent.
			o.logger.Info("prompt withdrawn; skipped", slog.String("sid", s.id), slog.String("prompt", e.ID))
			s.queue = s.queue[1:]
			o.ack(ctx, e.ID)
			o.dispatch(ctx, s)
			return
		}
		if !o.stale(err) {
			// Its outcome is unknown (or, ErrDuplicate, it landed before
			// in a try whose answer was lost, executed late): the next
			// try reads the state first.
			s.unsure = e.ID
			o.logger.Warn("dispatch failed; will retry", slog.String("sid", s.id), slog.Any("err", err))
		}
		return
	}
	o.markDispatched(e.ID)
	s.queue = s.queue[1:]
	s.restore = false
	s.state.LastInbox = last
	s.turn = t
	o.lastBusy = time.Now()
	o.send(ctx, s, t, env)
}

// SpeakerLabel is the first text block of a prompt when the workspace's
// speakerLabels is on: "[user]", the user id without brackets or control
// characters.
func SpeakerLabel(user string) string {
	b := make([]rune, 0, len(user))
	for _, r := range user {
		if r == '[' || r == ']' || r < 0x20 || r == 0x7f {
			continue
		}
		b = append(b, r)
	}
	return "[" + string(b) + "]"
}

// deliveryUnknown ends prompt e, never sent by this owner, as
// delivery_unknown: Redis lost the record of prompts that reached the agent
// (s.diverged), and e, accepted before this owner started, may be one of
// them. Its chat.user and turn_ended are appended, so the room sees what
// happened and can send it again.
func (o *owner) deliveryUnknown(ctx context.Context, s *session, e inboxEntry) {
	if !o.endUnknown(ctx, s, e, reasonMaybeDelivered) {
		return
	}
	o.logger.Warn("prompt of unknown delivery after Redis lost writes; ended, not sent", slog.String("sid", s.id), slog.String("prompt", e.ID))
	s.queue = s.queue[1:]
	o.ack(ctx, e.ID)
	o.dispatch(ctx, s)
}

const (
	reasonMaybeDelivered = "Redis lost the record of prompts the agent had received; this one may have been among them, so it is not sent again: send it again if needed"
	reasonRecordLost     = "this prompt reached the agent, but Redis lost its record and the answer's end; it is not sent again: send it again if needed"
)

// endUnknown appends prompt e's chat.user and a turn_ended
// delivery_unknown with reason, and reports whether they are in the
// stream. It is the record of a prompt whose outcome this owner cannot
// give: one it may have been sent (deliveryUnknown), or one this node sent
// under an earlier epoch whose writes Redis lost (o.dispatchedIDs holds it,
// the stream has no chat.user of it), so that every accepted prompt has its
// chat.user and its end, and none is sent twice.
func (o *owner) endUnknown(ctx context.Context, s *session, e inboxEntry, reason string) bool {
	user, _ := json.Marshal(map[string]any{"userId": e.User, "text": e.Text, "promptId": e.ID})
	recs := []model.Record{
		{Type: TypeChatUser, Body: user},
		statusRecord(StatusTurnEnded, map[string]any{"stopReason": StopDeliveryUnknown, "promptId": e.ID, "reason": reason}),
	}
	last := e.ID
	if cur := s.state.LastInbox; cur != "" && idAfter(cur, e.ID) {
		last = cur
	}
	if _, err := o.appendTo(ctx, s, stateWrite{lastInbox: last}.fields(), e.ID, recs...); err != nil && !errors.Is(err, model.ErrDuplicate) {
		// ErrDuplicate: an earlier try landed with its answer lost.
		if !o.stale(err) {
			o.logger.Warn("ending a prompt of unknown delivery failed; will retry", slog.String("sid", s.id), slog.Any("err", err))
		}
		return false
	}
	o.dispatchedIDs.add(e.ID)
	s.state.LastInbox = last
	o.m.obs.TurnEnded(StopDeliveryUnknown)
	return true
}

// recorded reports whether the session stream holds prompt id's dispatch
// (its chat.user): the state names it as the last prompt dispatched, or
// its chat.user is found after it was accepted.
func (o *owner) recorded(ctx context.Context, s *session, id string) (bool, error) {
	last := s.state.LastInbox
	switch {
	case last == id:
		return true, nil
	case last == "" || idAfter(id, last):
		return false, nil
	}
	return o.findDispatch(ctx, s.id, id)
}

// acceptedBefore reports whether inbox entry id (its milliseconds are
// Redis's clock when it was accepted) was accepted before t.
func acceptedBefore(id string, t time.Time) bool {
	ms, _, _ := strings.Cut(id, "-")
	n, err := strconv.ParseInt(ms, 10, 64)
	return err == nil && n < t.UnixMilli()
}

// rewindSettle is how long a re-attached connection must stay quiet
// before its session's next prompt is dispatched.
const rewindSettle = 500 * time.Millisecond

// sameTurn reports whether the stream state's turn tr is the turn of
// request req.
func sameTurn(tr *turnRecord, req int64) bool { return tr != nil && tr.Req == req }

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

// post sends a prompt on a helper goroutine, its dispatch marker first
// (marker.go). The server answers the POST only when the turn ends (or
// never), so the response is taken from the stream; the POST is cancelled
// when the turn ends. Once the request is written, its inbox entry is
// acknowledged: it reached the sandbox.
func (o *owner) post(ctx context.Context, s *session, t *turn, env []byte) {
	client, connID := o.sandbox(), s.connID
	ctx, cancel := context.WithCancel(ctx)
	t.cancel = cancel
	inbox := t.Inbox
	marker := markerEnvelope(inbox, t.Req)
	o.spawn(func() {
		defer cancel()
		var written atomic.Bool
		onWritten := func() {
			written.Store(true)
			o.report(func(ctx context.Context) {
				if s.turn == t {
					t.delivery = deliveryWritten
				}
				o.ack(ctx, inbox)
			})
		}
		marked := false
		for attempt := 0; ; attempt++ {
			var err error
			if !marked {
				marked, err = sendMarker(ctx, client, connID, marker)
			}
			if marked {
				_, _, err = client.PostWritten(ctx, connID, env, onWritten)
				if err == nil || ctx.Err() != nil || written.Load() {
					return
				}
			}
			if ctx.Err() != nil {
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

// markerWait bounds the wait for the agent's answer to a dispatch marker:
// an agent that never answers delays its prompts by this much, no more.
const markerWait = 2 * time.Second

// sendMarker posts a dispatch marker and waits for the agent's answer (so
// that it is in the server's replay buffer before the prompt is sent), at
// most markerWait. It reports whether the marker was written to the
// server: only then may the prompt follow.
func sendMarker(ctx context.Context, client *acp.Client, connID string, marker []byte) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, markerWait)
	defer cancel()
	var written atomic.Bool
	_, _, err := client.PostWritten(ctx, connID, marker, func() { written.Store(true) })
	return err == nil || written.Load(), err
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
	if t.ending != nil {
		// An earlier try failed, maybe with its answer lost after it
		// landed: the stream state says whether the turn is still open.
		st, err := o.readState(ctx, s.id)
		if err != nil {
			return // tick tries again
		}
		if sameTurn(st.Turn, t.Req) {
			t.ending = nil
		}
	}
	if t.ending == nil {
		_, err := o.appendTo(ctx, s, stateWrite{clearTurn: true}.fields(), "",
			statusRecord(StatusTurnEnded, map[string]any{"stopReason": stopReason, "requestId": t.Req, "promptId": t.Inbox, "reason": reason}))
		if err != nil {
			if !o.stale(err) {
				// Redis did not answer: the turn stays until its end is
				// recorded (tick tries again), so the stream never keeps a
				// turn_started without its turn_ended.
				t.ending = &turnEnd{stopReason: stopReason, reason: reason}
				o.logger.Warn("ending the turn failed; will retry", slog.String("sid", s.id), slog.Any("err", err))
			}
			return
		}
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

func statusRecord(status string, detail map[string]any) model.Record {
	body := map[string]any{"status": status}
	if detail != nil {
		body["detail"] = detail
	}
	b, _ := json.Marshal(body)
	return model.Record{Type: TypeSessionStatus, Body: b}
}
