package workspace

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// A prompt reaches the agent exactly once, and the stream holds, in
// order, its chat.user, the turn's start, the request, the agent's
// chunks and response, and the turn's end.
func TestFakePromptReachesAgentOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		a := h.start("a", nodeOpts{})
		a.put(t)
		acc := a.prompt(t, "hello [chunks=3]")
		h.waitCount("status:turn_ended", 1)

		evs := h.events()
		checkIndexes(t, evs)
		checkAgentIDs(t, evs)
		got := describeAll(evs)
		i := slices.Index(got, TypeChatUser)
		if i < 0 {
			t.Fatalf("no chat.user in %v", got)
		}
		open := slices.Clone(got[:i])
		slices.Sort(open)
		if want := []string{"agent:response", "agent:response", "client:initialize", "client:session/new"}; !slices.Equal(open, want) {
			t.Fatalf("before the prompt: %v, want %v in some order", got[:i], want)
		}
		want := []string{TypeChatUser, "status:turn_started", "client:session/prompt", "agent:marker",
			"agent:session/update", "agent:session/update", "agent:session/update", "agent:response", "status:turn_ended"}
		if !slices.Equal(got[i:], want) {
			t.Fatalf("turn:\n got %v\nwant %v", got[i:], want)
		}
		var user struct{ UserID, Text, PromptID string }
		if err := json.Unmarshal(evs[i].Body, &user); err != nil || user.UserID != "ann" || user.Text != "hello [chunks=3]" || user.PromptID != acc.ID {
			t.Fatalf("chat.user %s (accepted %s)", evs[i].Body, acc.ID)
		}
		if d := statusDetails(evs, StatusTurnEnded); len(d) != 1 || d[0]["stopReason"] != "end_turn" || d[0]["promptId"] != acc.ID {
			t.Fatalf("turn_ended %v", d)
		}
		if p := h.sb.Prompts(); len(p) != 1 || p[0].Text() != "hello [chunks=3]" {
			t.Fatalf("agent received %+v", p)
		}
		_, pending := h.store.inboxView(testWS)
		if len(pending) != 0 {
			t.Fatalf("inbox entries still pending: %v", pending)
		}
		st := h.store.state(testWS, DefaultSession)
		if st["turn"] != "" || st["last_inbox"] != acc.ID || st["conn"] == "" {
			t.Fatalf("stream state %v", st)
		}
		info, err := a.m.GetWorkspace(context.Background(), testWS)
		if err != nil || info.Status != "active" || info.Owner == nil || info.Owner.Node != "a" || info.Owner.Epoch != 1 {
			t.Fatalf("workspace %+v %v", info, err)
		}
		if !a.owns() {
			t.Fatal("node a does not own the workspace")
		}
	})
}

// Prompts of a session reach the agent in the order they were accepted,
// one turn at a time.
func TestFakeQueueOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		a := h.start("a", nodeOpts{})
		a.put(t)
		var ids []string
		for _, text := range []string{"one [chunks=2]", "two [chunks=2]", "three [chunks=2]"} {
			ids = append(ids, a.prompt(t, text).ID)
		}
		h.waitCount("status:turn_ended", 3)
		if got := h.promptTexts(); !slices.Equal(got, []string{"one [chunks=2]", "two [chunks=2]", "three [chunks=2]"}) {
			t.Fatalf("agent received %v", got)
		}
		evs := h.events()
		if got := chatUsers(evs); !slices.Equal(got, ids) {
			t.Fatalf("chat.user promptIds %v, want %v", got, ids)
		}
		var turns []string
		for _, d := range describeAll(evs) {
			if d == "status:turn_started" || d == "status:turn_ended" {
				turns = append(turns, strings.TrimPrefix(d, "status:turn_"))
			}
		}
		if strings.Join(turns, ",") != "started,ended,started,ended,started,ended" {
			t.Fatalf("turns overlap: %v", turns)
		}
		checkAgentIDs(t, evs)
	})
}

