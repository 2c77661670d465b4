package e2e

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// tandem tail shows the agent's permission request with its options and
// how to answer it; tandem approve answers it, the agent goes on with that
// option, and a second approve fails saying who answered.
func TestCLIApprove(t *testing.T) {
	e := newEnv(t)
	n := e.node("a", nil)
	call(t, "PUT", n.URL()+"/v1/workspaces/room", nil, nil, nil)
	tail := startCLI(t, "tail", "--url", n.URL(), "--user", "ann", "room")
	prompt(t, n, "room", "default", "write it [permission] [chunks=1]", map[string]string{"X-User-Id": "ann"})
	lines := tail.waitLines(t, "the request", 20*time.Second, func(l []string) bool {
		return strings.Contains(strings.Join(l, "\n"), "answer with: tandem approve")
	})
	m := regexp.MustCompile(`request (perm-[0-9a-f]+), options: allow-once \(Allow once\), allow-always`).FindStringSubmatch(strings.Join(lines, "\n"))
	if m == nil {
		t.Fatalf("tail printed:\n%s", strings.Join(lines, "\n"))
	}
	out, err := exec.Command(tandemBinary(t), "approve", "--url", n.URL(), "--user", "bob", "room", m[1], "reject-once").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != m[1]+": reject-once by bob" {
		t.Fatalf("tandem approve: %v: %s", err, out)
	}
	lines = tail.waitLines(t, "the turn's end", 20*time.Second, func(l []string) bool {
		return strings.Contains(strings.Join(l, "\n"), "── turn ended")
	})
	tail.stop(t)
	got := strings.Join(lines, "\n")
	for _, want := range []string{"* bob chose reject-once for request " + m[1], "agent: permission: reject-once"} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q in:\n%s", want, got)
		}
	}
	out, err = exec.Command(tandemBinary(t), "approve", "--url", n.URL(), "--user", "ann", "room", "default", m[1], "cancel").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "409 permission_already_resolved") || !strings.Contains(string(out), "bob") {
		t.Errorf("a second approve: %v: %s", err, out)
	}
}
