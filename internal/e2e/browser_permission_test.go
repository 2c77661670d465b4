package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestBrowserPermission drives two pages in headless Chromium
// (internal/e2e/browser/permission.test.mjs) against redis-server, the
// Sandbox Agent server with the scripted agent and two nodes: ann's page
// on node a, bob's on node b. The agent asks for a permission; both pages
// show the card; bob approves from his; ann's card shows who chose what,
// live, and the agent goes on with that option. Then bob picks a mode in
// the session header and ann's header follows.
func TestBrowserPermission(t *testing.T) {
	nodeBin, dir, artifacts := browserPrereqs(t)
	e := newEnv(t)
	a := e.node("a", nil)
	b := e.node("b", nil)
	const ws = "perm-browser"
	if code := call(t, "PUT", a.URL()+"/v1/workspaces/"+ws, nil, nil, nil); code != 201 {
		t.Fatalf("PUT workspace: %d", code)
	}
	if code := call(t, "POST", a.URL()+"/v1/workspaces/"+ws+"/sessions", map[string]string{"id": "default"}, nil, nil); code != 201 {
		t.Fatalf("create session: %d", code)
	}

	runNodeTest(t, nodeBin, dir, "permission.test.mjs", 3*time.Minute,
		"TANDEM_ANN_URL="+a.URL(),
		"TANDEM_BOB_URL="+b.URL(),
		"TANDEM_WS="+ws,
		"TANDEM_ARTIFACTS="+artifacts,
	)

	// What the pages showed is what the stream holds: bob answered once.
	entries := readStream(t, e.rdb, ws, "default")
	checkStream(t, entries)
	var resolved []streamEntry
	for _, en := range entries {
		if en.Type == "permission.resolved" {
			resolved = append(resolved, en)
		}
	}
	if len(resolved) != 1 || resolved[0].Body["by"] != "bob" || resolved[0].Body["optionId"] != "allow-always" {
		t.Fatalf("permission.resolved %+v", resolved)
	}
	if awaited, unawaited, res := e.agentResponses(t); awaited != 1 || unawaited != 0 || !strings.Contains(res[0], "allow-always") {
		t.Fatalf("the agent got %d answers (%d unawaited): %v", awaited, unawaited, res)
	}
}
