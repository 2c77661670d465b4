package eventlog_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tandem-dev/tandem/eventlog"
	"github.com/tandem-dev/tandem/internal/redistest"
)

// Redis losing acknowledged writes: a restart from a snapshot older than
// the last appends (RDB, or an AOF whose everysec tail was lost), and a
// replica promoted without the master's last writes. Issue 13.

// TestLossyRestartFromSnapshot: the writer that kept its epoch is refused
// instead of reusing the lost entries' indexes, the fence acquired after
// the snapshot is not handed out again, and a reader whose cursor names a
// lost entry is reset, also once the stream was written again past it.
func TestLossyRestartFromSnapshot(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t, redistest.Options{})
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: 5, MinRetryBackoff: 50 * time.Millisecond})
	t.Cleanup(func() { rdb.Close() })
	l := eventlog.New(rdb, eventlog.Config{})
	const ws, sid = "lossy", "s"
	ep1, err := l.AcquireEpoch(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	var seen []eventlog.Event // what readers were sent
	appendN := func(ep uint64, head uint64, n int, from int) ([]eventlog.Event, error) {
		var recs []eventlog.Record
		for i := 0; i < n; i++ {
			recs = append(recs, rec("chat.user", fmt.Sprintf(`{"n":%d}`, from+i)))
		}
		evs, err := l.AppendParts(ctx, ws, ep, []eventlog.Part{{Session: sid, Records: recs, Head: head}})
		if err != nil {
			return nil, err
		}
		return evs[0], nil
	}
	evs, err := appendN(ep1, 0, 3, 1)
	if err != nil {
		t.Fatal(err)
	}
	seen = append(seen, evs...)
	if err := rdb.Save(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	// Acknowledged after the snapshot, then lost: two entries and a new
	// owner's epoch.
	evs, err = appendN(ep1, 3, 2, 4)
	if err != nil {
		t.Fatal(err)
	}
	seen = append(seen, evs...)
	ep2, err := l.AcquireEpoch(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	srv.Restart(t)
	if n, err := rdb.XLen(ctx, eventlog.StreamKey(ws, sid)).Result(); err != nil || n != 3 {
		t.Fatalf("after the restart the stream holds %d entries (%v); the snapshot had 3", n, err)
	}

	// The fence came back as ep1: the holder of ep2 is refused; the
	// writer of ep1, which kept its epoch, appends knowing head 5:
	// refused too, nothing written.
	if _, err := appendN(ep2, 0, 1, 6); !errors.Is(err, eventlog.ErrStaleWriter) {
		t.Fatalf("the holder of the lost epoch appended: %v", err)
	}
	_, err = appendN(ep1, 5, 1, 6)
	var rw *eventlog.RewoundError
	if !errors.As(err, &rw) || rw.Head != 3 || rw.Known != 5 || rw.Session != sid {
		t.Fatalf("append after the rewind: %v; want a RewoundError with head 3 of 5", err)
	}
	if n, _ := rdb.XLen(ctx, eventlog.StreamKey(ws, sid)).Result(); n != 3 {
		t.Fatalf("the refused append wrote: %d entries", n)
	}

	// The next acquisition is not ep2 again (the fence came back as ep1).
	ep3, err := l.AcquireEpoch(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	if ep3 == ep2 || ep3 == ep1 {
		t.Fatalf("epoch %d handed out again after the restart (ep1 %d, ep2 %d)", ep3, ep1, ep2)
	}
	for _, ep := range []uint64{ep1, ep2} {
		if _, err := appendN(ep, 0, 1, 6); !errors.Is(err, eventlog.ErrStaleWriter) {
			t.Fatalf("epoch %d appended after %d was acquired: %v", ep, ep3, err)
		}
	}

	// The new owner writes again from what survived: indexes 4 and 5 now
	// name other entries than the ones readers were sent.
	evs, err = appendN(ep3, 3, 3, 100)
	if err != nil {
		t.Fatal(err)
	}
	if evs[0].Index != 4 {
		t.Fatalf("the new owner appended at %d, want 4", evs[0].Index)
	}
	for _, tc := range []struct {
		name  string
		after eventlog.Event
		reset error // nil: resumes
	}{
		{"a cursor on a lost entry", seen[4], eventlog.ErrCursorRewritten},
		{"a cursor on the first lost entry", seen[3], eventlog.ErrCursorRewritten},
		{"a cursor on a surviving entry", seen[2], nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := eventlog.ParseCursor(tc.after.ID)
			if err != nil || c.Tag == "" {
				t.Fatalf("event id %q: %+v %v; want a tagged cursor", tc.after.ID, c, err)
			}
			got, _, err := l.Read(ctx, ws, sid, c, 100)
			if tc.reset != nil {
				var re *eventlog.ResetError
				if !errors.As(err, &re) || !errors.Is(err, tc.reset) || re.ReasonCode() != "history_rewound" {
					t.Fatalf("read after %s: %d events, %v; want a reset", tc.after.ID, len(got), err)
				}
				return
			}
			if err != nil || len(got) != 3 || got[0].Index != 4 || string(got[0].Body) != `{"n":100}` {
				t.Fatalf("read after %s: %+v, %v; want the 3 new entries", tc.after.ID, got, err)
			}
		})
	}
	// Cursors from before tags keep today's meaning (index and generation).
	old := eventlog.Cursor{Gen: mustCursor(t, seen[4].ID).Gen, Index: 5}
	if got, _, err := l.Read(ctx, ws, sid, old, 100); err != nil || len(got) != 1 || got[0].Index != 6 {
		t.Fatalf("read after the untagged cursor %v: %+v, %v", old, got, err)
	}
}

func mustCursor(t *testing.T, id string) eventlog.Cursor {
	t.Helper()
	c, err := eventlog.ParseCursor(id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestPromotedReplicaLostFence: a replica promoted before it received the
// master's last fence acquisition. With INCR the next owner, on the
// promoted replica, got the same epoch as the one the old master handed
// out, and both writers passed the check.
func TestPromotedReplicaLostFence(t *testing.T) {
	ctx := context.Background()
	master := redistest.Start(t, redistest.Options{})
	replica := redistest.Start(t, redistest.Options{Args: []string{"--replicaof", "127.0.0.1", fmt.Sprint(master.Port())}})
	mc, rc := master.Client(t), replica.Client(t)
	lm, lr := eventlog.New(mc, eventlog.Config{}), eventlog.New(rc, eventlog.Config{})
	const ws = "promoted"
	ep1, err := lm.AcquireEpoch(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	// Until the replica has ep1.
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, _ := rc.Get(ctx, eventlog.FenceKey(ws)).Result()
		if v == fmt.Sprint(ep1) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica never got the fence (has %q)", v)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Replication cut: the replica is promoted; the old master, not told,
	// hands out ep2 to an owner that keeps writing there.
	if err := rc.Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
		t.Fatal(err)
	}
	ep2, err := lm.AcquireEpoch(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	// The next owner acquires on the promoted replica.
	ep3, err := lr.AcquireEpoch(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	if ep3 == ep2 {
		t.Fatalf("the promoted replica handed out epoch %d a second time", ep3)
	}
	// Clients of the old master move to the new one (Sentinel): the
	// holder of ep2 must be refused there.
	if _, err := lr.Append(ctx, ws, "s", ep2, rec("chat.user", `{"n":1}`)); !errors.Is(err, eventlog.ErrStaleWriter) {
		t.Fatalf("the old master's owner appended on the promoted replica: %v", err)
	}
	if _, err := lr.Append(ctx, ws, "s", ep3, rec("chat.user", `{"n":1}`)); err != nil {
		t.Fatalf("the new owner: %v", err)
	}
}

// TestLateDispatchRefused: a dispatch whose bytes were held back on one
// connection executes after its retry (another request id, another call
// token) landed: the late one is refused, and in the other order the retry
// is. Either way the prompt is in the stream once.
func TestLateDispatchRefused(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Start(t, redistest.Options{}).Client(t)
	l := eventlog.New(rdb, eventlog.Config{})
	const ws = "late"
	ep, _ := l.AcquireEpoch(ctx, ws)
	dispatch := func(sid, inbox string, req int) error {
		_, err := l.AppendParts(ctx, ws, ep, []eventlog.Part{{
			Session:  sid,
			State:    map[string]string{"last_inbox": inbox, "turn": fmt.Sprintf(`{"req":%d}`, req)},
			Records:  []eventlog.Record{rec("chat.user", `{"promptId":"`+inbox+`"}`), rec("session.status", fmt.Sprintf(`{"req":%d}`, req))},
			Dispatch: inbox,
		}})
		return err
	}
	for _, sid := range []string{"a", "b"} {
		if err := dispatch(sid, "100-0", 1); err != nil {
			t.Fatal(err)
		}
		if err := dispatch(sid, "100-0", 2); !errors.Is(err, eventlog.ErrDuplicate) {
			t.Fatalf("%s: the same prompt dispatched again: %v", sid, err)
		}
		if n, _ := rdb.XLen(ctx, eventlog.StreamKey(ws, sid)).Result(); n != 2 {
			t.Fatalf("%s: %d entries, want 2", sid, n)
		}
	}
	// A prompt dispatched late (older than last_inbox, never dispatched:
	// one an earlier owner never received) goes through, once.
	if err := dispatch("a", "200-0", 3); err != nil {
		t.Fatal(err)
	}
	if err := dispatch("a", "150-0", 4); err != nil {
		t.Fatalf("a late prompt never dispatched: %v", err)
	}
	if err := dispatch("a", "150-0", 5); !errors.Is(err, eventlog.ErrDuplicate) {
		t.Fatalf("the late prompt dispatched twice: %v", err)
	}
	if err := dispatch("a", "100-0", 6); !errors.Is(err, eventlog.ErrDuplicate) {
		t.Fatalf("an old prompt dispatched twice: %v", err)
	}
}

// TestLateIngestSkipped: agent messages appended by a call that executes
// after a later one (bytes held back on one connection, WAIT mode's
// connection per call) are skipped by their ACP positions, in part when
// the calls overlap; the late call's state (a turn it ended) does not
// move the stream's state back.
func TestLateIngestSkipped(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Start(t, redistest.Options{}).Client(t)
	l := eventlog.New(rdb, eventlog.Config{})
	const ws, sid = "ingest", "s"
	ep, _ := l.AcquireEpoch(ctx, ws)
	msgs := func(conn string, from, to int, state map[string]string) eventlog.Part {
		p := eventlog.Part{Session: sid, State: map[string]string{"conn": conn}}
		for k, v := range state {
			p.State[k] = v
		}
		for i := from; i <= to; i++ {
			p.Records = append(p.Records, eventlog.Record{Type: "session.event", Body: []byte(fmt.Sprintf(`{"m":%d}`, i)), Source: fmt.Sprint(i)})
		}
		return p
	}
	// The retry (after a re-attach) lands first with 1..4; the late
	// original with 1..3 and a turn it ended comes after: all skipped.
	if _, err := l.AppendParts(ctx, ws, ep, []eventlog.Part{msgs("c1", 1, 4, map[string]string{"turn": `{"req":9}`})}); err != nil {
		t.Fatal(err)
	}
	late := msgs("c1", 1, 3, map[string]string{"turn": ""})
	late.Records = append(late.Records, rec("session.status", `{"status":"turn_ended"}`))
	got, err := l.AppendParts(ctx, ws, ep, []eventlog.Part{late})
	if err != nil || len(got[0]) != 0 {
		t.Fatalf("late call: %+v, %v; want nothing appended", got, err)
	}
	st, _ := l.State(ctx, ws, sid)
	if st["turn"] != `{"req":9}` || st["src"] != "4" || st["n"] != "4" {
		t.Fatalf("the late call changed the state: %v", st)
	}
	// Overlapping: 3..6 appends 5 and 6 only.
	got, err = l.AppendParts(ctx, ws, ep, []eventlog.Part{msgs("c1", 3, 6, nil)})
	if err != nil || len(got[0]) != 2 || got[0][0].Index != 5 || got[0][0].Source != "5" {
		t.Fatalf("overlapping call: %+v, %v; want 5 and 6 at 5", got, err)
	}
	// A new connection starts its own positions.
	p := msgs("c2", 1, 2, map[string]string{"src": ""})
	if got, err = l.AppendParts(ctx, ws, ep, []eventlog.Part{p}); err != nil || len(got[0]) != 2 {
		t.Fatalf("new connection: %+v, %v", got, err)
	}
	if n, _ := rdb.XLen(ctx, eventlog.StreamKey(ws, sid)).Result(); n != 8 {
		t.Fatalf("%d entries, want 8", n)
	}
}
