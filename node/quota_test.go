package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tandem-dev/tandem/acp"
	"github.com/tandem-dev/tandem/httpapi"
	"github.com/tandem-dev/tandem/internal/nodetest"
	"github.com/tandem-dev/tandem/internal/redistest"
	"github.com/tandem-dev/tandem/internal/sandboxtest"
	"github.com/tandem-dev/tandem/node"
)

func problemType(body string) string {
	var p struct{ Type string }
	_ = json.Unmarshal([]byte(body), &p)
	return p.Type
}

// sandboxConnections lists the ACP connections a Sandbox Agent server
// holds: one agent process each.
func sandboxConnections(t *testing.T, url string) int {
	t.Helper()
	c, err := acp.New(acp.Config{BaseURL: url})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conns, err := c.Connections(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return len(conns)
}

// A member flooding a workspace with session creations and cancels is
// refused past the burst (429 rate_limited, on every node: the buckets are
// in Redis), the workspace's session cap holds (409 session_limit), and
// the sandbox gets no agent process beyond what was accepted.
func TestSessionAndCancelFloodsAreLimited(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	rdb := rs.Client(t)
	sb := sandboxtest.Start(t, sandboxtest.Options{})
	mut := func(c *node.Config) {
		c.Sandbox = node.SandboxConfig{URL: sb.URL()}
		c.HTTP = httpapi.Config{CommandRate: 0.01, CommandBurst: 3}
	}
	a := nodetest.Start(t, rs.URL(), mut)
	b := nodetest.Start(t, rs.URL(), mut)
	if code, body := send(t, "PUT", a.URL+"/v1/workspaces/flood", "", nil); code != 201 {
		t.Fatalf("put: %d %s", code, body)
	}
	ann := map[string]string{"X-User-Id": "ann"}
	created, limited := 0, 0
	for i := range 20 {
		n := a
		if i%2 == 1 {
			n = b // across nodes
		}
		code, body := send(t, "POST", n.URL+"/v1/workspaces/flood/sessions", fmt.Sprintf(`{"id":"s%d"}`, i), ann)
		switch {
		case code == 201:
			created++
		case code == 429 && problemType(body) == "urn:tandem:error:rate_limited":
			limited++
		default:
			t.Fatalf("create %d: %d %s", i, code, body)
		}
	}
	if created != 3 || limited != 17 {
		t.Errorf("created %d, limited %d: want 3 and 17", created, limited)
	}
	// Another user has a bucket of their own.
	if code, body := send(t, "POST", b.URL+"/v1/workspaces/flood/sessions", `{"id":"bob1"}`, map[string]string{"X-User-Id": "bob"}); code != 201 {
		t.Errorf("bob's first session: %d %s", code, body)
	}

	cancels, refused := 0, 0
	for i := range 20 {
		code, body := send(t, "POST", a.URL+"/v1/workspaces/flood/sessions/s0/cancel", "", ann)
		switch {
		case code == 202:
			cancels++
		case code == 429 && problemType(body) == "urn:tandem:error:rate_limited":
			refused++
		default:
			t.Fatalf("cancel %d: %d %s", i, code, body)
		}
	}
	if cancels != 3 || refused != 17 {
		t.Errorf("cancels %d, refused %d: want 3 and 17", cancels, refused)
	}
	// The inbox keeps only what its owner has not acknowledged (it trims
	// the rest): count what was ever added, 4 opens and 3 cancels.
	info, err := rdb.XInfoStream(context.Background(), "{ws:flood}:inbox").Result()
	if err != nil {
		t.Fatal(err)
	}
	if info.EntriesAdded != 7 {
		t.Errorf("the inbox took %d commands: want 3 cancels and 4 opens", info.EntriesAdded)
	}
	// The owner opens the accepted sessions, and no more.
	deadline := time.Now().Add(20 * time.Second)
	for sandboxConnections(t, sb.URL()) < 4 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	if n := sandboxConnections(t, sb.URL()); n != 4 {
		t.Errorf("the sandbox holds %d agent connections, want 4", n)
	}
}

// The session cap of a workspace holds across nodes and users.
func TestSessionsPerWorkspaceCapped(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	mut := func(c *node.Config) {
		c.Workspace.MaxSessions = 3
		c.HTTP = httpapi.Config{CommandRate: -1}
	}
	a := nodetest.Start(t, rs.URL(), mut)
	b := nodetest.Start(t, rs.URL(), mut)
	send(t, "PUT", a.URL+"/v1/workspaces/cap", "", nil)
	var codes []string
	for i := range 6 {
		n := a
		if i%2 == 1 {
			n = b
		}
		code, body := send(t, "POST", n.URL+"/v1/workspaces/cap/sessions", fmt.Sprintf(`{"id":"s%d"}`, i), map[string]string{"X-User-Id": fmt.Sprintf("u%d", i)})
		codes = append(codes, fmt.Sprintf("%d %s", code, strings.TrimPrefix(problemType(body), "urn:tandem:error:")))
	}
	want := "201 ,201 ,201 ,409 session_limit,409 session_limit,409 session_limit"
	if got := strings.Join(codes, ","); got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	// Resuming an existing session is not creating one.
	if code, body := send(t, "POST", a.URL+"/v1/workspaces/cap/sessions", `{"id":"s0"}`, nil); code != 200 {
		t.Errorf("resume: %d %s", code, body)
	}
	// Nor is the default session's first prompt exempt.
	if code, body := send(t, "POST", a.URL+"/v1/workspaces/cap/sessions/default/prompt", `{"text":"hi"}`, nil); code != 409 || problemType(body) != "urn:tandem:error:session_limit" {
		t.Errorf("default session over the cap: %d %s", code, body)
	}
}
