package workspace

// Evidence of what was sent, kept apart from the stream.
//
// When Redis loses the record of a prompt's dispatch (a restart from an
// older snapshot, a failover to a replica without it), the next owner
// learns that the prompt was sent from the dispatch marker in the agent's
// replay (marker.go). A sandbox restarted meanwhile has no replay: then
// only the owner that sent it knows, and it may have lost the workspace
// to another node in the same fault. So every owner writes the prompts it
// dispatched lately to a set of its own ({ws:ID}:sent), again every
// second while they are recent, and once more when it stops, however it
// stops (even with the lock lost: they are facts, not an owner's state).
// A write after the loss puts them back; a new owner reads the set at
// takeover, and a prompt it names that the stream does not hold as
// dispatched ends delivery_unknown instead of being sent again.

import (
	"context"
	"log/slog"
	"time"
)

// sentRecent is how long an owner writes a dispatched prompt again.
const sentRecent = 2 * time.Minute

// sentWriteMax bounds the prompts of one write.
const sentWriteMax = 64

type sentPrompt struct {
	id string
	at int64 // ms
}

// markDispatched notes prompt id as dispatched by this owner: to the
// agent, or about to be.
func (o *owner) markDispatched(id string) {
	o.dispatchedIDs.add(id)
	o.recentSent = append(o.recentSent, sentPrompt{id: id, at: time.Now().UnixMilli()})
	if len(o.recentSent) > sentWriteMax {
		o.recentSent = o.recentSent[len(o.recentSent)-sentWriteMax:]
	}
}

// writeSent writes the prompts dispatched within sentRecent to the
// workspace's evidence.
func (o *owner) writeSent(ctx context.Context) {
	cut := time.Now().Add(-sentRecent).UnixMilli()
	i := 0
	for i < len(o.recentSent) && o.recentSent[i].at < cut {
		i++
	}
	o.recentSent = o.recentSent[i:]
	if len(o.recentSent) == 0 {
		return
	}
	ids := make([]string, len(o.recentSent))
	at := make([]int64, len(o.recentSent))
	for i, p := range o.recentSent {
		ids[i], at[i] = p.id, p.at
	}
	if err := o.m.store.RecordSent(ctx, o.ws, ids, at); err != nil {
		o.logger.Debug("recording the prompts sent failed; tried again", slog.Any("err", err))
	}
}

// readSent adds the workspace's evidence of prompts sent to sentElsewhere.
func (o *owner) readSent(ctx context.Context) error {
	ids, err := o.m.store.SentPrompts(ctx, o.ws)
	if err != nil {
		return err
	}
	for _, id := range ids {
		o.sentElsewhere.add(id)
	}
	return nil
}
