package workspace

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"testing/synctest"
)

// A session created with a mode gets it; a change asked for through
// another node reaches the agent, is in the record and in the stream with
// who asked; a mode the agent does not offer is refused; after a restore
// the wanted mode is applied again to the new agent session.
func TestFakeModeChangedAndReappliedAfterRestore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		a := h.start("a", nodeOpts{})
		b := h.start("b", nodeOpts{})
		a.put(t)
		ctx := context.Background()
		if _, _, err := a.m.CreateSessionWith(ctx, testWS, DefaultSession, "ann", SessionOptions{Mode: "code", SessionInit: &SessionInit{Cwd: "/srv"}}); err != nil {
			t.Fatal(err)
		}
		h.waitCount("status:"+StatusModeChanged, 1)
		rec, _ := b.m.GetSession(ctx, testWS, DefaultSession)
		if currentMode(rec.Modes) != "code" {
			t.Fatalf("modes %s", rec.Modes)
		}
		var init struct{ Cwd string }
		if json.Unmarshal(rec.SessionInit, &init) != nil || init.Cwd != "/srv" {
			t.Fatalf("sessionInit %s", rec.SessionInit)
		}
		if _, err := b.m.ConfigureSession(ctx, testWS, DefaultSession, "bob", SessionChange{Mode: "yolo"}); !errors.Is(err, ErrInvalid) {
			t.Fatalf("a mode not offered: %v", err)
		}
		if _, err := b.m.ConfigureSession(ctx, testWS, DefaultSession, "bob", SessionChange{}); !errors.Is(err, ErrInvalid) {
			t.Fatalf("no change: %v", err)
		}
		if _, err := b.m.ConfigureSession(ctx, testWS, DefaultSession, "bob", SessionChange{Mode: "ask"}); err != nil {
			t.Fatal(err)
		}
		h.waitCount("status:"+StatusModeChanged, 2)
		d := statusDetails(h.events(), StatusModeChanged)
		if d[0]["mode"] != "code" || d[0]["by"] != "ann" || d[1]["mode"] != "ask" || d[1]["by"] != "bob" {
			t.Fatalf("mode_changed %v", d)
		}
		rec, _ = a.m.GetSession(ctx, testWS, DefaultSession)
		if currentMode(rec.Modes) != "ask" {
			t.Fatalf("modes %s", rec.Modes)
		}
		if _, err := a.m.ConfigureSession(ctx, testWS, DefaultSession, "carol", SessionChange{Mode: "code"}); err != nil {
			t.Fatal(err)
		}
		h.waitCount("status:"+StatusModeChanged, 3)

		h.sb.Restart()
		h.sb.SetHealthy(true)
		a.prompt(t, "after the restore [chunks=1]")
		h.waitCount("status:"+StatusSessionRestored, 1)
		h.waitCount("status:"+StatusModeChanged, 4)
		d = statusDetails(h.events(), StatusModeChanged)
		if d[3]["mode"] != "code" || d[3]["by"] != "carol" || d[3]["reason"] == nil {
			t.Fatalf("mode_changed after the restore %v", d)
		}
		acc := a.prompt(t, "again [chunks=1]")
		waitFor(t, "the second prompt's end", func() bool {
			for _, d := range statusDetails(h.events(), StatusTurnEnded) {
				if d["promptId"] == acc.ID {
					return true
				}
			}
			return false
		})
		// The mode was set on the new agent session before the next prompt.
		var order []string
		for _, ev := range h.events() {
			switch describe(ev) {
			case "client:session/new", "client:" + MethodSetMode, "client:session/prompt":
				order = append(order, describe(ev))
			}
		}
		last := 0
		for i, o := range order {
			if o == "client:session/new" {
				last = i
			}
		}
		if got := order[last:]; len(got) < 3 || got[1] != "client:"+MethodSetMode || got[len(got)-1] != "client:session/prompt" {
			t.Fatalf("requests after the last session/new: %v", got)
		}
		rec, _ = a.m.GetSession(ctx, testWS, DefaultSession)
		if currentMode(rec.Modes) != "code" {
			t.Fatalf("modes after the restore %s", rec.Modes)
		}
	})
}