// Cancel ends the running turn with stopReason cancelled, and the session
// takes prompts afterwards.
func TestFakeCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		a := h.start("a", nodeOpts{})
		a.put(t)
		a.prompt(t, "wait [hang]")
		waitFor(t, "the prompt at the agent", func() bool { return len(h.sb.Prompts()) == 1 })
		if _, err := a.m.Cancel(context.Background(), testWS, DefaultSession, "bob"); err != nil {
			t.Fatal(err)
		}
		h.waitCount("status:turn_ended", 1)
		if d := statusDetails(h.events(), StatusTurnEnded); d[0]["stopReason"] != "cancelled" {
			t.Fatalf("turn_ended %v", d)
		}
		if n := len(h.sb.Received("session/cancel")); n != 1 {
			t.Fatalf("the agent got %d cancels", n)
		}
		if h.count("client:session/cancel") != 1 {
			t.Fatal("the cancel sent is not in the stream")
		}
		a.prompt(t, "after [chunks=1]")
		h.waitCount("status:turn_ended", 2)
		// A cancel with no turn running changes nothing.
		if _, err := a.m.Cancel(context.Background(), testWS, DefaultSession, "bob"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the cancel handled", func() bool {
			_, p := h.store.inboxView(testWS)
			n, _ := h.store.InboxDepth(context.Background(), testWS)
			return len(p) == 0 && n == 0
		})
		if n := len(h.sb.Received("session/cancel")); n != 1 {
			t.Fatalf("the agent got %d cancels", n)
		}
		if _, err := a.m.Cancel(context.Background(), testWS, "nope", "bob"); !errors.Is(err, ErrSessionNotFound) {
			t.Fatalf("cancel of an unknown session: %v", err)
		}
	})
}

// Destroying a session cancels its turn, records the end, deletes its ACP
// connection and refuses prompts from then on.
func TestFakeDestroySession(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		a := h.start("a", nodeOpts{})
		a.put(t)
		ctx := context.Background()
		a.prompt(t, "wait [hang]")
		waitFor(t, "the prompt at the agent", func() bool { return len(h.sb.Prompts()) == 1 })
		conn := h.sb.Prompts()[0].Conn
		rec, err := a.m.DeleteSession(ctx, testWS, DefaultSession)
		if err != nil || rec.DestroyedAt == nil {
			t.Fatalf("delete: %+v %v", rec, err)
		}
		h.waitCount("status:session_destroyed", 1)
		if d := statusDetails(h.events(), StatusTurnEnded); len(d) != 1 || d[0]["stopReason"] != "cancelled" || d[0]["reason"] != "session destroyed" {
			t.Fatalf("turn_ended %v", d)
		}
		waitFor(t, "the connection deleted", func() bool { return slices.Contains(h.sb.Deleted(), conn) })
		if _, err := a.m.Prompt(ctx, testWS, DefaultSession, "ann", "again", ""); !errors.Is(err, ErrSessionDestroyed) {
			t.Fatalf("prompt to a destroyed session: %v", err)
		}
		if _, err := a.m.DeleteSession(ctx, testWS, DefaultSession); err != nil {
			t.Fatalf("destroying again: %v", err)
		}
		if _, err := a.m.DeleteSession(ctx, testWS, "nope"); !errors.Is(err, ErrSessionNotFound) {
			t.Fatalf("destroying an unknown session: %v", err)
		}
		_, pending := h.store.inboxView(testWS)
		waitFor(t, "the inbox done", func() bool { _, pending = h.store.inboxView(testWS); return len(pending) == 0 })
		if p := h.sb.Prompts(); len(p) != 1 {
			t.Fatalf("agent received %d prompts", len(p))
		}
	})
}

