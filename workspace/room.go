package workspace

// The workspace stream, as the owner writes it: a summary of each session
// (turn running or idle, pending permission requests, mode, prompts
// queued) whenever it changed, prompt.dispatched when a prompt's turn
// starts, and session.destroyed. Every write goes through the fence like
// a session stream's (lua/append.lua with the reserved stream
// model.WorkspaceStream). Prompts accepted and withdrawn, and sessions
// created, are written where that happens, by any node (the enqueue and
// withdraw scripts).

import (
	"context"
	"encoding/json"
	"log/slog"

	"github.com/tandem-dev/tandem/eventlog/model"
)

// summary is what the room sees of a session in its list.
type summary struct {
	running   bool
	promptID  string // the running turn's prompt
	perms     int
	mode      string
	queued    int
	destroyed bool
}

func (o *owner) summaryOf(s *session) summary {
	sm := summary{perms: len(s.perms), mode: currentMode(s.rec.Modes), queued: len(s.queue), destroyed: s.rec.DestroyedAt != nil}
	if s.turn != nil {
		sm.running, sm.promptID = true, s.turn.Inbox
	}
	return sm
}

// maxSummaryBatch bounds the records of one summary append.
const maxSummaryBatch = 256

// roomSummaries appends the summaries of the sessions that changed since
// the last ones this owner wrote. A session first seen (at a takeover) is
// written only when it has something to show (a turn, a queue, a
// request). A failed append is tried again on the next call.
func (o *owner) roomSummaries(ctx context.Context) {
	var recs []model.Record
	var done []*session
	for _, s := range o.sessions {
		cur := o.summaryOf(s)
		if !s.summarized {
			s.summarized, s.summary = true, summary{destroyed: cur.destroyed, mode: cur.mode}
		}
		if cur == s.summary {
			continue
		}
		if cur.destroyed && !s.summary.destroyed {
			recs = append(recs, roomRecord(model.TypeSessionDestroyed, map[string]any{"sessionId": s.id, "destroyedAt": *s.rec.DestroyedAt}))
		}
		if cur.promptID != "" && cur.promptID != s.summary.promptID {
			recs = append(recs, roomRecord(model.TypePromptDispatched, map[string]any{"promptId": cur.promptID, "sessionId": s.id}))
		}
		recs = append(recs, roomRecord(model.TypeSessionSummary, map[string]any{
			"sessionId": s.id, "agent": s.rec.Agent, "running": cur.running, "promptId": cur.promptID,
			"pendingPermissions": cur.perms, "mode": cur.mode, "queued": cur.queued, "destroyed": cur.destroyed,
		}))
		done = append(done, s)
		s.summaryNext = cur
		if len(recs) >= maxSummaryBatch {
			break
		}
	}
	if len(recs) == 0 {
		return
	}
	if _, err := o.log().Append(ctx, o.ws, model.WorkspaceStream, o.epoch, recs...); err != nil {
		if !o.stale(err) {
			o.logger.Warn("workspace stream append failed; will retry", slog.Any("err", err))
		}
		return
	}
	for _, s := range done {
		s.summary = s.summaryNext
	}
}

func roomRecord(typ string, body map[string]any) model.Record {
	b, _ := json.Marshal(body)
	return model.Record{Type: typ, Body: b}
}
