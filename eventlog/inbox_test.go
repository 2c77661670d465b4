package eventlog_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/tandem-dev/tandem/eventlog"
	"github.com/tandem-dev/tandem/eventlog/model"
	"github.com/tandem-dev/tandem/internal/redistest"
)

func newStore(t *testing.T) (*eventlog.Store, *redis.Client) {
	t.Helper()
	rdb := redistest.Start(t, redistest.Options{}).Client(t)
	return eventlog.NewStore(eventlog.New(rdb, eventlog.Config{})), rdb
}

func addEntry(t *testing.T, rdb *redis.Client, ws, text string) string {
	t.Helper()
	id, err := rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: eventlog.InboxKey(ws), Values: []any{"k", "prompt", "sid", "default", "user", "u", "text", text}}).Result()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// An owner that lost the workspace without noticing (SIGSTOP past its
// lock) must not take new inbox entries into its pending list: the owner
// that replaced it would never see them, and the next one to claim them
// would skip them as dispatched. Found by the fault campaign: a prompt
// accepted with 202 the moment a paused owner resumed was never sent.
func TestReadInboxIsFenced(t *testing.T) {
	ctx := context.Background()
	st, rdb := newStore(t)
	const ws = "w"
	if err := st.EnsureInbox(ctx, ws); err != nil {
		t.Fatal(err)
	}
	e1, _ := st.AcquireEpoch(ctx, ws)
	e2, _ := st.AcquireEpoch(ctx, ws) // a new owner took over
	id := addEntry(t, rdb, ws, "hi")

	msgs, err := st.ReadInbox(ctx, ws, e1, "a/1", 100, "")
	if !errors.Is(err, model.ErrStaleWriter) || len(msgs) != 0 {
		t.Fatalf("stale read: %v, %d entries; want ErrStaleWriter and none", err, len(msgs))
	}
	if n, _ := st.InboxPending(ctx, ws); n != 0 {
		t.Fatalf("%d entries pending after a stale read", n)
	}
	msgs, err = st.ReadInbox(ctx, ws, e2, "b/2", 100, "")
	if err != nil || len(msgs) != 1 {
		t.Fatalf("read: %v, %d entries", err, len(msgs))
	}
	if e := msgs[0]; e.ID != id || e.Kind != "prompt" || e.Session != "default" || e.User != "u" || e.Text != "hi" {
		t.Fatalf("entry %+v", e)
	}
	p, _ := rdb.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: eventlog.InboxKey(ws), Group: eventlog.ConsumerGroup, Start: "-", End: "+", Count: 10}).Result()
	if len(p) != 1 || p[0].Consumer != "b/2" {
		t.Fatalf("pending %+v, want the entry with b/2", p)
	}
	msgs, err = st.ReadInbox(ctx, ws, e2, "b/2", 100, id)
	if err != nil || len(msgs) != 0 {
		t.Fatalf("read of an empty inbox: %v, %d entries", err, len(msgs))
	}
}

// A read that Redis executed but whose reply the owner never got (Redis
// killed right after it, the connection cut, go-redis sending the call
// again) must not lose the entries it delivered: the next read returns
// them again, before any newer entry, and then moves on. Found by the
// fault campaign (seed 678972383).
func TestReadInboxAfterLostReply(t *testing.T) {
	ctx := context.Background()
	st, rdb := newStore(t)
	const ws, consumer = "w", "a/1"
	if err := st.EnsureInbox(ctx, ws); err != nil {
		t.Fatal(err)
	}
	epoch, _ := st.AcquireEpoch(ctx, ws)
	first := addEntry(t, rdb, ws, "first")
	// The read runs in Redis; its reply is lost: the owner still knows
	// only what it knew before (nothing).
	if _, err := st.ReadInbox(ctx, ws, epoch, consumer, 1, ""); err != nil {
		t.Fatal(err)
	}
	second := addEntry(t, rdb, ws, "second")
	received := ""
	read := func() []string {
		t.Helper()
		msgs, err := st.ReadInbox(ctx, ws, epoch, consumer, 1, received)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, m := range msgs {
			ids = append(ids, m.ID)
			received = m.ID
		}
		return ids
	}
	if got := read(); strings.Join(got, ",") != first {
		t.Fatalf("first read after the lost reply: %v, want %s", got, first)
	}
	if got := read(); strings.Join(got, ",") != second {
		t.Fatalf("second read: %v, want %s", got, second)
	}
	if got := read(); len(got) != 0 {
		t.Fatalf("third read: %v, want nothing", got)
	}
	// Both stay pending, unacknowledged, until handled.
	if n, _ := st.InboxPending(ctx, ws); n != 2 {
		t.Fatalf("%d pending, want 2", n)
	}
}

// Ids are checked where keys are built: an id that could make one key
// collide with another is refused by the lowest layer itself, whoever
// calls it, and nothing is written.
func TestInvalidIDsRefused(t *testing.T) {
	ctx := context.Background()
	st, rdb := newStore(t)
	epoch, err := st.AcquireEpoch(ctx, "w")
	if err != nil {
		t.Fatal(err)
	}
	rec := model.Record{Type: "chat.user", Body: []byte(`{"text":"x"}`)}
	for _, bad := range []string{"x:state", "{ws:other}", "a}", "", strings.Repeat("a", 129), "a b", "a\n"} {
		if _, err := st.Append(ctx, "w", bad, epoch, rec); !errors.Is(err, model.ErrInvalidID) {
			t.Errorf("Append to session %q: %v, want ErrInvalidID", bad, err)
		}
		if _, err := st.AppendParts(ctx, "w", epoch, []model.Part{{Session: bad, Records: []model.Record{rec}}}); !errors.Is(err, model.ErrInvalidID) {
			t.Errorf("AppendParts to session %q: %v, want ErrInvalidID", bad, err)
		}
		if _, err := st.AcquireEpoch(ctx, bad); !errors.Is(err, model.ErrInvalidID) {
			t.Errorf("AcquireEpoch of workspace %q: %v, want ErrInvalidID", bad, err)
		}
		if _, _, err := st.Read(ctx, "w", bad, model.Cursor{}, 10); !errors.Is(err, model.ErrInvalidID) {
			t.Errorf("Read of session %q: %v, want ErrInvalidID", bad, err)
		}
		if _, err := st.Enqueue(ctx, bad, model.Enqueue{Kind: "prompt", Session: "default"}); !errors.Is(err, model.ErrInvalidID) {
			t.Errorf("Enqueue to workspace %q: %v, want ErrInvalidID", bad, err)
		}
		if _, err := st.Enqueue(ctx, "w", model.Enqueue{Kind: "prompt", Session: bad}); !errors.Is(err, model.ErrInvalidID) {
			t.Errorf("Enqueue to session %q: %v, want ErrInvalidID", bad, err)
		}
		if _, _, err := st.Session(ctx, "w", bad); !errors.Is(err, model.ErrInvalidID) {
			t.Errorf("Session %q: %v, want ErrInvalidID", bad, err)
		}
		if _, err := st.NewLock(bad, 0); !errors.Is(err, model.ErrInvalidID) {
			t.Errorf("NewLock of workspace %q: %v, want ErrInvalidID", bad, err)
		}
	}
	// Only the fence of "w" exists.
	keys, _ := rdb.Keys(ctx, "*").Result()
	if len(keys) != 1 || keys[0] != eventlog.FenceKey("w") {
		t.Fatalf("keys after refused calls: %v", keys)
	}
	// The ids the API accepts are accepted.
	if _, err := st.Append(ctx, "w", "Session_1.a-b", epoch, rec); err != nil {
		t.Fatalf("a valid id: %v", err)
	}
}