// Deleting a workspace destroys its sessions, removes its settings and
// lets it go: lock, owner record and active mark.
func TestFakeDeleteWorkspace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		a := h.start("a", nodeOpts{})
		a.put(t)
		ctx := context.Background()
		a.prompt(t, "hi [chunks=1]")
		h.waitCount("status:turn_ended", 1)
		conn := h.store.state(testWS, DefaultSession)["conn"]
		if err := a.m.DeleteWorkspace(ctx, testWS); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the workspace let go", func() bool { return !a.owns() && h.store.lockHolder(testWS) == "" })
		if _, found, _ := h.store.WorkspaceMeta(ctx, testWS); found {
			t.Fatal("the settings are still there")
		}
		if h.store.ownerRecord(testWS) != nil || h.store.isActive(testWS) {
			t.Fatalf("owner record %v, active %v", h.store.ownerRecord(testWS), h.store.isActive(testWS))
		}
		if h.count("status:session_destroyed") != 1 {
			t.Fatalf("stream %v", describeAll(h.events()))
		}
		if !slices.Contains(h.sb.Deleted(), conn) || len(h.sb.Connections()) != 0 {
			t.Fatalf("deleted %v, left %v", h.sb.Deleted(), h.sb.Connections())
		}
		if _, err := a.m.GetWorkspace(ctx, testWS); !errors.Is(err, ErrWorkspaceNotFound) {
			t.Fatalf("get: %v", err)
		}
		if err := a.m.DeleteWorkspace(ctx, testWS); !errors.Is(err, ErrWorkspaceNotFound) {
			t.Fatalf("delete again: %v", err)
		}
		if _, err := a.m.Prompt(ctx, testWS, DefaultSession, "ann", "hi", ""); !errors.Is(err, ErrWorkspaceNotFound) {
			t.Fatalf("prompt: %v", err)
		}
		// The id stays tombstoned: a PUT changes nothing until a purge.
		if created, err := a.m.PutWorkspace(ctx, testWS, Settings{}); created || !errors.Is(err, ErrWorkspaceDeleted) {
			t.Fatalf("created again before a purge: %v %v", created, err)
		}
		if len(h.store.events(testWS, DefaultSession)) == 0 {
			t.Fatal("history gone before a purge")
		}
		if err := a.m.PurgeWorkspace(ctx, testWS); err != nil {
			t.Fatal(err)
		}
		if err := a.m.PurgeWorkspace(ctx, testWS); !errors.Is(err, ErrWorkspaceNotFound) {
			t.Fatalf("purge again: %v", err)
		}
		created, err := a.m.PutWorkspace(ctx, testWS, Settings{})
		if err != nil || !created {
			t.Fatalf("created after the purge: %v %v", created, err)
		}
		if items, _, err := a.m.ListSessions(ctx, testWS, "", 10); err != nil || len(items) != 0 {
			t.Fatalf("sessions after the purge: %v %v", items, err)
		}
		if evs := h.store.events(testWS, DefaultSession); len(evs) != 0 {
			t.Fatalf("history after the purge: %v", describeAll(evs))
		}
	})
}

// A purge of a live workspace deletes it first and waits for its owner to
// finish the deletion and let it go; the owner never restarts over the
// emptied streams, and a session created again starts at index 1.
func TestFakePurgeLiveWorkspace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		a := h.start("a", nodeOpts{})
		a.put(t)
		ctx := context.Background()
		a.prompt(t, "hi [chunks=1]")
		h.waitCount("status:turn_ended", 1)
		if err := a.m.PurgeWorkspace(ctx, testWS); err != nil {
			t.Fatal(err)
		}
		if a.owns() || h.store.lockHolder(testWS) != "" || h.store.isActive(testWS) || h.store.ownerRecord(testWS) != nil {
			t.Fatalf("owns %v, lock %q, active %v", a.owns(), h.store.lockHolder(testWS), h.store.isActive(testWS))
		}
		if _, err := a.m.GetWorkspace(ctx, testWS); !errors.Is(err, ErrWorkspaceNotFound) {
			t.Fatalf("get after purge: %v", err)
		}
		a.put(t)
		a.prompt(t, "again [chunks=1]")
		h.waitCount("status:turn_ended", 1)
		evs := h.store.events(testWS, DefaultSession)
		if len(evs) == 0 || evs[0].Index != 1 {
			t.Fatalf("history after the purge: %v", describeAll(evs))
		}
	})
}

// An owner paused mid-turn (SIGSTOP) loses its lock; another node takes
// over, re-attaches to the ACP connection after the last message
// persisted, and the turn ends once with nothing lost or repeated. The
// paused owner, resumed, writes nothing more.
func TestFakeTakeoverMidTurn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		a := h.start("a", nodeOpts{})
		a.put(t)
		acc := a.prompt(t, "long [chunks=10] [delay=100ms]")
		h.waitCount("agent:session/update", 3)
		a.store.pause()
		h.store.expireLock(testWS)
		b := h.start("b", nodeOpts{})
		h.waitCount("status:turn_ended", 1)
		a.store.resume()
		waitFor(t, "node a to let go", func() bool { return !a.owns() })
		time.Sleep(2 * time.Second) // anything a would still do, it does now

		evs := h.events()
		checkIndexes(t, evs)
		checkAgentIDs(t, evs)
		if n := count(evs, "agent:session/update"); n != 10 {
			t.Fatalf("%d chunks in the stream, want 10", n)
		}
		if n := count(evs, "status:turn_ended"); n != 1 {
			t.Fatalf("%d turn ends", n)
		}
		if got := chatUsers(evs); !slices.Equal(got, []string{acc.ID}) {
			t.Fatalf("chat.user %v", got)
		}
		if n := count(evs, "status:owner_changed"); n != 1 {
			t.Fatalf("%d owner_changed", n)
		}
		if p := h.sb.Prompts(); len(p) != 1 {
			t.Fatalf("the agent received %d prompts", len(p))
		}
		att := h.sb.Attaches()
		if last := att[len(att)-1]; last.LastEventID == "" {
			t.Fatalf("node b attached from the start: %+v", att)
		}
		sawB := false
		for _, ev := range evs {
			sawB = sawB || ev.Epoch == 2
			if sawB && ev.Epoch != 2 {
				t.Fatalf("eventIndex %d written with epoch %d after epoch 2", ev.Index, ev.Epoch)
			}
		}
		if o := h.store.ownerRecord(testWS); o["node"] != "b" || o["epoch"] != "2" {
			t.Fatalf("owner record %v", o)
		}
		if !b.owns() {
			t.Fatal("b does not own the workspace")
		}
	})
}

