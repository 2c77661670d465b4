package workspace

// Destroying sessions and workspaces, and closing connections as the
// owner stops.

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/tandem-dev/tandem/eventlog/model"
)

// destroySession cancels the session's turn, closes its connection and
// records the end; false means the end could not be recorded now (Redis
// did not answer) and it must be tried again.
func (o *owner) destroySession(ctx context.Context, s *session) bool {
	if s.turn != nil && s.conn != nil {
		o.sendCancel(ctx, s)
	}
	recs := []model.Record{}
	if t := s.turn; t != nil {
		if t.cancel != nil {
			t.cancel()
		}
		recs = append(recs, statusRecord(StatusTurnEnded, map[string]any{"stopReason": "cancelled", "requestId": t.Req, "promptId": t.Inbox, "reason": "session destroyed"}))
	}
	recs = append(recs, statusRecord(StatusSessionDestroyed, nil))
	// The turn and the queue are forgotten only once the end is recorded:
	// a try that failed is made again whole, turn_ended included.
	if _, err := o.appendTo(ctx, s, stateWrite{conn: ptr(""), clearTurn: true}.fields(), "", recs...); err != nil {
		return o.stale(err) // a stale owner is done: the next one destroys it
	}
	if t := s.turn; t != nil {
		o.ack(ctx, t.Inbox)
		s.turn = nil
	}
	for _, e := range s.queue {
		o.ack(ctx, e.ID)
	}
	s.queue = nil
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
		if s.conn != nil || s.turn != nil || s.state.Conn != "" {
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
		if s.conn == nil && !(mode == stopIdle && s.state.Conn != "") {
			continue
		}
		del := mode == stopIdle
		if del {
			// The connection is deleted in the sandbox only once this
			// owner, still the writer, recorded that it is gone: a paused
			// ex-owner whose clear is refused (or not answered) must not
			// delete the connection its successor re-attached to.
			if _, err := o.appendTo(ctx, s, stateWrite{conn: ptr("")}.fields(), ""); err != nil {
				o.logger.Warn("clearing the connection failed; it is left to the next owner", slog.Any("err", err))
				del = false
			}
		}
		o.dropConn(s, s.conn, s.connID, del)
	}
}

// finishDelete removes a deleted workspace's settings (unless it was
// created again meanwhile) and its active mark.
func (o *owner) finishDelete(ctx context.Context) {
	if err := o.m.store.FinishDelete(ctx, o.ws, o.epoch); err != nil {
		o.logger.Warn("removing the deleted workspace failed", slog.Any("err", err))
	}
}
