package workspace

import (
	"context"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tandem-dev/tandem/eventlog/model"
	"github.com/tandem-dev/tandem/internal/acptest"
)

// openSession has the owner open the default session and waits until its
// connection is recorded.
func (h *harness) openSession(n *testNode) {
	h.t.Helper()
	if _, _, err := n.m.CreateSession(context.Background(), testWS, DefaultSession, ""); err != nil {
		h.t.Fatal(err)
	}
	waitFor(h.t, "the session open", func() bool { return h.store.state(testWS, DefaultSession)["conn"] != "" })
}

// loseOnce returns an after hook that loses the reply of the first call
// match accepts.
func loseOnce(match func(c *memCall) bool) (func(c *memCall) error, *atomic.Bool) {
	var done atomic.Bool
	return func(c *memCall) error {
		if match(c) && done.CompareAndSwap(false, true) {
			return unavailableErr(c.Method + " (reply lost)")
		}
		return nil
	}, &done
}

func isDispatch(c *memCall) bool {
	return (c.Method == "AppendState" || c.Method == "AppendParts") && c.hasType(TypeChatUser)
}

// The dispatch's append landed but its reply was lost: when the session
// moves on (here: another prompt), the first prompt is found dispatched in
// the stream state and sent once, without a second chat.user.
func TestFakeDispatchReplyLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		a := h.start("a", nodeOpts{})
		a.put(t)
		h.openSession(a)
		after, lost := loseOnce(isDispatch)
		a.store.hooks(nil, after)
		p1 := a.prompt(t, "first [chunks=1]")
		waitFor(t, "the lost dispatch", lost.Load)
		p2 := a.prompt(t, "second [chunks=1]")
		h.waitCount("status:turn_ended", 2)
		if got := h.promptTexts(); !slices.Equal(got, []string{"first [chunks=1]", "second [chunks=1]"}) {
			t.Fatalf("the agent received %v", got)
		}
		evs := h.events()
		if got := chatUsers(evs); !slices.Equal(got, []string{p1.ID, p2.ID}) {
			t.Fatalf("chat.user %v, want %v", got, []string{p1.ID, p2.ID})
		}
		if n := count(evs, "status:turn_started"); n != 2 {
			t.Fatalf("%d turn starts", n)
		}
	})
}

// The same, with nothing else happening in the session afterwards: the
// prompt must still be sent. It was not (found with these fakes): nothing
// called dispatch again for a session whose queue waited and whose
// connection was open, so the prompt waited until another command or a
// new owner; now tick tries it again.
func TestFakeDispatchReplyLostAlone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		a := h.start("a", nodeOpts{})
		a.put(t)
		h.openSession(a)
		after, lost := loseOnce(isDispatch)
		a.store.hooks(nil, after)
		a.prompt(t, "first [chunks=1]")
		waitFor(t, "the lost dispatch", lost.Load)
		waitFor(t, "the prompt sent", func() bool { return len(h.sb.Prompts()) == 1 })
		h.waitCount("status:turn_ended", 1)
		if n := h.count(TypeChatUser); n != 1 {
			t.Fatalf("%d chat.user", n)
		}
	})
}

// The dispatch's append failed without landing (Redis away): likewise,
// the prompt must be sent once Redis answers again.
func TestFakeDispatchAppendFailsAlone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		a := h.start("a", nodeOpts{})
		a.put(t)
		h.openSession(a)
		var failed atomic.Bool
		a.store.hooks(func(c *memCall) error {
			if isDispatch(c) && failed.CompareAndSwap(false, true) {
				return unavailableErr(c.Method)
			}
			return nil
		}, nil)
		a.prompt(t, "first [chunks=1]")
		waitFor(t, "the failed dispatch", failed.Load)
		h.waitCount("status:turn_ended", 1)
		if got := h.promptTexts(); len(got) != 1 {
			t.Fatalf("the agent received %v", got)
		}
	})
}

