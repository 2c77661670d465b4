package node_test

import (
	"strings"
	"testing"

	"github.com/tandem-dev/tandem/internal/nodetest"
	"github.com/tandem-dev/tandem/internal/redistest"
)

// A member may give a session its own agent only when the workspace's
// admin listed it; a refused one creates nothing.
func TestSessionAgentLimitedToTheAdminsList(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	rdb := rs.Client(t)
	n := nodetest.Start(t, rs.URL(), nil)
	if code, body := send(t, "PUT", n.URL+"/v1/workspaces/plain", `{"agent":"mock"}`, nil); code != 201 {
		t.Fatalf("put: %d %s", code, body)
	}
	if code, body := send(t, "PUT", n.URL+"/v1/workspaces/listed", `{"agent":"mock","agents":["codex"]}`, nil); code != 201 {
		t.Fatalf("put: %d %s", code, body)
	}
	if code, body := send(t, "PUT", n.URL+"/v1/workspaces/bad", `{"agent":"mock","agents":["Not An Agent"]}`, nil); code != 400 || problemType(body) != "urn:tandem:error:invalid_request" {
		t.Errorf("bad agents list: %d %s", code, body)
	}
	state := func() string { return keysOf(t, rdb, "plain") + keysOf(t, rdb, "listed") }
	before := state()
	for _, tc := range []struct{ ws, body string }{
		{"plain", `{"id":"s1","agent":"codex"}`},
		{"listed", `{"id":"s1","agent":"claude"}`},
	} {
		code, body := send(t, "POST", n.URL+"/v1/workspaces/"+tc.ws+"/sessions", tc.body, nil)
		if code != 403 || problemType(body) != "urn:tandem:error:agent_not_allowed" {
			t.Errorf("%s %s: %d %s, want 403 agent_not_allowed", tc.ws, tc.body, code, body)
		}
	}
	if after := state(); after != before {
		t.Errorf("refused sessions changed Redis:\n%s\n%s", before, after)
	}
	for _, tc := range []struct{ ws, body string }{
		{"plain", `{"id":"s2","agent":"mock"}`},
		{"plain", `{"id":"s3"}`},
		{"listed", `{"id":"s4","agent":"codex"}`},
	} {
		if code, body := send(t, "POST", n.URL+"/v1/workspaces/"+tc.ws+"/sessions", tc.body, nil); code != 201 {
			t.Errorf("%s %s: %d %s, want 201", tc.ws, tc.body, code, body)
		}
	}
	if _, body := send(t, "GET", n.URL+"/v1/workspaces/listed", "", nil); !strings.Contains(body, `"agents":["codex"]`) {
		t.Errorf("workspace info: %s", body)
	}
}
