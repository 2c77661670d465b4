package node_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tandem-dev/tandem/eventlog"
	"github.com/tandem-dev/tandem/internal/nodetest"
	"github.com/tandem-dev/tandem/internal/redistest"
	"github.com/tandem-dev/tandem/internal/ssetest"
	"github.com/tandem-dev/tandem/node"
)

type presence struct {
	Users []struct {
		UserID      string
		Connections int
	}
}

func (p presence) String() string {
	var s []string
	for _, u := range p.Users {
		s = append(s, u.UserID+"×"+string(rune('0'+u.Connections)))
	}
	return strings.Join(s, ",")
}

// waitPresence reads c until a presence event equal to want arrives.
func waitPresence(t *testing.T, c *ssetest.Conn, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		ev, err := c.Next()
		if err != nil {
			t.Fatalf("waiting for presence %q (last %q): %v", want, last, err)
		}
		if ev.Type != "presence" {
			continue
		}
		if ev.HasID {
			t.Fatal("a presence event carries an id")
		}
		var p presence
		json.Unmarshal([]byte(ev.Data), &p)
		if last = p.String(); last == want {
			return
		}
	}
	t.Fatalf("presence %q never came (last %q)", want, last)
}

// Users on two nodes see each other: presence events on their streams
// and GET /presence agree, and a user who leaves is gone from both.
func TestPresenceAcrossNodes(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	fast := func(c *node.Config) { c.Workspace.PresenceInterval = 500 * time.Millisecond }
	a := nodetest.Start(t, rs.URL(), fast)
	b := nodetest.Start(t, rs.URL(), fast)
	holdWorkspace(t, eventlog.New(rs.Client(t), eventlog.Config{}), "p", "s")
	url := func(n *nodetest.Node) string { return n.URL + "/v1/workspaces/p/sessions/default/events/stream" }
	ann, err := ssetest.Dial(context.Background(), url(a), "", http.Header{"X-User-Id": {"ann"}})
	if err != nil {
		t.Fatal(err)
	}
	defer ann.Close()
	waitPresence(t, ann, "ann×1")
	bob, err := ssetest.Dial(context.Background(), url(b), "", http.Header{"X-User-Id": {"bob"}})
	if err != nil {
		t.Fatal(err)
	}
	bob2, err := ssetest.Dial(context.Background(), b.URL+"/v1/workspaces/p/sessions/s/events/stream", "", http.Header{"X-User-Id": {"bob"}})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitPresence(t, ann, "ann×1,bob×2")
	t.Logf("ann saw bob's two streams on the other node after %v", time.Since(start).Round(time.Millisecond))
	waitPresence(t, bob, "ann×1,bob×2")
	var p presence
	if code := api(t, "GET", a.URL+"/v1/workspaces/p/presence", nil, &p); code != 200 || p.String() != "ann×1,bob×2" {
		t.Fatalf("GET presence: %d %s", code, p)
	}
	bob.Close()
	bob2.Close()
	start = time.Now()
	waitPresence(t, ann, "ann×1")
	t.Logf("ann saw bob leave after %v", time.Since(start).Round(time.Millisecond))
	if code := api(t, "GET", b.URL+"/v1/workspaces/nope/presence", nil, nil); code != 404 {
		t.Fatalf("presence of an unknown workspace: %d", code)
	}
}