// seedEarlierOwner leaves the store as an earlier owner (epoch 1, consumer
// old/1) that received prompts texts, dispatched the ones in dispatched
// (their chat.user and turn in the stream, last_inbox the newest), and
// acknowledged those in acked. It returns the inbox ids.
func (h *harness) seedEarlierOwner(texts []string, dispatched, acked []int) []string {
	h.t.Helper()
	ctx := context.Background()
	st := h.store.peer("old")
	if _, err := st.PutWorkspace(ctx, testWS, model.WorkspaceMeta{SandboxURL: acptest.URL, Agent: "mock"}, time.Now().UnixMilli()); err != nil {
		h.t.Fatal(err)
	}
	var ids []string
	for _, text := range texts {
		r, err := st.Enqueue(ctx, testWS, model.Enqueue{Kind: cmdPrompt, Session: DefaultSession, User: "ann", Text: text, Create: true})
		if err != nil || r.Status != model.EnqueueOK {
			h.t.Fatalf("enqueue: %+v %v", r, err)
		}
		ids = append(ids, r.ID)
		time.Sleep(time.Millisecond)
	}
	ep, _ := st.AcquireEpoch(ctx, testWS)
	if err := st.EnsureInbox(ctx, testWS); err != nil {
		h.t.Fatal(err)
	}
	if got, err := st.ReadInbox(ctx, testWS, ep, "old/1", 10, ""); err != nil || len(got) != len(texts) {
		h.t.Fatalf("read %v %v", got, err)
	}
	last := ""
	for _, i := range dispatched {
		user := `{"userId":"ann","text":"` + texts[i] + `","promptId":"` + ids[i] + `"}`
		if _, err := st.AppendState(ctx, testWS, DefaultSession, ep, nil,
			model.Record{Type: TypeChatUser, Body: []byte(user)},
			statusRecord(StatusTurnStarted, map[string]any{"promptId": ids[i]}),
			statusRecord(StatusTurnEnded, map[string]any{"promptId": ids[i], "stopReason": "end_turn"})); err != nil {
			h.t.Fatal(err)
		}
		if last == "" || idAfter(ids[i], last) {
			last = ids[i]
		}
	}
	if last != "" {
		if _, err := st.AppendState(ctx, testWS, DefaultSession, ep, map[string]string{"last_inbox": last, "turn": ""}); err != nil {
			h.t.Fatal(err)
		}
	}
	for _, i := range acked {
		if err := st.AckInbox(ctx, testWS, ep, ids[i]); err != nil {
			h.t.Fatal(err)
		}
	}
	if err := st.MarkActive(ctx, testWS); err != nil {
		h.t.Fatal(err)
	}
	return ids
}

// A claimed prompt older than the session's last dispatch, with no
// chat.user of its own (an earlier owner never received it), is
// dispatched; last_inbox does not move back.
func TestFakeClaimOlderPromptNotDispatched(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		ids := h.seedEarlierOwner([]string{"older [chunks=1]", "newer [chunks=1]"}, []int{1}, []int{1})
		h.start("a", nodeOpts{})
		h.waitCount("status:turn_ended", 2)
		time.Sleep(time.Second)
		if got := h.promptTexts(); !slices.Equal(got, []string{"older [chunks=1]"}) {
			t.Fatalf("the agent received %v", got)
		}
		if got := chatUsers(h.events()); !slices.Equal(got, []string{ids[1], ids[0]}) {
			t.Fatalf("chat.user %v", got)
		}
		if st := h.store.state(testWS, DefaultSession); st["last_inbox"] != ids[1] {
			t.Fatalf("last_inbox %q moved back from %q", st["last_inbox"], ids[1])
		}
		if _, p := h.store.inboxView(testWS); len(p) != 0 {
			t.Fatalf("pending %v", p)
		}
	})
}

// A claimed prompt older than the last dispatch whose own chat.user is in
// the stream (its acknowledgement failed) is acknowledged, not sent again.
func TestFakeClaimOlderPromptDispatched(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		h.seedEarlierOwner([]string{"older [chunks=1]", "newer [chunks=1]"}, []int{0, 1}, []int{1})
		a := h.start("a", nodeOpts{})
		waitFor(t, "node a to own", a.owns)
		waitFor(t, "the claimed prompt acknowledged", func() bool { _, p := h.store.inboxView(testWS); return len(p) == 0 })
		time.Sleep(time.Second)
		if got := h.promptTexts(); len(got) != 0 {
			t.Fatalf("the agent received %v", got)
		}
		if n := h.count(TypeChatUser); n != 2 {
			t.Fatalf("%d chat.user", n)
		}
	})
}

// A claimed prompt that is the last dispatched, whose turn is over, is
// acknowledged; a later one never received is dispatched.
func TestFakeClaimLastDispatchedAndNew(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		ids := h.seedEarlierOwner([]string{"done [chunks=1]", "new [chunks=1]"}, []int{0}, nil)
		h.start("a", nodeOpts{})
		h.waitCount("status:turn_ended", 2)
		time.Sleep(time.Second)
		if got := h.promptTexts(); !slices.Equal(got, []string{"new [chunks=1]"}) {
			t.Fatalf("the agent received %v", got)
		}
		if got := chatUsers(h.events()); !slices.Equal(got, ids) {
			t.Fatalf("chat.user %v", got)
		}
	})
}

// An inbox read whose reply was lost delivered entries to the owner's
// consumer; the next read returns them first, in order, and each prompt
// reaches the agent once.
func TestFakeInboxReadReplyLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		a := h.start("a", nodeOpts{})
		a.put(t)
		h.openSession(a)
		after, lost := loseOnce(func(c *memCall) bool { return c.Method == "ReadInbox" && c.N > 0 })
		a.store.hooks(nil, after)
		var ids []string
		for _, text := range []string{"one [chunks=1]", "two [chunks=1]"} {
			ids = append(ids, a.prompt(t, text).ID)
		}
		waitFor(t, "the lost read", lost.Load)
		ids = append(ids, a.prompt(t, "three [chunks=1]").ID)
		h.waitCount("status:turn_ended", 3)
		time.Sleep(time.Second)
		if got := h.promptTexts(); !slices.Equal(got, []string{"one [chunks=1]", "two [chunks=1]", "three [chunks=1]"}) {
			t.Fatalf("the agent received %v", got)
		}
		if got := chatUsers(h.events()); !slices.Equal(got, ids) {
			t.Fatalf("chat.user %v, want %v", got, ids)
		}
	})
}

