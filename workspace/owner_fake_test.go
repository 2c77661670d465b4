package workspace

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"testing/synctest"
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
		want := []string{TypeChatUser, "status:turn_started", "client:session/prompt",
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
