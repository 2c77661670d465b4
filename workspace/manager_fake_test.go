package workspace

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tandem-dev/tandem/eventlog/model"
)

// The API any node serves, on the in-memory store: validation, records,
// idempotency, the prompt rate. No owner is needed for these.
func TestFakeManagerAPI(t *testing.T) {
	ctx := context.Background()
	newM := func(cfg Config) (*Manager, *memStore) {
		st := newMemStore()
		cfg.NodeID = "n"
		if cfg.DefaultSandbox.BaseURL == "" {
			cfg.DefaultSandbox = Sandbox{BaseURL: "http://sandbox.test:2468"}
		}
		return New(st, nil, nil, nil, cfg), st
	}
	t.Run("ErrInvalid", func(t *testing.T) {
		m, _ := newM(Config{SandboxAllowed: func(u *url.URL) bool { return u.Hostname() != "evil.test" }})
		for _, s := range []Settings{
			{Agent: "Bad Agent"},
			{Sandbox: Sandbox{BaseURL: "ftp://x"}},
			{Sandbox: Sandbox{BaseURL: "http://u:p@x"}},
			{Sandbox: Sandbox{BaseURL: "http://x?q=1"}},
			{Sandbox: Sandbox{BaseURL: "http://x", Token: "a\nb"}},
			{Sandbox: Sandbox{BaseURL: "http://x", SandboxID: strings.Repeat("x", 129)}},
		} {
			if _, err := m.PutWorkspace(ctx, "w", s); !errors.Is(err, ErrInvalid) {
				t.Errorf("%+v: %v", s, err)
			}
		}
		if _, err := m.PutWorkspace(ctx, "w", Settings{Sandbox: Sandbox{BaseURL: "http://evil.test"}}); !errors.Is(err, ErrSandboxNotAllowed) {
			t.Errorf("not allowed: %v", err)
		}
		if _, _, err := m.CreateSession(ctx, "w", "s", "Bad Agent"); !errors.Is(err, ErrInvalid) {
			t.Errorf("agent: %v", err)
		}
	})
	t.Run("OK", func(t *testing.T) {
		m, st := newM(Config{})
		if err := m.Exists(ctx, "w"); !errors.Is(err, ErrWorkspaceNotFound) {
			t.Fatalf("exists: %v", err)
		}
		if created, err := m.PutWorkspace(ctx, "w", Settings{Sandbox: Sandbox{BaseURL: "http://sb.test/", Token: "tok", SandboxID: "sb1"}}); err != nil || !created {
			t.Fatalf("put: %v %v", created, err)
		}
		if created, err := m.PutWorkspace(ctx, "w", Settings{}); err != nil || created {
			t.Fatalf("put again: %v %v", created, err)
		}
		if err := m.Exists(ctx, "w"); err != nil {
			t.Fatal(err)
		}
		info, err := m.GetWorkspace(ctx, "w")
		if err != nil || info.Status != "idle" || info.Owner != nil || info.Agent != "mock" || len(info.Sessions) != 0 || info.Sessions == nil {
			t.Fatalf("info %+v %v", info, err)
		}
		for i, id := range []string{"s1", "s2", "s3"} {
			rec, created, err := m.CreateSession(ctx, "w", id, "")
			if err != nil || !created || rec.ID != id || rec.Agent != "mock" {
				t.Fatalf("create %s: %+v %v %v", id, rec, created, err)
			}
			if i == 0 {
				if _, created, err := m.CreateSession(ctx, "w", id, "claude"); err != nil || created {
					t.Fatalf("resume: %v %v", created, err)
				}
			}
			time.Sleep(2 * time.Millisecond) // distinct createdAt
		}
		var got []string
		cursor := ""
		for pages := 0; ; pages++ {
			recs, next, err := m.ListSessions(ctx, "w", cursor, 2)
			if err != nil || pages > 3 {
				t.Fatalf("list: %v", err)
			}
			for _, r := range recs {
				got = append(got, r.ID)
			}
			if next == "" {
				break
			}
			cursor = next
		}
		if !slices.Equal(got, []string{"s1", "s2", "s3"}) {
			t.Fatalf("listed %v", got)
		}
		if _, _, err := m.ListSessions(ctx, "w", "garbage", 2); !errors.Is(err, ErrInvalid) {
			t.Fatalf("bad cursor: %v", err)
		}
		if _, _, err := m.ListSessions(ctx, "nope", "", 2); !errors.Is(err, ErrWorkspaceNotFound) {
			t.Fatalf("unknown workspace: %v", err)
		}
		if _, err := m.GetSession(ctx, "w", "nope"); !errors.Is(err, ErrSessionNotFound) {
			t.Fatalf("get session: %v", err)
		}
		if _, err := m.GetSession(ctx, "nope", "s1"); !errors.Is(err, ErrWorkspaceNotFound) {
			t.Fatalf("get session of an unknown workspace: %v", err)
		}
		if _, err := m.Prompt(ctx, "w", "nope", "ann", "hi", ""); !errors.Is(err, ErrSessionNotFound) {
			t.Fatalf("prompt to an unknown session: %v", err)
		}
		for _, text := range []string{" ", strings.Repeat("x", MaxPromptBytes+1)} {
			if _, err := m.Prompt(ctx, "w", "s1", "ann", text, ""); !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("prompt %d bytes: %v", len(text), err)
			}
		}
		if _, err := m.Prompt(ctx, "w", "s1", "ann", "hi", strings.Repeat("k", 257)); !errors.Is(err, ErrInvalid) {
			t.Fatalf("long key: %v", err)
		}
		first, err := m.Prompt(ctx, "w", "s1", "ann", "hi", "key-1")
		if err != nil || first.Duplicate {
			t.Fatalf("first: %+v %v", first, err)
		}
		again, err := m.Prompt(ctx, "w", "s1", "ann", "hi", "key-1")
		if err != nil || !again.Duplicate || again.ID != first.ID {
			t.Fatalf("again: %+v %v", again, err)
		}
		other, _ := m.Prompt(ctx, "w", "s1", "bob", "hi", "key-1")
		if other.Duplicate {
			t.Fatal("another user's key counted as a duplicate")
		}
		entries, _ := st.inboxView("w")
		if len(entries) != 6 { // four opens, two prompts
			t.Fatalf("inbox %+v", entries)
		}
		if !st.isActive("w") {
			t.Fatal("not marked active")
		}
		if n, err := m.InboxDepth(ctx); err != nil || n != 0 {
			t.Fatalf("depth of owned workspaces: %d %v", n, err)
		}
	})
	t.Run("ErrRateLimited", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			m, _ := newM(Config{PromptRate: 1, PromptBurst: 2})
			if _, err := m.PutWorkspace(ctx, "w", Settings{}); err != nil {
				t.Fatal(err)
			}
			for i := range 2 {
				if _, err := m.Prompt(ctx, "w", DefaultSession, "ann", "hi", ""); err != nil {
					t.Fatalf("prompt %d: %v", i, err)
				}
			}
			_, err := m.Prompt(ctx, "w", DefaultSession, "ann", "hi", "")
			var rl *RateLimitError
			if !errors.As(err, &rl) || !errors.Is(err, ErrRateLimited) || rl.RetryAfter != time.Second || !strings.Contains(err.Error(), "retry after") {
				t.Fatalf("third: %v", err)
			}
			if _, err := m.Prompt(ctx, "w", DefaultSession, "bob", "hi", ""); err != nil {
				t.Fatalf("another user: %v", err)
			}
			time.Sleep(time.Second)
			if _, err := m.Prompt(ctx, "w", DefaultSession, "ann", "hi", ""); err != nil {
				t.Fatalf("after a second: %v", err)
			}
		})
	})
	t.Run("ErrUnavailable", func(t *testing.T) {
		m, st := newM(Config{})
		st.failNext("Enqueue", 1)
		if _, err := m.PutWorkspace(ctx, "w", Settings{}); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Prompt(ctx, "w", DefaultSession, "ann", "hi", ""); !errors.Is(err, model.ErrUnavailable) {
			t.Fatalf("prompt: %v", err)
		}
		st.failNext("Workspace", 1)
		if _, err := m.GetWorkspace(ctx, "w"); !errors.Is(err, model.ErrUnavailable) {
			t.Fatalf("get: %v", err)
		}
	})
	t.Run("Validate", func(t *testing.T) {
		for _, c := range []Config{{}, {NodeID: "n", LockTTL: time.Millisecond}, {NodeID: "n", HealthFailures: -1}} {
			if c.Validate() == nil {
				t.Errorf("%+v validated", c)
			}
		}
		if err := (Config{NodeID: "n"}).Validate(); err != nil {
			t.Fatal(err)
		}
	})
}

