package workspace

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tandem-dev/tandem/eventlog/model"
)

// permissionEvents returns the bodies of the stream's events of type typ.
func permissionEvents(evs []model.Event, typ string) []map[string]any {
	var out []map[string]any
	for _, ev := range evs {
		if ev.Type == typ {
			var b map[string]any
			_ = json.Unmarshal(ev.Body, &b)
			out = append(out, b)
		}
	}
	return out
}

// waitRequested waits for the n-th permission.requested and returns its
// requestId.
func (h *harness) waitRequested(n int) string {
	h.t.Helper()
	h.waitCount(TypePermissionRequested, n)
	return permissionEvents(h.events(), TypePermissionRequested)[n-1]["requestId"].(string)
}

// agentReplies returns the outcomes of the replies the agent received.
func (h *harness) agentReplies() []string {
	var out []string
	for _, m := range h.sb.Received("") {
		var r struct {
			Result struct {
				Outcome struct{ Outcome, OptionID string }
			}
		}
		_ = json.Unmarshal(m.Raw, &r)
		out = append(out, r.Result.Outcome.Outcome+":"+r.Result.Outcome.OptionID)
	}
	return out
}

// The agent asks; nothing is answered until someone does, through any
// node; the first answer wins and reaches the agent, exactly that option,
// once; the stream holds the request with the agent's envelope and the
// resolution with who answered; later answers change nothing.
func TestFakePermissionAnsweredThroughAnotherNode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		a := h.start("a", nodeOpts{})
		b := h.start("b", nodeOpts{})
		a.put(t)
		ctx := context.Background()
		acc := a.prompt(t, "write it [permission] [chunks=1]")
		rid := h.waitRequested(1)
		time.Sleep(3 * time.Second)
		if r := h.agentReplies(); len(r) != 0 || h.count("status:turn_ended") != 0 {
			t.Fatalf("answered before anyone did: %v", r)
		}
		front := b
		if b.owns() {
			front = a
		}
		if _, err := front.m.AnswerPermission(ctx, testWS, DefaultSession, rid, "bob", Answer{OptionID: "nope"}); !errors.Is(err, ErrInvalidOption) {
			t.Fatalf("an option not offered: %v", err)
		}
		if _, err := front.m.AnswerPermission(ctx, testWS, DefaultSession, "perm-0000", "bob", Answer{OptionID: "allow-once"}); !errors.Is(err, ErrPermissionNotFound) {
			t.Fatalf("an unknown request: %v", err)
		}
		if _, err := front.m.AnswerPermission(ctx, testWS, DefaultSession, rid, "bob", Answer{}); !errors.Is(err, ErrInvalid) {
			t.Fatalf("no answer: %v", err)
		}
		res, err := front.m.AnswerPermission(ctx, testWS, DefaultSession, rid, "bob", Answer{OptionID: "allow-always"})
		if err != nil || res.By != "bob" || res.OptionID != "allow-always" || res.Outcome != OutcomeSelected {
			t.Fatalf("answer: %+v, %v", res, err)
		}
		_, err = a.m.AnswerPermission(ctx, testWS, DefaultSession, rid, "ann", Answer{Cancelled: true})
		var already *AlreadyResolvedError
		if !errors.As(err, &already) || already.Resolution.By != "bob" || already.Resolution.OptionID != "allow-always" {
			t.Fatalf("second answer: %v", err)
		}
		h.waitCount("status:turn_ended", 1)
		time.Sleep(2 * time.Second)
		if r := h.agentReplies(); len(r) != 1 || r[0] != "selected:allow-always" {
			t.Fatalf("the agent got %v", r)
		}
		evs := h.events()
		checkIndexes(t, evs)
		got := describeAll(evs)
		i := strings.Index(strings.Join(got, " "), "agent:session/request_permission permission.requested")
		if i < 0 {
			t.Fatalf("no request with its envelope in %v", got)
		}
		req := permissionEvents(evs, TypePermissionRequested)
		if len(req) != 1 || req[0]["expiresAt"].(float64)-req[0]["requestedAt"].(float64) != float64(10*time.Minute/time.Millisecond) || len(req[0]["options"].([]any)) != 3 {
			t.Fatalf("permission.requested %v", req)
		}
		resolved := permissionEvents(evs, TypePermissionResolved)
		if len(resolved) != 1 || resolved[0]["by"] != "bob" || resolved[0]["optionId"] != "allow-always" || resolved[0]["requestId"] != rid {
			t.Fatalf("permission.resolved %v", resolved)
		}
		if d := statusDetails(evs, StatusTurnEnded); d[0]["stopReason"] != "end_turn" || d[0]["promptId"] != acc.ID {
			t.Fatalf("turn_ended %v", d)
		}
		if !strings.Contains(agentText(evs), "permission: allow-always") {
			t.Fatalf("the agent went on with %q", agentText(evs))
		}
		if _, pending := h.store.inboxView(testWS); len(pending) != 0 {
			t.Fatalf("inbox entries pending: %v", pending)
		}
	})
}

