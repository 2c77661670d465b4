package eventlog_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tandem-dev/tandem/eventlog"
	"github.com/tandem-dev/tandem/eventlog/model"
)

func streamIDLess(a, b string) bool {
	var am, as, bm, bs uint64
	fmt.Sscanf(a, "%d-%d", &am, &as)
	fmt.Sscanf(b, "%d-%d", &bm, &bs)
	return am < bm || am == bm && as < bs
}

func consumers(t *testing.T, rdb *redis.Client, ws string) map[string]int64 {
	t.Helper()
	cs, err := rdb.XInfoConsumers(context.Background(), eventlog.InboxKey(ws), eventlog.ConsumerGroup).Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, c := range cs {
		out[c.Name] = c.Pending
	}
	return out
}

func pendingWith(t *testing.T, rdb *redis.Client, ws string) map[string]string {
	t.Helper()
	p, err := rdb.XPendingExt(context.Background(), &redis.XPendingExtArgs{Stream: eventlog.InboxKey(ws), Group: eventlog.ConsumerGroup, Start: "-", End: "+", Count: 1000}).Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range p {
		out[e.ID] = e.Consumer
	}
	return out
}

// A paused ex-owner that comes back after a new owner took the workspace
// must change nothing in the inbox: its acknowledgement would drop an entry
// the new owner has not handled, its claim would take entries away from
// the new owner's consumer.
func TestAckAndClaimAreFenced(t *testing.T) {
	ctx := context.Background()
	st, rdb := newStore(t)
	const ws = "w"
	if err := st.EnsureInbox(ctx, ws); err != nil {
		t.Fatal(err)
	}
	e1, _ := st.AcquireEpoch(ctx, ws)
	ids := []string{addEntry(t, rdb, ws, "a"), addEntry(t, rdb, ws, "b"), addEntry(t, rdb, ws, "c")}
	if got, err := st.ReadInbox(ctx, ws, e1, "a/1", 10, ""); err != nil || len(got) != 3 {
		t.Fatalf("read: %v %d", err, len(got))
	}
	e2, _ := st.AcquireEpoch(ctx, ws) // a new owner; a/1 is paused
	before := pendingWith(t, rdb, ws)

	if err := st.AckInbox(ctx, ws, e1, ids[0]); !errors.Is(err, model.ErrStaleWriter) {
		t.Fatalf("stale ack: %v, want ErrStaleWriter", err)
	}
	if msgs, next, err := st.ClaimInbox(ctx, ws, e1, "a/1", "0-0", 10); !errors.Is(err, model.ErrStaleWriter) || len(msgs) != 0 || next != "" {
		t.Fatalf("stale claim: %v, %d entries, next %q; want ErrStaleWriter and nothing", err, len(msgs), next)
	}
	// The new owner claims one page; the ex-owner tries to claim them back.
	if msgs, _, err := st.ClaimInbox(ctx, ws, e2, "b/2", "0-0", 10); err != nil || len(msgs) != 3 {
		t.Fatalf("claim: %v %d", err, len(msgs))
	}
	if _, _, err := st.ClaimInbox(ctx, ws, e1, "a/1", "0-0", 10); !errors.Is(err, model.ErrStaleWriter) {
		t.Fatalf("stale claim after the takeover: %v", err)
	}
	if err := st.AckInbox(ctx, ws, e1, ids...); !errors.Is(err, model.ErrStaleWriter) {
		t.Fatalf("stale ack after the takeover: %v", err)
	}
	after := pendingWith(t, rdb, ws)
	if len(before) != 3 || len(after) != 3 {
		t.Fatalf("pending before %v after %v", before, after)
	}
	for _, id := range ids {
		if before[id] != "a/1" || after[id] != "b/2" {
			t.Fatalf("entry %s pending with %q before and %q after, want a/1 then b/2 (the stale calls moved nothing)", id, before[id], after[id])
		}
	}
	if n, _ := rdb.XLen(ctx, eventlog.InboxKey(ws)).Result(); n != 3 {
		t.Fatalf("XLEN %d after stale acks, want 3", n)
	}
	if err := st.AckInbox(ctx, ws, e2, ids[0]); err != nil {
		t.Fatal(err)
	}
	if n, _ := st.InboxPending(ctx, ws); n != 2 {
		t.Fatalf("pending after the owner's ack: %d", n)
	}
}

