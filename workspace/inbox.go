package workspace

// The inbox: reading, claiming and carrying out the commands waiting for
// the owner, in inbox order, each once (guarantee 3).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

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
	if err := o.m.store.AckInbox(ctx, o.ws, o.epoch, ids...); err != nil {
		if o.stale(err) {
			return // the next owner claims them and skips what was done
		}
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
				lost, err := o.recordLost(ctx, s, e)
				if err != nil {
					return o.stale(err)
				}
				if lost {
					// Its record is written once the turn in flight, if
					// any, is over (dispatch), not inside it.
					s.queue = append(s.queue, e)
					o.dispatch(ctx, s)
					return true
				}
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
			o.cancelPermissions(ctx, s, e.User)
			o.sendCancel(ctx, s)
		}
		o.ack(ctx, e.ID)
	case cmdOpen:
		if !o.openWith(ctx, s, e) {
			return false
		}
		if s.rec.DestroyedAt == nil && s.conn == nil && !s.opening {
			o.open(ctx, s)
		}
		o.ack(ctx, e.ID)
	case cmdPermission:
		return o.permissionAnswered(ctx, s, e)
	case cmdConfigure:
		return o.configure(ctx, s, e)
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

// recordLost reports whether prompt e, which this node dispatched
// (o.dispatchedIDs) and whose turn is not running here, lost its record
// with Redis's last writes (a lossy restart took its chat.user): then it
// is recorded again, ended delivery_unknown, never sent again (dispatch,
// endUnknown).
func (o *owner) recordLost(ctx context.Context, s *session, e inboxEntry) (bool, error) {
	if !o.dispatchedIDs.has(e.ID) {
		return false, nil // the stream's own evidence said it was dispatched
	}
	ok, err := o.recorded(ctx, s, e.ID)
	return !ok && err == nil, err
}

// dispatched reports whether prompt e was dispatched (its chat.user,
// turn start and request appended) by this owner or an earlier one. Only
// evidence counts: the stream state naming it as the last prompt
// dispatched, or its own chat.user in the stream. A later prompt's
// dispatch proves nothing: an owner that never received e (a read whose
// reply was lost) went on to later ones.
func (o *owner) dispatched(ctx context.Context, s *session, e inboxEntry) (bool, error) {
	last := s.state.LastInbox
	switch {
	case o.dispatchedIDs.has(e.ID):
		// This node dispatched it, under an earlier epoch whose writes
		// Redis lost (a lossy restart): the stream and its state may have
		// no trace of it (last_inbox rolled back too), but the agent had it.
		return true, nil
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

// readNew reads up to count inbox entries this owner has not received
// yet: first those delivered to its consumer in a reply it never got (a
// read whose reply was lost), then new ones (eventlog's ReadInbox). It
// fails with a stale-writer error when the owner's epoch is no longer the
// fence; an empty inbox is no entry and no error. The owner's high-water
// mark moves past what is returned.
func (o *owner) readNew(ctx context.Context, count int) ([]inboxEntry, error) {
	msgs, err := o.m.store.ReadInbox(ctx, o.ws, o.epoch, o.consumer, count, o.received)
	if err != nil {
		return nil, fmt.Errorf("read inbox %s: %w", o.ws, err)
	}
	o.receivedUpTo(msgs)
	return msgs, nil
}

// receivedUpTo moves the owner's high-water mark of received inbox
// entries past msgs.
func (o *owner) receivedUpTo(msgs []inboxEntry) {
	for _, m := range msgs {
		if idAfter(m.ID, o.received) {
			o.received = m.ID
		}
	}
}