// recObserver counts what the owners report.
type recObserver struct {
	mu     sync.Mutex
	counts map[string]int
}

func (r *recObserver) add(k string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.counts[k]++
}
func (r *recObserver) get(k string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[k]
}
func (r *recObserver) Owned(d int)      { r.add("owned" + map[bool]string{true: "+", false: "-"}[d > 0]) }
func (r *recObserver) TookOver()        { r.add("took") }
func (r *recObserver) TakeoverStarted() { r.add("takeover:started") }
func (r *recObserver) TakeoverFinished(ok bool) {
	r.add("takeover:" + map[bool]string{true: "ok", false: "failed"}[ok])
}
func (r *recObserver) Released(reason string)      { r.add("released:" + reason) }
func (r *recObserver) PromptAccepted()             { r.add("accepted") }
func (r *recObserver) TurnEnded(stopReason string) { r.add("turn:" + stopReason) }
func (r *recObserver) HealthCheckFailed()          { r.add("healthfail") }
func (r *recObserver) SandboxRestarted(ok bool)    { r.add("restarted") }

// The observer hears of ownership, prompts and turns; a hold (the bench
// route's) appends with the owner's epoch and keeps it from going idle.
func TestFakeObserverAndBench(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		a := h.start("a", nodeOpts{cfg: func(c *Config) { c.IdleTimeout = 500 * time.Millisecond }})
		obs := &recObserver{counts: map[string]int{}}
		a.m.SetObserver(obs)
		a.put(t)
		ctx := context.Background()
		a.prompt(t, "one [chunks=1]")
		h.waitCount("status:turn_ended", 1)
		// A hold (the bench route's) gives the owner's epoch and keeps the
		// workspace from going idle until it is released.
		epoch, release, err := a.m.Hold(ctx, testWS)
		if err != nil || epoch != 1 {
			t.Fatalf("hold: epoch %d, %v", epoch, err)
		}
		if _, err := h.store.Append(ctx, testWS, "bench", epoch, model.Record{Type: TypeSessionEvent, Body: []byte(`{"sender":"agent"}`)}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second) // six idle timeouts
		if !a.owns() {
			t.Fatal("a held workspace was let go")
		}
		release()
		if d, err := a.m.InboxDepth(ctx); err != nil || d != 0 {
			t.Fatalf("depth %d %v", d, err)
		}
		a.m.Subscribed(testWS)
		waitFor(t, "the workspace let go", func() bool { return !a.owns() })
		if _, _, err := a.m.Hold(ctx, "nope"); !errors.Is(err, ErrWorkspaceNotFound) {
			t.Fatalf("hold of an unknown workspace: %v", err)
		}
		for _, k := range []string{"owned+", "owned-", "took", "takeover:started", "takeover:ok", "released:idle", "accepted", "turn:end_turn"} {
			if obs.get(k) != 1 {
				t.Errorf("%s: %d", k, obs.get(k))
			}
		}
		// Fenced by another writer, an append with the held epoch fails,
		// and the owner stops at its own next fenced call.
		epoch, release, err = a.m.Hold(ctx, testWS)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.store.peer("x").AcquireEpoch(ctx, testWS); err != nil {
			t.Fatal(err)
		}
		if _, err := h.store.Append(ctx, testWS, "bench", epoch, model.Record{Type: TypeSessionEvent, Body: []byte(`{"sender":"agent"}`)}); !errors.Is(err, model.ErrStaleWriter) {
			t.Fatalf("stale append: %v", err)
		}
		release()
		waitFor(t, "the lost workspace let go", func() bool { return !a.owns() })
		if obs.get("released:lost") != 1 {
			t.Fatalf("released lost %d", obs.get("released:lost"))
		}
	})
}