// Every takeover reads as a new consumer "<node>/<epoch>"; once the new
// owner's claim scan is complete, the earlier consumers hold nothing and
// are deleted, so the group does not grow by one consumer per takeover.
// A scan that is not complete deletes nothing.
func TestClaimDeletesEmptyConsumers(t *testing.T) {
	ctx := context.Background()
	st, rdb := newStore(t)
	const ws = "w"
	if err := st.EnsureInbox(ctx, ws); err != nil {
		t.Fatal(err)
	}
	// Ten earlier owners, each of which took over, read one entry and
	// acknowledged it; the last one left two entries pending.
	for i := 0; i < 10; i++ {
		ep, _ := st.AcquireEpoch(ctx, ws)
		c := "n/" + string(rune('0'+i))
		if _, _, err := st.ClaimInbox(ctx, ws, ep, c, "0-0", 100); err != nil {
			t.Fatal(err)
		}
		addEntry(t, rdb, ws, "p")
		got, err := st.ReadInbox(ctx, ws, ep, c, 10, "")
		if err != nil || len(got) != 1 {
			t.Fatalf("read %v %d", err, len(got))
		}
		if i < 9 {
			if err := st.AckInbox(ctx, ws, ep, got[0].ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	addEntry(t, rdb, ws, "q")
	ep, _ := st.CurrentEpoch(ctx, ws)
	p := pendingWith(t, rdb, ws)
	for id := range p {
		if got, err := st.ReadInbox(ctx, ws, ep, "n/9", 10, id); err != nil || len(got) != 1 {
			t.Fatalf("read q: %v %d", err, len(got))
		}
	}
	if c := consumers(t, rdb, ws); len(c) != 1 || c["n/9"] != 2 {
		t.Fatalf("consumers before the takeover %v: each takeover's claim deleted the empty ones before it", c)
	}
	rdb.XGroupCreateConsumer(ctx, eventlog.InboxKey(ws), eventlog.ConsumerGroup, "idle/0")

	e, _ := st.AcquireEpoch(ctx, ws)
	msgs, next, err := st.ClaimInbox(ctx, ws, e, "new/11", "0-0", 1)
	if err != nil || len(msgs) != 1 || next == "0-0" {
		t.Fatalf("first page: %v %d next %s", err, len(msgs), next)
	}
	if c := consumers(t, rdb, ws); len(c) != 3 || c["n/9"] != 1 || c["new/11"] != 1 {
		t.Fatalf("consumers after an incomplete scan %v: want all three kept", c)
	}
	msgs, next, err = st.ClaimInbox(ctx, ws, e, "new/11", next, 1)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("second page: %v %d next %s", err, len(msgs), next)
	}
	for next != "0-0" {
		if msgs, next, err = st.ClaimInbox(ctx, ws, e, "new/11", next, 1); err != nil || len(msgs) != 0 {
			t.Fatalf("last page: %v %d", err, len(msgs))
		}
	}
	if c := consumers(t, rdb, ws); len(c) != 1 || c["new/11"] != 2 {
		t.Fatalf("consumers after the scan %v, want only new/11 with both entries", c)
	}
}

// 10,000 prompts through one workspace, handled as an owner does (read
// after the last received, acknowledge; one prompt kept pending the whole
// time, as a long turn's is, and a few unread at any time): the inbox
// holds only what is pending or unread, never the acknowledged prompts.
// The reads stay idempotent over the deletions: a read whose reply was
// lost (after = "") still returns the owner's pending entries, in order.
func TestInboxStaysBounded(t *testing.T) {
	ctx := context.Background()
	st, rdb := newStore(t)
	const ws, sid, consumer = "w", "default", "a/1"
	if _, err := st.PutWorkspace(ctx, ws, model.WorkspaceMeta{Agent: "mock"}, time.Now().UnixMilli()); err != nil {
		t.Fatal(err)
	}
	if err := st.EnsureInbox(ctx, ws); err != nil {
		t.Fatal(err)
	}
	ep, _ := st.AcquireEpoch(ctx, ws)
	text := string(make([]byte, 200))
	enqueue := func() string {
		r, err := st.Enqueue(ctx, ws, model.Enqueue{Kind: "prompt", Session: sid, User: "u", Text: text, Create: true})
		if err != nil || r.Status != model.EnqueueOK {
			t.Fatalf("enqueue %+v %v", r, err)
		}
		return r.ID
	}
	start := time.Now()
	first := enqueue()
	got, err := st.ReadInbox(ctx, ws, ep, consumer, 1, "")
	if err != nil || len(got) != 1 || got[0].ID != first {
		t.Fatalf("first read %v %v", got, err)
	}
	received := first
	maxLen := int64(0)
	const total, batch = 10_000, 7
	for n, round := 1, 0; n < total; round++ {
		for i := 0; i < batch && n < total; i++ {
			enqueue()
			n++
		}
		// 5 and 9 in turn: two unread at times.
		msgs, err := st.ReadInbox(ctx, ws, ep, consumer, 5+4*(round%2), received)
		if err != nil {
			t.Fatal(err)
		}
		ids := make([]string, len(msgs))
		for i, m := range msgs {
			ids[i] = m.ID
			received = m.ID
		}
		if err := st.AckInbox(ctx, ws, ep, ids...); err != nil {
			t.Fatal(err)
		}
		l, _ := rdb.XLen(ctx, eventlog.InboxKey(ws)).Result()
		depth, _ := st.InboxDepth(ctx, ws)
		if l != depth {
			t.Fatalf("after %d prompts: XLEN %d, but %d pending or unread", n, l, depth)
		}
		maxLen = max(maxLen, l)
	}
	pending, _ := st.InboxPending(ctx, ws)
	depth, _ := st.InboxDepth(ctx, ws)
	l, _ := rdb.XLen(ctx, eventlog.InboxKey(ws)).Result()
	mem, _ := rdb.MemoryUsage(ctx, eventlog.InboxKey(ws)).Result()
	t.Logf("%d prompts in %v: XLEN %d (max %d), %d pending, %d pending or unread, MEMORY USAGE %d bytes",
		total, time.Since(start).Round(time.Millisecond), l, maxLen, pending, depth, mem)
	if pending != 1 || l != depth || maxLen > 1+2 {
		t.Fatalf("XLEN %d, pending %d, depth %d", l, pending, depth)
	}
	if mem > 16<<10 {
		t.Fatalf("the inbox uses %d bytes after its entries were acknowledged", mem)
	}
	// The lost-reply read: the owner's own pending entries, oldest first.
	again, err := st.ReadInbox(ctx, ws, ep, consumer, 10, "")
	if err != nil || len(again) != 1 || again[0].ID != first || again[0].Text != text {
		t.Fatalf("pending read after the deletions: %v %+v", err, again)
	}
	// The rest drains, and the inbox ends empty but for the long turn's.
	for {
		msgs, err := st.ReadInbox(ctx, ws, ep, consumer, 100, received)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			break
		}
		ids := []string{}
		for _, m := range msgs {
			ids = append(ids, m.ID)
			received = m.ID
		}
		if err := st.AckInbox(ctx, ws, ep, ids...); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.AckInbox(ctx, ws, ep, first); err != nil {
		t.Fatal(err)
	}
	if l, _ := rdb.XLen(ctx, eventlog.InboxKey(ws)).Result(); l != 0 {
		t.Fatalf("XLEN %d after everything was acknowledged", l)
	}
	// New entries still get ids after every earlier one.
	id := enqueue()
	if streamIDLess(id, received) || id == received {
		t.Fatalf("new id %s not after %s", id, received)
	}
}
