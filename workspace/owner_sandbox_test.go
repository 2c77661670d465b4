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
)

// Three failed health checks in a row record the sandbox as unhealthy and
// ask for it to be restarted; the first success after the restart records
// the recovery, and the session works again.
func TestFakeHealthFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		release := make(chan struct{})
		sbs := &fakeSandboxes{fn: func(ctx context.Context) error {
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
			h.sb.SetHealthy(true)
			return nil
		}}
		a := h.start("a", nodeOpts{sandboxes: sbs})
		a.put(t)
		ctx := context.Background()
		a.prompt(t, "one [chunks=1]")
		h.waitCount("status:turn_ended", 1)
		checks := h.sb.HealthChecks()
		h.sb.SetHealthy(false)
		h.waitCount("status:sandbox_unhealthy", 1)
		if n := h.sb.HealthChecks() - checks; n < 3 {
			t.Fatalf("unhealthy after %d failed checks", n)
		}
		if d := statusDetails(h.events(), StatusSandboxUnhealthy); d[0]["failures"] != float64(3) {
			t.Fatalf("detail %v", d)
		}
		waitFor(t, "EnsureServer", func() bool { return sbs.count() == 1 })
		info, err := a.m.GetWorkspace(ctx, testWS)
		if err != nil || info.Status != StatusSandboxUnhealthy {
			t.Fatalf("workspace %+v %v", info, err)
		}
		time.Sleep(time.Second) // more failures ask for nothing more
		if sbs.count() != 1 || h.count("status:sandbox_unhealthy") != 1 {
			t.Fatalf("%d restarts, %d unhealthy", sbs.count(), h.count("status:sandbox_unhealthy"))
		}
		close(release)
		h.waitCount("status:sandbox_recovered", 1)
		if info, _ := a.m.GetWorkspace(ctx, testWS); info.Status != "active" {
			t.Fatalf("status %q after the recovery", info.Status)
		}
		a.prompt(t, "two [chunks=1]")
		h.waitCount("status:turn_ended", 2)
		if got := h.promptTexts(); !slices.Equal(got, []string{"one [chunks=1]", "two [chunks=1]"}) {
			t.Fatalf("the agent received %v", got)
		}
	})
}

// Without a node-managed sandbox (static), an unhealthy sandbox is
// recorded and its recovery too, with no restart asked.
func TestFakeHealthFailuresStatic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		a := h.start("a", nodeOpts{})
		a.put(t)
		h.openSession(a)
		h.sb.Hang() // a server that stops answering
		h.waitCount("status:sandbox_unhealthy", 1)
		h.sb.Unhang()
		h.waitCount("status:sandbox_recovered", 1)
		a.prompt(t, "after [chunks=1]")
		h.waitCount("status:turn_ended", 1)
	})
}

// A server that lost the connection (restarted) makes the owner restore
// the session: a new connection and agent session, a session_restored
// status, and the history prepended to the next prompt.
func TestFakeRestore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		a := h.start("a", nodeOpts{})
		a.put(t)
		ctx := context.Background()
		a.prompt(t, "first [chunks=2]")
		h.waitCount("status:turn_ended", 1)
		before, _ := a.m.GetSession(ctx, testWS, DefaultSession)
		h.sb.Restart()
		h.waitCount("status:session_restored", 1)
		a.prompt(t, "second [chunks=1]")
		h.waitCount("status:turn_ended", 2)
		p := h.sb.Prompts()
		if len(p) != 2 {
			t.Fatalf("the agent received %v", h.promptTexts())
		}
		if len(p[0].Blocks) != 2 || len(p[1].Blocks) != 3 || p[0].Speaker() != "ann" || p[1].Speaker() != "ann" {
			t.Fatalf("blocks %q then %q", p[0].Blocks, p[1].Blocks)
		}
		hist := p[1].Blocks[1]
		if !strings.HasPrefix(hist, "Conversation so far") || !strings.Contains(hist, "ann: first [chunks=2]") || !strings.Contains(hist, "assistant: You said: first") {
			t.Fatalf("history %q", hist)
		}
		if p[1].Conn == p[0].Conn || p[1].SessionID == p[0].SessionID {
			t.Fatalf("not a new connection and agent session: %+v", p)
		}
		after, _ := a.m.GetSession(ctx, testWS, DefaultSession)
		if after.AgentSessionID != p[1].SessionID || after.LastConnectionID != p[1].Conn || after.AgentSessionID == before.AgentSessionID {
			t.Fatalf("record %+v (before %+v)", after, before)
		}
		// Only the prompt after the restore carries the history.
		a.prompt(t, "third [chunks=1]")
		h.waitCount("status:turn_ended", 3)
		if p := h.sb.Prompts(); len(p[2].Blocks) != 2 || p[2].Speaker() != "ann" {
			t.Fatalf("third prompt %q", p[2].Blocks)
		}
		checkAgentIDs(t, h.events())
	})
}