// An entry whose handling cannot be decided (Redis does not answer the
// search for its dispatch) waits in the backlog, and entries after it
// wait behind it: they are carried out in inbox order once Redis answers.
func TestFakeBacklogKeepsOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		ids := h.seedEarlierOwner([]string{"older [chunks=1]", "newer [chunks=1]"}, []int{1}, []int{1})
		h.store.failNext("Before", 3)
		a := h.start("a", nodeOpts{})
		waitFor(t, "node a to own", a.owns)
		third := a.prompt(t, "third [chunks=1]")
		h.waitCount("status:turn_ended", 3)
		if got := h.promptTexts(); !slices.Equal(got, []string{"older [chunks=1]", "third [chunks=1]"}) {
			t.Fatalf("the agent received %v", got)
		}
		if got := chatUsers(h.events()); !slices.Equal(got, []string{ids[1], ids[0], third.ID}) {
			t.Fatalf("chat.user %v", got)
		}
		if h.store.callCount("Before") < 4 {
			t.Fatalf("Before called %d times", h.store.callCount("Before"))
		}
	})
}

// Failures while taking a workspace (the epoch, the owner record, the
// inbox group, the session list) give it up cleanly; it is taken on a
// later try. Those after the lock was won are failed takeovers to the
// observer, and every takeover started ends.
func TestFakeTakeFails(t *testing.T) {
	afterLock := map[string]bool{"AcquireEpoch": true, "SetOwner": true, "EnsureInbox": true, "ListSessions": true, "ClaimInbox": true}
	for _, method := range []string{"AcquireEpoch", "SetOwner", "EnsureInbox", "ListSessions", "ClaimInbox", "WorkspaceMeta", "TryLock", "DueActive"} {
		t.Run(method, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t)
				a := h.start("a", nodeOpts{})
				obs := &recObserver{counts: map[string]int{}}
				a.m.SetObserver(obs)
				a.put(t)
				h.store.failNext(method, 3)
				// Accepted elsewhere (no Demand here): the poller finds it.
				ctx := context.Background()
				if _, err := h.store.peer("x").Enqueue(ctx, testWS, model.Enqueue{Kind: cmdPrompt, Session: DefaultSession, User: "ann", Text: "hi [chunks=1]", Create: true}); err != nil {
					t.Fatal(err)
				}
				_ = h.store.peer("x").MarkActive(ctx, testWS)
				h.waitCount("status:turn_ended", 1)
				if h.store.callCount(method) < 4 {
					t.Fatalf("%s called %d times", method, h.store.callCount(method))
				}
				want := 0
				if afterLock[method] {
					want = 3
				}
				started, ok, failed := obs.get("takeover:started"), obs.get("takeover:ok"), obs.get("takeover:failed")
				if failed != want || ok != 1 || started != ok+failed {
					t.Errorf("takeovers: %d started, %d ok, %d failed; want %d failed, 1 ok", started, ok, failed, want)
				}
			})
		})
	}
}
