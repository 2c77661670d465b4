package workspace

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tandem-dev/tandem/eventlog/model"
)

// A prompt withdrawn while another turn runs never reaches the agent: the
// owner's dispatch of it is refused (as lua/append.lua refuses it) and it
// goes on with the next one. One dispatched cannot be withdrawn, and
// only its sender (or an admin) may withdraw one.
func TestFakeWithdrawnPromptNeverReachesAgent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		a := h.start("a", nodeOpts{})
		a.put(t)
		ctx := context.Background()
		first := a.prompt(t, "long [chunks=4] [delay=200ms]")
		waitFor(t, "the first turn", func() bool { return h.count("status:turn_started") == 1 })
		second := a.prompt(t, "withdraw me [chunks=1]")
		third := a.prompt(t, "keep me [chunks=1]")
		if err := a.m.Withdraw(ctx, testWS, DefaultSession, second.ID, "bob", false); !errors.Is(err, ErrNotSender) {
			t.Fatalf("withdraw by bob: %v", err)
		}
		if err := a.m.Withdraw(ctx, testWS, DefaultSession, "not-an-id", "ann", false); !errors.Is(err, ErrPromptNotFound) {
			t.Fatalf("withdraw of a malformed id: %v", err)
		}
		if err := a.m.Withdraw(ctx, testWS, DefaultSession, second.ID, "ann", false); err != nil {
			t.Fatal(err)
		}
		if err := a.m.Withdraw(ctx, testWS, DefaultSession, first.ID, "ann", false); !errors.Is(err, ErrPromptDispatched) {
			t.Fatalf("withdraw of the running prompt: %v", err)
		}
		h.waitCount("status:turn_ended", 2)
		if got := h.promptTexts(); !slices.Equal(got, []string{"long [chunks=4] [delay=200ms]", "keep me [chunks=1]"}) {
			t.Fatalf("the agent received %q", got)
		}
		if users := chatUsers(h.events()); len(users) != 2 {
			t.Fatalf("chat.user %v", users)
		}
		_, pending := h.store.inboxView(testWS)
		if len(pending) != 0 {
			t.Fatalf("inbox entries still pending: %v", pending)
		}
		// The owner's summaries on the workspace stream: the turns ran and
		// ended, and each dispatched prompt was announced.
		evs := h.store.events(testWS, model.WorkspaceStream)
		var dispatched []string
		running := 0
		for _, e := range evs {
			var b struct {
				PromptID string
				Running  bool
			}
			_ = json.Unmarshal(e.Body, &b)
			switch e.Type {
			case model.TypePromptDispatched:
				dispatched = append(dispatched, b.PromptID)
			case model.TypeSessionSummary:
				if b.Running {
					running++
				}
			}
		}
		if !slices.Equal(dispatched, []string{first.ID, third.ID}) || running == 0 {
			t.Fatalf("workspace stream: dispatched %v (want %v), %d running summaries", dispatched, []string{first.ID, third.ID}, running)
		}
		var last struct{ Running bool }
		if e := evs[len(evs)-1]; e.Type != model.TypeSessionSummary || json.Unmarshal(e.Body, &last) != nil || last.Running {
			t.Fatalf("last workspace event %s %s, want an idle summary", e.Type, e.Body)
		}
	})
}

// Each prompt reaches the agent with its speaker named in a first block,
// unless the workspace turned speakerLabels off.
func TestFakeSpeakerLabels(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		a := h.start("a", nodeOpts{})
		a.put(t)
		a.prompt(t, "labelled [chunks=1]")
		h.waitCount("status:turn_ended", 1)
		off := false
		if _, err := a.m.PutWorkspace(context.Background(), testWS, Settings{SpeakerLabels: &off}); err != nil {
			t.Fatal(err)
		}
		info, _ := a.m.GetWorkspace(context.Background(), testWS)
		if info.SpeakerLabels {
			t.Fatal("speakerLabels still on")
		}
		time.Sleep(100 * time.Millisecond) // the owner reloads its settings
		synctest.Wait()
		a.prompt(t, "plain [chunks=1]")
		h.waitCount("status:turn_ended", 2)
		p := h.sb.Prompts()
		if len(p) != 2 || p[0].Speaker() != "ann" || p[0].Blocks[0] != "[ann]" || p[1].Speaker() != "" || len(p[1].Blocks) != 1 {
			t.Fatalf("prompts %+v", p)
		}
		// A name cannot break out of its label.
		if got := SpeakerLabel("ev]il\n[x"); got != "[evil"+"x]" {
			t.Fatalf("label %q", got)
		}
	})
}