// A node that shuts down hands its workspaces over: the lock and owner
// record go at once, the ACP connections stay, and the next owner
// re-attaches and finishes the turn.
func TestFakeHandoverOnShutdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		a := h.start("a", nodeOpts{})
		a.put(t)
		a.prompt(t, "long [chunks=6] [delay=100ms]")
		h.waitCount("agent:session/update", 2)
		a.stop()
		if h.store.lockHolder(testWS) != "" || h.store.ownerRecord(testWS) != nil {
			t.Fatalf("after the handover: lock %q, owner %v", h.store.lockHolder(testWS), h.store.ownerRecord(testWS))
		}
		if len(h.sb.Deleted()) != 0 {
			t.Fatalf("connections deleted on handover: %v", h.sb.Deleted())
		}
		h.start("b", nodeOpts{})
		h.waitCount("status:turn_ended", 1)
		evs := h.events()
		checkAgentIDs(t, evs)
		if n := count(evs, "agent:session/update"); n != 6 {
			t.Fatalf("%d chunks", n)
		}
		if len(h.sb.Prompts()) != 1 {
			t.Fatalf("prompts %v", h.promptTexts())
		}
	})
}

// A prompt taken over in flight whose request never reached the agent
// (the owner stopped between the dispatch's append and the POST): the next
// owner cannot tell, and an ACP prompt cannot be deduplicated, so it is
// never sent again; once its session stayed silent for DispatchTimeout the
// turn ends as delivery_unknown, which everyone sees. The old owner,
// resumed, sees the new epoch and does not send it either: the agent
// receives it at most once (here: never).
func TestFakeTakeoverPromptDeliveryUnknown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		short := func(c *Config) { c.DispatchTimeout = 2 * time.Second }
		a := h.start("a", nodeOpts{cfg: short})
		a.put(t)
		if _, _, err := a.m.CreateSession(context.Background(), testWS, DefaultSession, ""); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the session open", func() bool { return h.store.state(testWS, DefaultSession)["conn"] != "" })
		release := make(chan struct{})
		var held atomic.Bool
		a.store.hooks(func(c *memCall) error {
			if c.Method == "CurrentEpoch" && held.CompareAndSwap(false, true) {
				<-release // paused right before the POST
			}
			return nil
		}, nil)
		acc := a.prompt(t, "x [chunks=1]")
		waitFor(t, "the dispatch appended and a paused", func() bool { return held.Load() && h.count(TypeChatUser) == 1 })
		h.store.expireLock(testWS)
		start := time.Now()
		h.start("b", nodeOpts{cfg: short})
		h.waitCount("status:turn_ended", 1)
		if d := time.Since(start); d < 2*time.Second {
			t.Fatalf("ended after %v, before DispatchTimeout", d)
		}
		close(release)
		waitFor(t, "node a to let go", func() bool { return !a.owns() })
		time.Sleep(time.Second)
		if got := h.promptTexts(); len(got) != 0 {
			t.Fatalf("the agent received %v; the prompt must not be sent by either owner", got)
		}
		if got := stopReasons(h.events()); !slices.Equal(got, []string{StopDeliveryUnknown}) {
			t.Fatalf("stop reasons %v, want delivery_unknown", got)
		}
		evs := h.events()
		if got := chatUsers(evs); !slices.Equal(got, []string{acc.ID}) {
			t.Fatalf("chat.user %v", got)
		}
		if n := count(evs, "status:turn_ended"); n != 1 {
			t.Fatalf("%d turn ends", n)
		}
	})
}
