package node

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tandem-dev/tandem/eventlog"
	"github.com/tandem-dev/tandem/httpapi"
	"github.com/tandem-dev/tandem/workspace"
)

// benchAppender is the load tool's append route (httpapi.BenchAppender),
// served only with TANDEM_BENCH_ROUTES: it appends synthetic agent
// messages through the owner path, with this node holding the workspace
// (workspace.Manager.Hold) and appending with its owner's fencing epoch
// through the real append script, pub/sub and fan-out. It lives here, at
// the composition root, so that no product type carries code for the load
// tool.
type benchAppender struct {
	mgr *workspace.Manager
	log *eventlog.Log
}

func benchRoutes(on bool, mgr *workspace.Manager, log *eventlog.Log) httpapi.BenchAppender {
	if !on {
		return nil
	}
	return benchAppender{mgr: mgr, log: log}
}

// BenchAppend appends count synthetic agent messages to a session of ws,
// batch records per script call, at rate events per second (0: as fast as
// possible). With sessions > 1 the records go round-robin to sessions
// "<sid>-0"… and one call carries one part per session, as the owner's
// ingest does for a busy room.
func (b benchAppender) BenchAppend(ctx context.Context, ws, sid string, count, batch, size, sessions int, rate float64) (int, time.Duration, error) {
	if count < 1 || count > 10_000_000 || batch < 1 || batch > 512 || size < 0 || size > 64<<10 || rate < 0 || sessions < 0 || sessions > 64 {
		return 0, 0, fmt.Errorf("%w: count 1..1e7, batch 1..512, size 0..65536, sessions 0..64, rate >= 0", workspace.ErrInvalid)
	}
	epoch, release, err := b.mgr.Hold(ctx, ws)
	if err != nil {
		return 0, 0, err
	}
	defer release()
	payload := fmt.Sprintf(`{"jsonrpc":"2.0","method":"session/update","params":{"sessionId":"bench","update":{"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":%q}}}}`, strings.Repeat("x", size))
	body, _ := json.Marshal(struct {
		ConnectionID string          `json:"connectionId"`
		Sender       string          `json:"sender"`
		Payload      json.RawMessage `json:"payload"`
	}{"bench", "agent", json.RawMessage(payload)})
	rec := eventlog.Record{Type: workspace.TypeSessionEvent, Body: body}
	recs := make([]eventlog.Record, batch)
	for i := range recs {
		recs[i] = rec
	}
	start := time.Now()
	done := 0
	var interval time.Duration
	if rate > 0 {
		interval = time.Duration(float64(time.Second) / rate)
	}
	for done < count {
		if err := ctx.Err(); err != nil {
			return done, time.Since(start), err
		}
		k := min(batch, count-done)
		if interval > 0 {
			// Paced: one event per interval, on schedule, however late the
			// previous one was.
			k = 1
			if wait := time.Until(start.Add(time.Duration(done) * interval)); wait > 0 {
				time.Sleep(wait)
			}
		}
		var err error
		if sessions > 1 {
			parts := make([]eventlog.Part, 0, sessions)
			for i := 0; i < k; i++ {
				j := (done + i) % sessions
				if len(parts) < sessions {
					parts = append(parts, eventlog.Part{Session: sid + "-" + strconv.Itoa(j)})
				}
				p := &parts[i%sessions]
				p.Records = append(p.Records, rec)
			}
			_, err = b.log.AppendParts(ctx, ws, epoch, parts)
		} else {
			_, err = b.log.Append(ctx, ws, sid, epoch, recs[:k]...)
		}
		if err != nil {
			return done, time.Since(start), err
		}
		done += k
	}
	return done, time.Since(start), nil
}