// A server restarted mid-turn loses the turn with its connection: the
// turn ends with an error, and the prompt is not sent again.
func TestFakeRestoreMidTurn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		a := h.start("a", nodeOpts{})
		a.put(t)
		a.prompt(t, "wait [hang]")
		waitFor(t, "the prompt at the agent", func() bool { return len(h.sb.Prompts()) == 1 })
		h.sb.Restart()
		h.waitCount("status:session_restored", 1)
		h.waitCount("status:turn_ended", 1)
		if d := statusDetails(h.events(), StatusTurnEnded); d[0]["stopReason"] != "error" {
			t.Fatalf("turn_ended %v", d)
		}
		time.Sleep(time.Second)
		if n := len(h.sb.Prompts()); n != 1 {
			t.Fatalf("the prompt was sent %d times", n)
		}
		a.prompt(t, "next [chunks=1]")
		h.waitCount("status:turn_ended", 2)
	})
}

// An owner with no turn, no pending prompt and no subscriber lets the
// workspace go after IdleTimeout: its connections are deleted, its lock
// unlocked, its owner record and active mark removed. The next prompt
// takes it again and restores the session.
func TestFakeIdleRelease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		a := h.start("a", nodeOpts{cfg: func(c *Config) { c.IdleTimeout = 200 * time.Millisecond }})
		a.put(t)
		a.prompt(t, "hi [chunks=1]")
		h.waitCount("status:turn_ended", 1)
		conn := h.store.state(testWS, DefaultSession)["conn"]
		waitFor(t, "the workspace let go", func() bool { return !a.owns() })
		if h.store.lockHolder(testWS) != "" || h.store.ownerRecord(testWS) != nil || h.store.isActive(testWS) {
			t.Fatalf("lock %q, owner %v, active %v", h.store.lockHolder(testWS), h.store.ownerRecord(testWS), h.store.isActive(testWS))
		}
		if !slices.Contains(h.sb.Deleted(), conn) || len(h.sb.Connections()) != 0 {
			t.Fatalf("deleted %v, left %v", h.sb.Deleted(), h.sb.Connections())
		}
		if c := h.store.state(testWS, DefaultSession)["conn"]; c != "" {
			t.Fatalf("state conn %q after release", c)
		}
		time.Sleep(2 * time.Second)
		if a.owns() {
			t.Fatal("taken again with nothing to do")
		}
		a.prompt(t, "again [chunks=1]")
		h.waitCount("status:turn_ended", 2)
		if h.count("status:session_restored") != 1 {
			t.Fatalf("stream %v", describeAll(h.events()))
		}
		if p := h.sb.Prompts(); len(p) != 2 || !strings.HasPrefix(p[1].Blocks[1], "Conversation so far") {
			t.Fatalf("prompts %+v", p)
		}
		if o := h.store.ownerRecord(testWS); o["epoch"] != "2" {
			t.Fatalf("owner record %v", o)
		}
	})
}

