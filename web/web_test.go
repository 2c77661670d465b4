package web

import (
	"io/fs"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// The view model's unit tests run with Node's test runner; Node is
// required (make test installs nothing for it: it comes with npm).
func TestTranscriptModule(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is required for the web client's unit tests (web/test): install Node.js 20 or newer")
	}
	cmd := exec.Command(node, "--test", "test/")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test web/test: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "# fail 0") {
		t.Fatalf("node --test web/test: no summary:\n%s", out)
	}
}

// The page works under the CSP: no inline scripts, styles or handlers, and
// everything it references is embedded.
func TestPageFitsCSP(t *testing.T) {
	static := Static()
	b, err := fs.ReadFile(static, "index.html")
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	for _, bad := range []*regexp.Regexp{
		regexp.MustCompile(`(?i)<script(?:\s[^>]*)?>[^<]*\S[^<]*</script>`), // inline script
		regexp.MustCompile(`(?i)<style`),
		regexp.MustCompile(`(?i)\sstyle=`),
		regexp.MustCompile(`(?i)\son[a-z]+=`),
		regexp.MustCompile(`(?i)(?:src|href)="(?:https?:)?//`), // anything off the node
	} {
		if m := bad.FindString(page); m != "" {
			t.Errorf("index.html: %q does not fit the CSP", m)
		}
	}
	for _, tag := range regexp.MustCompile(`(?i)<script[^>]*>`).FindAllString(page, -1) {
		if !strings.Contains(tag, ` src="/static/`) {
			t.Errorf("index.html: %q: every script must come from /static/", tag)
		}
	}
	refs := regexp.MustCompile(`(?:src|href)="/static/([^"]+)"`).FindAllStringSubmatch(page, -1)
	if len(refs) < 3 {
		t.Fatalf("index.html references %d static files", len(refs))
	}
	imports := regexp.MustCompile(`from '\./([^']+)'`)
	for _, name := range []string{"app.js", "room.js", "identity.js", "transcript.js", "permission.js", "session.js", ClientFile} {
		src, err := fs.ReadFile(static, name)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range imports.FindAllStringSubmatch(string(src), -1) {
			refs = append(refs, []string{"", m[1]})
		}
		for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "eval(", "new Function", "setAttribute('style'"} {
			if strings.Contains(string(src), bad) {
				t.Errorf("%s uses %s", name, bad)
			}
		}
	}
	for _, r := range refs {
		if _, err := fs.Stat(static, r[1]); err != nil {
			t.Errorf("%s is referenced but not embedded", r[1])
		}
	}
}
