package workspace

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tandem-dev/tandem/eventlog/model"
)

// BenchAppend appends count synthetic agent messages to a session of ws
// through the owner path: this node takes (or holds) the workspace, and
// its owner appends with its fencing epoch, batch records per script call,
// at rate events per second (0: as fast as possible). With sessions > 1
// the records go round-robin to sessions "<sid>-0"… and one call carries
// one part per session, as the owner's ingest does for a busy room. It is
// for the load tool only; the HTTP route that calls it is off unless
// configured.
func (m *Manager) BenchAppend(ctx context.Context, ws, sid string, count, batch, size, sessions int, rate float64) (int, time.Duration, error) {
	if count < 1 || count > 10_000_000 || batch < 1 || batch > 512 || size < 0 || size > 64<<10 || rate < 0 || sessions < 0 || sessions > 64 {
		return 0, 0, invalid("count 1..1e7, batch 1..512, size 0..65536, sessions 0..64, rate >= 0")
	}
	if err := m.Exists(ctx, ws); err != nil {
		return 0, 0, err
	}
	o, err := m.ownerOf(ctx, ws)
	if err != nil {
		return 0, 0, err
	}
	text := strings.Repeat("x", size)
	body, _ := json.Marshal(sessionEvent{ConnectionID: "bench", Sender: "agent", Payload: json.RawMessage(fmt.Sprintf(
		`{"jsonrpc":"2.0","method":"session/update","params":{"sessionId":"bench","update":{"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":%q}}}}`, text))})
	recs := make([]model.Record, batch)
	for i := range recs {
		recs[i] = model.Record{Type: TypeSessionEvent, Body: body}
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
			parts := make([]model.Part, 0, sessions)
			for i := 0; i < k; i++ {
				j := (done + i) % sessions
				if len(parts) < sessions {
					parts = append(parts, model.Part{Session: sid + "-" + strconv.Itoa(j)})
				}
				p := &parts[i%sessions]
				p.Records = append(p.Records, recs[0])
			}
			_, err = m.store.AppendParts(ctx, ws, o.epoch, parts)
		} else {
			_, err = m.store.Append(ctx, ws, sid, o.epoch, recs[:k]...)
		}
		if err != nil {
			if errors.Is(err, model.ErrStaleWriter) {
				o.loseOwnership(err)
			}
			return done, time.Since(start), err
		}
		done += k
		o.touch()
	}
	return done, time.Since(start), nil
}

// ownerOf returns this node's owner of ws, taking the workspace if nobody
// owns it; it fails when another node does.
func (m *Manager) ownerOf(ctx context.Context, ws string) (*owner, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		m.mu.Lock()
		o := m.owners[ws]
		m.mu.Unlock()
		if o != nil {
			return o, nil
		}
		m.Demand(ws)
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s: %w", ws, ErrNotOwner)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
