package e2e

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"testing"
	"time"
)

// The workspace stream on real peers: a second person's prompt sent while
// a turn runs is on the workspace stream at once (prompt.queued, through
// any node), a withdrawn one never reaches the agent (its log), one
// dispatched cannot be withdrawn (409; without authentication everyone is
// an admin, so the sender-only 403 is tested in eventlog and workspace), and each
// prompt reaches the agent with its speaker named until speakerLabels is
// turned off.
func TestWorkspaceStreamQueueWithdrawSpeaker(t *testing.T) {
	e := newEnv(t)
	a := e.node("a", nil)
	b := e.node("b", nil)
	const ws = "roomws"
	if code := call(t, "PUT", a.URL()+"/v1/workspaces/"+ws, nil, nil, nil); code != 201 {
		t.Fatalf("PUT: %d", code)
	}
	ann := map[string]string{"X-User-Id": "ann"}
	bob := map[string]string{"X-User-Id": "bob"}
	p1 := prompt(t, a, ws, "default", "long one [chunks=10] [delay=200ms]", ann)
	p2 := prompt(t, b, ws, "default", "withdraw me [chunks=1]", bob)
	p3 := prompt(t, b, ws, "default", "keep me [chunks=1]", bob)
	base := "/v1/workspaces/" + ws + "/sessions/default/prompts/"
	if code := call(t, "DELETE", a.URL()+base+p2.ID, nil, bob, nil); code != http.StatusNoContent {
		t.Fatalf("withdraw by bob: %d", code)
	}
	if code := call(t, "DELETE", a.URL()+base+"nonsense", nil, bob, nil); code != http.StatusNotFound {
		t.Fatalf("withdraw of an unknown prompt: %d", code)
	}
	c := follow(t, a, ws, "default")
	c.waitFor(t, "the third prompt's turn", 30*time.Second, turnEnded(p3.ID))
	if code := call(t, "DELETE", b.URL()+base+p1.ID, nil, ann, nil); code != http.StatusConflict {
		t.Fatalf("withdraw of a dispatched prompt: %d", code)
	}

	var page struct {
		Items []map[string]any `json:"items"`
	}
	if code := call(t, "GET", b.URL()+"/v1/workspaces/"+ws+"/events?limit=1000", nil, nil, &page); code != 200 {
		t.Fatalf("GET workspace events: %d", code)
	}
	seen := map[string]map[string]bool{}
	for _, it := range page.Items {
		typ, _ := it["type"].(string)
		id, _ := it["promptId"].(string)
		if seen[typ] == nil {
			seen[typ] = map[string]bool{}
		}
		seen[typ][id] = true
		if typ == "session.created" && it["sessionId"] != "default" {
			t.Errorf("session.created %v", it)
		}
	}
	for _, id := range []string{p1.ID, p2.ID, p3.ID} {
		if !seen["prompt.queued"][id] {
			t.Errorf("no prompt.queued for %s in %v", id, page.Items)
		}
	}
	if !seen["prompt.withdrawn"][p2.ID] || !seen["prompt.dispatched"][p1.ID] || !seen["prompt.dispatched"][p3.ID] || seen["prompt.dispatched"][p2.ID] {
		t.Errorf("workspace stream %v", page.Items)
	}
	if len(seen["session.created"]) != 1 || len(seen["session.status"]) == 0 {
		t.Errorf("workspace stream %v", page.Items)
	}

	// speakerLabels off: the next prompt has no label.
	if code := call(t, "PUT", a.URL()+"/v1/workspaces/"+ws, map[string]any{"speakerLabels": false}, nil, nil); code != 200 {
		t.Fatalf("PUT speakerLabels: %d", code)
	}
	time.Sleep(time.Second) // the owner reloads its settings
	p4 := prompt(t, a, ws, "default", "no label [chunks=1]", ann)
	c.waitFor(t, "the fourth prompt's turn", 30*time.Second, turnEnded(p4.ID))

	f, err := os.Open(e.promptLog)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	speakers := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l struct{ Text, Speaker, Kind string }
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Kind == "" {
			speakers[l.Text] = l.Speaker
		}
	}
	want := map[string]string{"long one [chunks=10] [delay=200ms]": "ann", "keep me [chunks=1]": "bob", "no label [chunks=1]": ""}
	for text, sp := range want {
		got, ok := speakers[text]
		if !ok || got != sp {
			t.Errorf("agent log: %q speaker %q (received %v), want %q", text, got, ok, sp)
		}
	}
	if _, ok := speakers["withdraw me [chunks=1]"]; ok {
		t.Error("the withdrawn prompt reached the agent")
	}
}
