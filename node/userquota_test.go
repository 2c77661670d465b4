package node_test

import (
	"fmt"
	"testing"

	"github.com/tandem-dev/tandem/httpapi"
	"github.com/tandem-dev/tandem/internal/nodetest"
	"github.com/tandem-dev/tandem/internal/redistest"
	"github.com/tandem-dev/tandem/node"
)

// One user creates at most MaxWorkspacesPerUser workspaces, across nodes
// (409 workspace_limit, nothing created); updates do not count, and
// deleted workspaces stop counting, whoever deleted them.
func TestWorkspacesPerUserCapped(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	mut := func(c *node.Config) { c.HTTP = httpapi.Config{MaxWorkspacesPerUser: 2} }
	a := nodetest.Start(t, rs.URL(), mut)
	b := nodetest.Start(t, rs.URL(), mut)
	as := func(u string) map[string]string { return map[string]string{"X-User-Id": u} }
	step := func(n *nodetest.Node, method, ws, user string, want int, wantType string) {
		t.Helper()
		code, body := send(t, method, n.URL+"/v1/workspaces/"+ws, "", as(user))
		if code != want || (wantType != "" && problemType(body) != "urn:tandem:error:"+wantType) {
			t.Errorf("%s %s as %s: %d %s, want %d %s", method, ws, user, code, body, want, wantType)
		}
	}
	step(a, "PUT", "w1", "ann", 201, "")
	step(b, "PUT", "w2", "ann", 201, "")
	step(a, "PUT", "w3", "ann", 409, "workspace_limit")
	step(b, "GET", "w3", "ann", 404, "workspace_not_found")
	step(b, "PUT", "w1", "ann", 200, "") // an update
	step(a, "PUT", "b1", "bob", 201, "") // bob counts on his own
	step(a, "PUT", "w2", "bob", 200, "") // updating ann's does not count for bob
	step(a, "PUT", "b2", "bob", 201, "")
	step(b, "PUT", "b3", "bob", 409, "workspace_limit")
	step(a, "DELETE", "w1", "ann", 204, "")
	step(b, "PUT", "w3", "ann", 201, "")
	step(a, "DELETE", "w2", "bob", 204, "") // deleted by someone else
	step(b, "PUT", "w4", "ann", 201, "")
	step(a, "PUT", "w5", "ann", 409, "workspace_limit")
	for i := range 3 {
		step(a, "PUT", fmt.Sprintf("w%d", 6+i), "ann", 409, "workspace_limit")
	}
}
