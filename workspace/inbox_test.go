package workspace

import (
	"context"
	"errors"
	"testing"

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