// agentText is the agent's chunks joined.
func agentText(evs []model.Event) string {
	var b strings.Builder
	for _, ev := range evs {
		b.WriteString(chunkText(ev.Body))
	}
	return b.String()
}

// The workspace's policy answers for the room: allow picks allow_once,
// reject picks reject_once, both recorded by "policy"; with ask, nobody
// answering means cancelled by "timeout".
func TestFakePermissionPolicies(t *testing.T) {
	for _, tc := range []struct{ policy, by, outcome, option, stop string }{
		{PolicyAllow, ByPolicy, OutcomeSelected, "allow-once", "end_turn"},
		{PolicyReject, ByPolicy, OutcomeSelected, "reject-once", "end_turn"},
		{PolicyAsk, ByTimeout, OutcomeCancelled, "", "cancelled"},
	} {
		t.Run(tc.policy, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t)
				a := h.start("a", nodeOpts{cfg: func(c *Config) { c.PermissionTimeout = 5 * time.Second }})
				if _, err := a.m.PutWorkspace(context.Background(), testWS, Settings{PermissionPolicy: tc.policy}); err != nil {
					t.Fatal(err)
				}
				info, _ := a.m.GetWorkspace(context.Background(), testWS)
				if info.PermissionPolicy != tc.policy {
					t.Fatalf("policy %q", info.PermissionPolicy)
				}
				start := time.Now()
				a.prompt(t, "[permission] [chunks=1]")
				h.waitCount("status:turn_ended", 1)
				evs := h.events()
				r := permissionEvents(evs, TypePermissionResolved)
				if len(r) != 1 || r[0]["by"] != tc.by || r[0]["outcome"] != tc.outcome || (tc.option != "" && r[0]["optionId"] != tc.option) {
					t.Fatalf("permission.resolved %v", r)
				}
				if d := statusDetails(evs, StatusTurnEnded); d[0]["stopReason"] != tc.stop {
					t.Fatalf("turn_ended %v", d)
				}
				took := time.Since(start)
				if tc.by == ByTimeout && (took < 5*time.Second || took > 8*time.Second) {
					t.Fatalf("timed out after %v, want 5s", took)
				}
				if tc.by == ByPolicy && took > 3*time.Second {
					t.Fatalf("the policy answered after %v", took)
				}
			})
		})
	}
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		a := h.start("a", nodeOpts{})
		if _, err := a.m.PutWorkspace(context.Background(), testWS, Settings{PermissionPolicy: "sometimes"}); !errors.Is(err, ErrInvalid) {
			t.Fatalf("policy sometimes: %v", err)
		}
	})
}