// A claim whose reply was lost stops the take-over; the next one claims
// the same entries again and handles each once.
func TestFakeClaimReplyLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		h.seedEarlierOwner([]string{"one [chunks=1]", "two [chunks=1]"}, nil, nil)
		h.store.loseNext("ClaimInbox", 1)
		h.start("a", nodeOpts{})
		h.waitCount("status:turn_ended", 2)
		time.Sleep(time.Second)
		if got := h.promptTexts(); !slices.Equal(got, []string{"one [chunks=1]", "two [chunks=1]"}) {
			t.Fatalf("the agent received %v", got)
		}
	})
}

// An owner whose epoch is superseded stops at its next fenced call,
// writes nothing, and touches nothing of the new owner's; the prompt is
// carried out after the lock expires, by whoever takes the workspace.
func TestFakeStaleEpoch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		a := h.start("a", nodeOpts{})
		a.put(t)
		h.openSession(a)
		ctx := context.Background()
		before := len(h.events())
		if _, err := h.store.peer("x").AcquireEpoch(ctx, testWS); err != nil {
			t.Fatal(err)
		}
		h.store.failNext("TryLock", 1000000) // nobody takes it back yet
		acc := a.prompt(t, "after [chunks=1]")
		waitFor(t, "node a to let go", func() bool { return !a.owns() })
		if n := len(h.events()); n != before {
			t.Fatalf("%d events appended by a stale owner: %v", n-before, describeAll(h.events()[before:]))
		}
		if _, p := h.store.inboxView(testWS); len(p) != 0 {
			t.Fatalf("a stale owner read the inbox: %v", p)
		}
		if o := h.store.ownerRecord(testWS); o == nil || o["epoch"] != "1" {
			t.Fatalf("owner record %v: a lost owner must not touch it", o)
		}
		h.store.failNext("TryLock", 0)
		h.waitCount("status:turn_ended", 1)
		if got := h.promptTexts(); !slices.Equal(got, []string{"after [chunks=1]"}) {
			t.Fatalf("the agent received %v", got)
		}
		if got := chatUsers(h.events()); !slices.Equal(got, []string{acc.ID}) {
			t.Fatalf("chat.user %v", got)
		}
		for _, ev := range h.events()[before:] {
			if ev.Epoch != 3 {
				t.Fatalf("event %d written with epoch %d", ev.Index, ev.Epoch)
			}
		}
	})
}

// An append that fails mid-turn (Redis away) makes the owner drop the
// connection and re-attach after the last message persisted: the stream
// ends up with every agent message once, in order. (Only one append
// fails: a failure of the re-attach's own first batch can hit a bug, see
// TestFakeAppendFailsWhileReattaching.)
func TestFakeAppendsFailMidTurn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		a := h.start("a", nodeOpts{})
		a.put(t)
		a.prompt(t, "long [chunks=8] [delay=50ms]")
		h.waitCount("agent:session/update", 2)
		a.store.failNext("AppendParts", 1)
		h.waitCount("status:turn_ended", 1)
		evs := h.events()
		checkIndexes(t, evs)
		checkAgentIDs(t, evs)
		if n := count(evs, "agent:session/update"); n != 8 {
			t.Fatalf("%d chunks", n)
		}
		if len(h.sb.Prompts()) != 1 {
			t.Fatalf("prompts %v", h.promptTexts())
		}
		if len(h.sb.Attaches()) < 1 {
			t.Fatal("no re-attach")
		}
	})
}

// A prompt whose POST is refused is tried again; one refused every time
// ends its turn with an error, and the next prompt goes through.
func TestFakePromptPostRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		a := h.start("a", nodeOpts{})
		a.put(t)
		h.openSession(a)
		h.sb.FailPosts(2)
		a.prompt(t, "one [chunks=1]")
		h.waitCount("status:turn_ended", 1)
		h.sb.FailPosts(100)
		a.prompt(t, "two [chunks=1]")
		h.waitCount("status:turn_ended", 2)
		d := statusDetails(h.events(), StatusTurnEnded)
		if d[0]["stopReason"] != "end_turn" || d[1]["stopReason"] != "error" || !strings.Contains(d[1]["reason"].(string), "could not be sent") {
			t.Fatalf("turn ends %v", d)
		}
		h.sb.FailPosts(0)
		a.prompt(t, "three [chunks=1]")
		h.waitCount("status:turn_ended", 3)
		if got := h.promptTexts(); !slices.Equal(got, []string{"one [chunks=1]", "three [chunks=1]"}) {
			t.Fatalf("the agent received %v", got)
		}
	})
}
