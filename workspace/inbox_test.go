package workspace

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tandem-dev/tandem/eventlog"
	"github.com/tandem-dev/tandem/internal/redistest"
)

// An owner that lost the workspace without noticing (SIGSTOP past its
// lock) must not take new inbox entries into its pending list: the owner
// that replaced it would never see them, and the next one to claim them
// would skip them as dispatched. Found by the fault campaign: a prompt
// accepted with 202 the moment a paused owner resumed was never sent.
func TestReadNewIsFenced(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Start(t, redistest.Options{}).Client(t)
	log := eventlog.New(rdb, eventlog.Config{})
	m := New(log, nil, nil, nil, Config{NodeID: "a"})
	const ws = "w"
	if err := rdb.XGroupCreateMkStream(ctx, inboxKey(ws), consumerGroup, "0").Err(); err != nil {
		t.Fatal(err)
	}
	e1, _ := log.AcquireEpoch(ctx, ws)
	e2, _ := log.AcquireEpoch(ctx, ws) // a new owner took over
	stale := &owner{m: m, ws: ws, epoch: e1, consumer: "a/1"}
	current := &owner{m: m, ws: ws, epoch: e2, consumer: "b/2"}
	id, err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: inboxKey(ws), Values: []any{"k", cmdPrompt, "sid", "default", "user", "u", "text", "hi"}}).Result()
	if err != nil {
		t.Fatal(err)
	}

	t.Run("ErrNotOwner", func(t *testing.T) {
		msgs, err := stale.readNew(ctx, 100)
		if !errors.Is(err, ErrNotOwner) || len(msgs) != 0 {
			t.Fatalf("stale read: %v, %d entries; want ErrNotOwner and none", err, len(msgs))
		}
		if p, _ := rdb.XPending(ctx, inboxKey(ws), consumerGroup).Result(); p.Count != 0 {
			t.Fatalf("%d entries pending after a stale read", p.Count)
		}
	})
	t.Run("OK", func(t *testing.T) {
		msgs, err := current.readNew(ctx, 100)
		if err != nil || len(msgs) != 1 {
			t.Fatalf("read: %v, %d entries", err, len(msgs))
		}
		if e := parseEntry(msgs[0]); e.id != id || e.kind != cmdPrompt || e.sid != "default" || e.user != "u" || e.text != "hi" {
			t.Fatalf("entry %+v", e)
		}
		p, _ := rdb.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: inboxKey(ws), Group: consumerGroup, Start: "-", End: "+", Count: 10}).Result()
		if len(p) != 1 || p[0].Consumer != "b/2" {
			t.Fatalf("pending %+v, want the entry with b/2", p)
		}
	})
	t.Run("Empty", func(t *testing.T) {
		msgs, err := current.readNew(ctx, 100)
		if err != nil || len(msgs) != 0 {
			t.Fatalf("read of an empty inbox: %v, %d entries", err, len(msgs))
		}
	})
}

// A read that Redis executed but whose reply the owner never got (Redis
// killed right after it, the connection cut, go-redis sending the call
// again) must not lose the entries it delivered: the next read returns
// them again, before any newer entry, and then moves on. Found by the
// fault campaign (seed 678972383).
func TestReadNewAfterLostReply(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Start(t, redistest.Options{}).Client(t)
	log := eventlog.New(rdb, eventlog.Config{})
	m := New(log, nil, nil, nil, Config{NodeID: "a"})
	const ws = "w"
	if err := rdb.XGroupCreateMkStream(ctx, inboxKey(ws), consumerGroup, "0").Err(); err != nil {
		t.Fatal(err)
	}
	epoch, _ := log.AcquireEpoch(ctx, ws)
	o := &owner{m: m, ws: ws, epoch: epoch, consumer: "a/1"}
	add := func(text string) string {
		id, err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: inboxKey(ws), Values: []any{"k", cmdPrompt, "sid", "default", "user", "u", "text", text}}).Result()
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	read := func() []string {
		t.Helper()
		msgs, err := o.readNew(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, m := range msgs {
			ids = append(ids, m.ID)
		}
		return ids
	}
	first := add("first")
	// The read runs in Redis; its reply is lost.
	if err := inboxReadScript.Run(ctx, rdb, []string{eventlog.FenceKey(ws), inboxKey(ws)}, epoch, consumerGroup, o.consumer, 1, "0-0").Err(); err != nil {
		t.Fatal(err)
	}
	second := add("second")
	if got := read(); len(got) != 1 || got[0] != first {
		t.Fatalf("first read after the lost reply: %v, want %s", got, first)
	}
	if got := read(); len(got) != 1 || got[0] != second {
		t.Fatalf("second read: %v, want %s", got, second)
	}
	if got := read(); len(got) != 0 {
		t.Fatalf("third read: %v, want nothing", got)
	}
	// The pending entries are still the consumer's, unacknowledged, until
	// handled: a later read does not return them again.
	if p, _ := rdb.XPending(ctx, inboxKey(ws), consumerGroup).Result(); p.Count != 2 {
		t.Fatalf("%d pending, want 2", p.Count)
	}
}

// A claimed prompt counts as dispatched only when its own chat.user is in
// the stream; a later prompt's chat.user proves nothing.
func TestFindDispatch(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Start(t, redistest.Options{}).Client(t)
	log := eventlog.New(rdb, eventlog.Config{})
	m := New(log, nil, nil, nil, Config{NodeID: "a"})
	const ws, sid = "w", "default"
	epoch, _ := log.AcquireEpoch(ctx, ws)
	o := &owner{m: m, ws: ws, epoch: epoch, consumer: "a/1"}
	user := func(id string) eventlog.Record {
		return eventlog.Record{Type: TypeChatUser, Body: []byte(`{"userId":"u","text":"t","promptId":"` + id + `"}`)}
	}
	filler := func(n int) {
		for i := 0; i < n; i++ {
			if _, err := log.Append(ctx, ws, sid, epoch, eventlog.Record{Type: TypeSessionEvent, Body: []byte(`{"sender":"agent"}`)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := log.Append(ctx, ws, sid, epoch, user("1000-0")); err != nil {
		t.Fatal(err)
	}
	filler(700) // more than one page back
	if _, err := log.Append(ctx, ws, sid, epoch, user("3000-0")); err != nil {
		t.Fatal(err)
	}
	filler(600)
	future := strconv.FormatInt(time.Now().Add(10*time.Minute).UnixMilli(), 10) + "-0"
	for _, c := range []struct {
		id   string
		want bool
	}{
		{"1000-0", true},  // its chat.user, two pages back
		{"3000-0", true},  // its chat.user
		{"2000-0", false}, // between: 3000-0 was dispatched, 2000-0 never
		{"500-0", false},  // before everything: the stream's start ends the search
		{future, false},   // accepted after every event was written
	} {
		got, err := o.findDispatch(ctx, sid, c.id)
		if err != nil || got != c.want {
			t.Errorf("findDispatch(%s) = %v, %v; want %v", c.id, got, err, c.want)
		}
	}
}