// The owner dies with a request open: the next owner re-attaches to the
// same connection, the request is answered through it, and the agent gets
// exactly one reply.
func TestFakePermissionAcrossTakeover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		a := h.start("a", nodeOpts{})
		a.put(t)
		a.prompt(t, "[permission] [chunks=2]")
		rid := h.waitRequested(1)
		a.store.pause()
		h.store.expireLock(testWS)
		b := h.start("b", nodeOpts{})
		waitFor(t, "b to own the workspace", b.owns)
		h.waitCount("status:owner_changed", 1)
		if _, err := b.m.AnswerPermission(context.Background(), testWS, DefaultSession, rid, "carol", Answer{OptionID: "allow-once"}); err != nil {
			t.Fatal(err)
		}
		h.waitCount("status:turn_ended", 1)
		a.store.resume()
		time.Sleep(3 * time.Second)
		if r := h.agentReplies(); len(r) != 1 || r[0] != "selected:allow-once" {
			t.Fatalf("the agent got %v", r)
		}
		evs := h.events()
		checkIndexes(t, evs)
		checkAgentIDs(t, evs)
		if n := len(h.sb.Connections()); n != 1 {
			t.Fatalf("%d connections: the session was not re-attached", n)
		}
		r := permissionEvents(evs, TypePermissionResolved)
		if len(r) != 1 || r[0]["by"] != "carol" {
			t.Fatalf("permission.resolved %v", r)
		}
		if d := statusDetails(evs, StatusTurnEnded); d[0]["stopReason"] != "end_turn" {
			t.Fatalf("turn_ended %v", d)
		}
	})
}

// The sandbox loses the connection while a request is open: the session
// is restored, the request is resolved cancelled by Tandem with the
// reason, and the turn ends; a late answer finds it resolved.
func TestFakePermissionConnectionLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		a := h.start("a", nodeOpts{})
		a.put(t)
		a.prompt(t, "[permission] [chunks=1]")
		rid := h.waitRequested(1)
		start := time.Now()
		h.sb.Restart()
		h.waitCount("status:turn_ended", 1)
		h.waitCount(TypePermissionResolved, 1)
		if took := time.Since(start); took > 10*time.Second {
			t.Fatalf("the turn ended %v after the connection was lost", took)
		}
		evs := h.events()
		r := permissionEvents(evs, TypePermissionResolved)
		if r[0]["by"] != ByTandem || r[0]["outcome"] != OutcomeCancelled || r[0]["reason"] == nil || r[0]["delivered"] != false {
			t.Fatalf("permission.resolved %v", r)
		}
		if d := statusDetails(evs, StatusTurnEnded); d[0]["stopReason"] != "error" {
			t.Fatalf("turn_ended %v", d)
		}
		if _, err := a.m.AnswerPermission(context.Background(), testWS, DefaultSession, rid, "ann", Answer{OptionID: "allow-once"}); !errors.Is(err, ErrPermissionResolved) {
			t.Fatalf("late answer: %v", err)
		}
		if r := h.agentReplies(); len(r) != 0 {
			t.Fatalf("replies %v", r)
		}
	})
}

// Cancelling the turn answers its open request cancelled, as ACP asks.
func TestFakePermissionCancelledWithTheTurn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		a := h.start("a", nodeOpts{})
		a.put(t)
		a.prompt(t, "[permission] [chunks=1]")
		h.waitRequested(1)
		if _, err := a.m.Cancel(context.Background(), testWS, DefaultSession, "dan"); err != nil {
			t.Fatal(err)
		}
		h.waitCount("status:turn_ended", 1)
		r := permissionEvents(h.events(), TypePermissionResolved)
		if len(r) != 1 || r[0]["by"] != "dan" || r[0]["outcome"] != OutcomeCancelled {
			t.Fatalf("permission.resolved %v", r)
		}
		if d := statusDetails(h.events(), StatusTurnEnded); d[0]["stopReason"] != "cancelled" {
			t.Fatalf("turn_ended %v", d)
		}
	})
}
