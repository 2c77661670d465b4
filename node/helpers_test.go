package node_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tandem-dev/tandem/eventlog"
	"github.com/tandem-dev/tandem/internal/ssetest"
)

// all reads the whole stream from Redis.
func all(t testing.TB, l *eventlog.Log, ws, sid string) []eventlog.Event {
	t.Helper()
	var out []eventlog.Event
	after := eventlog.Cursor{}
	for {
		evs, _, err := l.Read(context.Background(), ws, sid, after, eventlog.MaxPage)
		var re *eventlog.ResetError
		if errors.As(err, &re) && after.IsZero() && errors.Is(err, eventlog.ErrCursorExpired) {
			after = re.Continue // trimmed: all that is left
			continue
		}
		if err != nil {
			t.Fatalf("read %s/%s: %v", ws, sid, err)
		}
		if len(evs) == 0 {
			return out
		}
		out = append(out, evs...)
		after, _ = eventlog.ParseCursor(evs[len(evs)-1].ID)
	}
}

func appendN(t testing.TB, l *eventlog.Log, ws, sid string, ep uint64, from, n int, pad int) []eventlog.Event {
	t.Helper()
	recs := make([]eventlog.Record, n)
	for i := range recs {
		recs[i] = eventlog.Record{Type: "chat.user", Body: body(from+i, pad)}
	}
	var out []eventlog.Event
	for len(recs) > 0 {
		k := min(len(recs), 500)
		evs, err := l.Append(context.Background(), ws, sid, ep, recs[:k]...)
		if err != nil {
			t.Fatalf("append: %v", err)
		}
		out = append(out, evs...)
		recs = recs[k:]
	}
	return out
}

func body(n, pad int) json.RawMessage {
	p := make([]byte, pad)
	for i := range p {
		p[i] = 'a' + byte((n+i)%26)
	}
	return json.RawMessage(fmt.Sprintf(`{"userId":"u","text":"%d %s"}`, n, p))
}

// checkReceived verifies that got is exactly want: same ids, types and
// data, in order.
func checkReceived(t testing.TB, who string, got []ssetest.Event, want []eventlog.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s received %d events, want %d", who, len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		w := want[i]
		wd := string(w.AppendJSON(nil))
		if got[i].ID != w.ID || got[i].Type != w.Type || got[i].Data != wd {
			t.Errorf("%s event %d = {%s %s %.80s}, want {%s %s %.80s}", who, i, got[i].ID, got[i].Type, got[i].Data, w.ID, w.Type, wd)
			return
		}
	}
}

// collect reads events from c until it has the one with id last, or err.
func collect(c *ssetest.Conn, last string, deadline time.Time, into *[]ssetest.Event) error {
	for time.Now().Before(deadline) {
		ev, err := c.Next()
		if err != nil {
			return err
		}
		if ev.Type == "" || ev.Type == "presence" {
			continue // the retry: preamble, and presence (tested on its own)
		}
		*into = append(*into, ev)
		if ev.ID == last {
			return nil
		}
	}
	return fmt.Errorf("deadline")
}

// digest stands for an event in tests that must not hold the events
// themselves (they measure the node's memory).
type digest struct {
	ID, Type string
	Sum      [32]byte
}

func digestOf(ev eventlog.Event) digest {
	return digest{ev.ID, ev.Type, sha256.Sum256(ev.AppendJSON(nil))}
}

func digestSSE(ev ssetest.Event) digest {
	return digest{ev.ID, ev.Type, sha256.Sum256([]byte(ev.Data))}
}

func checkDigests(t testing.TB, who string, got, want []digest) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s received %d events, want %d", who, len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			t.Errorf("%s event %d = %s %s, want %s %s (or another body)", who, i, got[i].ID, got[i].Type, want[i].ID, want[i].Type)
			return
		}
	}
}

// holdWorkspace makes the test the owner of ws: it creates the workspace
// and session records, holds the ownership lock (so no node takes the
// workspace) and returns a fresh epoch to append with.
func holdWorkspace(t testing.TB, l *eventlog.Log, ws string, sids ...string) uint64 {
	t.Helper()
	ctx := context.Background()
	rdb := l.Client()
	tag := "{ws:" + ws + "}"
	if err := rdb.Set(ctx, tag+":lock", "test", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	rdb.HSet(ctx, tag+":meta", "sandboxUrl", "http://127.0.0.1:9", "agent", "mock", "createdAt", 1)
	for _, sid := range sids {
		rdb.HSet(ctx, tag+":session:"+sid, "id", sid, "agent", "mock", "createdAt", 1)
		rdb.ZAdd(ctx, tag+":sessions", redis.Z{Score: 1, Member: sid})
	}
	ep, err := l.AcquireEpoch(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	return ep
}
