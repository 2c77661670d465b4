package eventlog_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/tandem-dev/tandem/eventlog"
	"github.com/tandem-dev/tandem/eventlog/model"
)

// The workspace stream: a created session and every accepted prompt are
// on it at once (enqueue.lua, any node), a withdrawal too (withdraw.lua),
// and the owner's dispatch of a withdrawn prompt is refused, as is the
// withdrawal of a dispatched one: whichever script runs first wins.
func TestWorkspaceStreamQueueAndWithdraw(t *testing.T) {
	ctx := context.Background()
	st, rdb := newStore(t)
	const ws = "w"
	if _, err := st.PutWorkspace(ctx, ws, model.WorkspaceMeta{SandboxURL: "http://x", Agent: "mock"}, 1); err != nil {
		t.Fatal(err)
	}
	enq := func(user, text string) string {
		t.Helper()
		r, err := st.Enqueue(ctx, ws, model.Enqueue{Kind: "prompt", Session: "s1", User: user, Text: text, Create: true, IdemKey: text, IdemTTL: time.Minute})
		if err != nil || r.Status != model.EnqueueOK {
			t.Fatalf("enqueue: %v %+v", err, r)
		}
		return r.ID
	}
	p1 := enq("ann", "one")
	p2 := enq("bob", "two")
	p3 := enq("bob", "three")

	evs, _, err := st.Read(ctx, ws, model.WorkspaceStream, model.Cursor{}, 100)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range evs {
		types = append(types, e.Type)
	}
	if len(evs) != 4 || evs[0].Type != model.TypeSessionCreated || evs[3].Type != model.TypePromptQueued {
		t.Fatalf("workspace stream %v", types)
	}
	// The envelope carries createdAt: a body with its own would write the
	// key twice in the event's JSON.
	var created map[string]any
	if err := json.Unmarshal(evs[0].Body, &created); err != nil || created["sessionId"] != "s1" || created["createdAt"] != nil {
		t.Fatalf("session.created %s (%v)", evs[0].Body, err)
	}
	var q struct {
		PromptID, SessionID, UserID, Text string
		Position                          int
		QueuedAt                          int64
	}
	if err := json.Unmarshal(evs[3].Body, &q); err != nil || q.PromptID != p3 || q.SessionID != "s1" || q.UserID != "bob" || q.Text != "three" || q.Position != 3 || q.QueuedAt == 0 {
		t.Fatalf("prompt.queued %s (%v)", evs[3].Body, err)
	}
	if js, _ := json.Marshal(evs[3]); !json.Valid(js) {
		t.Fatalf("event JSON %s", js)
	}

	// The owner dispatches p1.
	ep, _ := st.AcquireEpoch(ctx, ws)
	if _, err := st.AppendParts(ctx, ws, ep, []model.Part{{Session: "s1", Dispatch: p1, State: map[string]string{"last_inbox": p1}, Records: []model.Record{{Type: "chat.user"}}}}); err != nil {
		t.Fatal(err)
	}
	try := func(id, user string, admin bool) model.WithdrawStatus {
		t.Helper()
		s, _, err := st.Withdraw(ctx, ws, model.Withdraw{Session: "s1", ID: id, User: user, Admin: admin})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if s := try(p1, "ann", false); s != model.WithdrawDispatched {
		t.Fatalf("withdraw of a dispatched prompt: %s", s)
	}
	if s := try(p2, "ann", false); s != model.WithdrawForbidden {
		t.Fatalf("withdraw by another: %s", s)
	}
	if s := try("1-1", "bob", false); s != model.WithdrawNotFound {
		t.Fatalf("withdraw of an unknown prompt: %s", s)
	}
	if s := try(p2, "bob", false); s != model.WithdrawOK {
		t.Fatalf("withdraw: %s", s)
	}
	if s := try(p3, "root", true); s != model.WithdrawOK {
		t.Fatalf("withdraw by an admin: %s", s)
	}
	// Withdrawing again changes nothing.
	n0, _ := rdb.XLen(ctx, eventlog.WorkspaceStreamKey(ws)).Result()
	if s, already, _ := st.Withdraw(ctx, ws, model.Withdraw{Session: "s1", ID: p2, User: "bob"}); s != model.WithdrawOK || !already {
		t.Fatalf("second withdraw: %s %v", s, already)
	}
	if n, _ := rdb.XLen(ctx, eventlog.WorkspaceStreamKey(ws)).Result(); n != n0 {
		t.Fatalf("a second withdraw appended: %d → %d", n0, n)
	}
	_, err = st.AppendParts(ctx, ws, ep, []model.Part{{Session: "s1", Dispatch: p2, Records: []model.Record{{Type: "chat.user"}}}})
	if !errors.Is(err, model.ErrWithdrawn) {
		t.Fatalf("dispatch of a withdrawn prompt: %v, want ErrWithdrawn", err)
	}
	evs, _, _ = st.Read(ctx, ws, model.WorkspaceStream, model.Cursor{}, 100)
	if last := evs[len(evs)-1]; last.Type != model.TypePromptWithdrawn {
		t.Fatalf("last workspace event %s", last.Type)
	}
	// A fourth prompt queues behind nothing: p1 dispatched, p2 and p3
	// withdrawn.
	enq("ann", "four")
	evs, _, _ = st.Read(ctx, ws, model.WorkspaceStream, model.Cursor{}, 100)
	if err := json.Unmarshal(evs[len(evs)-1].Body, &q); err != nil || q.Position != 1 {
		t.Fatalf("position of the fourth: %s", evs[len(evs)-1].Body)
	}
	// The owner writes the stream under its fence; a stale one cannot.
	if _, err := st.Append(ctx, ws, model.WorkspaceStream, ep, model.Record{Type: model.TypeSessionSummary, Body: json.RawMessage(`{"sessionId":"s1","running":true}`)}); err != nil {
		t.Fatal(err)
	}
	st.AcquireEpoch(ctx, ws)
	if _, err := st.Append(ctx, ws, model.WorkspaceStream, ep, model.Record{Type: model.TypeSessionSummary}); !errors.Is(err, model.ErrStaleWriter) {
		t.Fatalf("stale append to the workspace stream: %v", err)
	}
}

// The workspace stream is bounded even when session streams are not.
func TestWorkspaceStreamBounded(t *testing.T) {
	ctx := context.Background()
	_, rdb := newStore(t)
	st := eventlog.NewStore(eventlog.New(rdb, eventlog.Config{WorkspaceMaxLen: 100}))
	const ws = "w"
	if _, err := st.PutWorkspace(ctx, ws, model.WorkspaceMeta{SandboxURL: "http://x", Agent: "mock"}, 1); err != nil {
		t.Fatal(err)
	}
	ep, _ := st.AcquireEpoch(ctx, ws)
	for i := 0; i < 1000; i++ {
		if _, err := st.Append(ctx, ws, model.WorkspaceStream, ep, model.Record{Type: model.TypeSessionSummary}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Enqueue(ctx, ws, model.Enqueue{Kind: "prompt", Session: "s", User: "u", Text: "x", Create: true}); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := rdb.XLen(ctx, eventlog.WorkspaceStreamKey(ws)).Result(); n > 300 {
		t.Fatalf("workspace stream holds %d entries, bound 100", n)
	}
}