// Presence: the node reports its stream clients, every node aggregates
// the reports, its clients get presence events, and a workspace with
// subscribers is owned (and kept) with no prompt; when they leave, it is
// let go.
func TestFakePresence(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		aud := newFakeAudience()
		a := h.start("a", nodeOpts{audience: aud, cfg: func(c *Config) { c.IdleTimeout = 200 * time.Millisecond }})
		b := h.start("b", nodeOpts{})
		a.put(t)
		ctx := context.Background()
		aud.set(testWS, map[string]int{"ann": 2, "bob": 1})
		waitFor(t, "the presence", func() bool {
			p, err := b.m.GetPresence(ctx, testWS)
			return err == nil && len(p.Users) == 2
		})
		p, _ := b.m.GetPresence(ctx, testWS)
		if p.Users[0] != (PresentUser{UserID: "ann", Connections: 2}) || p.Users[1] != (PresentUser{UserID: "bob", Connections: 1}) {
			t.Fatalf("presence %+v", p)
		}
		waitFor(t, "a presence event", func() bool { return strings.Contains(aud.broadcasts(), `"userId":"ann"`) })
		waitFor(t, "node a to own the followed workspace", a.owns)
		time.Sleep(2 * time.Second)
		if !a.owns() {
			t.Fatal("a workspace with subscribers was let go")
		}
		aud.set(testWS, nil)
		waitFor(t, "the presence gone", func() bool {
			p, err := b.m.GetPresence(ctx, testWS)
			return err == nil && len(p.Users) == 0
		})
		waitFor(t, "the workspace let go", func() bool { return !a.owns() && h.store.lockHolder(testWS) == "" })
		if _, err := b.m.GetPresence(ctx, "nope"); err == nil {
			t.Fatal("presence of an unknown workspace")
		}
	})
}

// New settings reach the running owner: a new sandbox URL gets a new
// client (here the same server under another address would; an invalid
// one is refused before).
func TestFakeSettingsReload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		a := h.start("a", nodeOpts{})
		a.put(t)
		ctx := context.Background()
		a.prompt(t, "one [chunks=1]")
		h.waitCount("status:turn_ended", 1)
		if _, err := a.m.PutWorkspace(ctx, testWS, Settings{Sandbox: Sandbox{BaseURL: h.sb.URL + "/", SandboxID: "sb-2"}, Agent: "claude"}); err != nil {
			t.Fatal(err)
		}
		info, err := a.m.GetWorkspace(ctx, testWS)
		if err != nil || info.Agent != "claude" || info.SandboxID != "sb-2" {
			t.Fatalf("info %+v %v", info, err)
		}
		time.Sleep(100 * time.Millisecond)
		a.prompt(t, "two [chunks=1]")
		h.waitCount("status:turn_ended", 2)
	})
}

// A prompt accepted elsewhere right after the idle owner removed the
// active mark (before that node marks it again) is found by the owner's
// last inbox check: the owner stays and carries it out.
func TestFakeIdlePromptDuringRelease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		a := h.start("a", nodeOpts{cfg: func(c *Config) { c.IdleTimeout = 200 * time.Millisecond }})
		a.put(t)
		a.prompt(t, "one [chunks=1]")
		h.waitCount("status:turn_ended", 1)
		var fired atomic.Bool
		a.store.hooks(nil, func(c *memCall) error {
			if c.Method == "UnmarkActive" && fired.CompareAndSwap(false, true) {
				_, err := h.store.peer("x").Enqueue(context.Background(), testWS, model.Enqueue{Kind: cmdPrompt, Session: DefaultSession, User: "bob", Text: "late [chunks=1]"})
				return err
			}
			return nil
		})
		h.waitCount("status:turn_ended", 2)
		if got := h.promptTexts(); !slices.Equal(got, []string{"one [chunks=1]", "late [chunks=1]"}) {
			t.Fatalf("the agent received %v", got)
		}
		if h.count("status:session_restored") != 0 {
			t.Fatal("the owner let go in between")
		}
		waitFor(t, "the workspace let go at last", func() bool { return !a.owns() && !h.store.isActive(testWS) })
	})
}
