package web

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"regexp"
	"slices"
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

// The pages work under the CSP: no inline scripts, styles or handlers, and
// everything they reference is embedded. Every page and module of the
// tree is checked, the client served as client.js included.
func TestPageFitsCSP(t *testing.T) {
	static := Static()
	var pages, modules []string
	err := fs.WalkDir(static, ".", func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case strings.HasSuffix(p, ".html"):
			pages = append(pages, p)
		case strings.HasSuffix(p, ".js"):
			modules = append(modules, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	modules = append(modules, ClientFile)
	if !slices.Contains(pages, "index.html") || !slices.Contains(pages, "examples/multiplayer.html") || len(modules) < 8 {
		t.Fatalf("pages %v, modules %v", pages, modules)
	}
	var refs []string
	for _, name := range pages {
		b, err := fs.ReadFile(static, name)
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
				t.Errorf("%s: %q does not fit the CSP", name, m)
			}
		}
		for _, tag := range regexp.MustCompile(`(?i)<script[^>]*>`).FindAllString(page, -1) {
			if !strings.Contains(tag, ` src="/static/`) {
				t.Errorf("%s: %q: every script must come from /static/", name, tag)
			}
		}
		found := regexp.MustCompile(`(?:src|href)="/static/([^"]+)"`).FindAllStringSubmatch(page, -1)
		if len(found) < 2 {
			t.Fatalf("%s references %d static files", name, len(found))
		}
		for _, m := range found {
			refs = append(refs, m[1])
		}
	}
	imports := regexp.MustCompile(`(?m)^import [^;]*from '(\.\.?/[^']+)'`)
	for _, name := range modules {
		src, err := fs.ReadFile(static, name)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range imports.FindAllStringSubmatch(string(src), -1) {
			refs = append(refs, path.Join(path.Dir(name), m[1]))
		}
		if strings.HasPrefix(name, "vendor/") {
			continue // the vendored libraries, checked by TestVendored
		}
		for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "eval(", "new Function", "setAttribute('style'"} {
			if strings.Contains(string(src), bad) {
				t.Errorf("%s uses %s", name, bad)
			}
		}
	}
	for _, r := range refs {
		if _, err := fs.Stat(static, r); err != nil {
			t.Errorf("%s is referenced but not embedded", r)
		}
	}
	if !slices.Contains(refs, ClientFile) || !slices.Contains(refs, "examples/multiplayer.js") {
		t.Errorf("the modules do not import the client: %v", refs)
	}
}

// Static serves client.js as the JavaScript client's source, byte for byte.
func TestStaticClient(t *testing.T) {
	got, err := fs.ReadFile(Static(), ClientFile)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("../clients/js/src/index.js")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is not clients/js/src/index.js", ClientFile)
	}
}

// The vendored libraries (web/static/vendor, scripts/vendor-web.sh) are the
// files VERSIONS names, byte for byte, each with its licence beside it, and
// only markdown.js imports them.
func TestVendored(t *testing.T) {
	static := Static()
	versions, err := fs.ReadFile(static, "vendor/VERSIONS")
	if err != nil {
		t.Fatal(err)
	}
	sums := regexp.MustCompile(`(?m)^([0-9a-f]{64})  (\S+)$`).FindAllStringSubmatch(string(versions), -1)
	if len(sums) != 2 {
		t.Fatalf("VERSIONS names %d files, want 2:\n%s", len(sums), versions)
	}
	for _, m := range sums {
		b, err := fs.ReadFile(static, "vendor/"+m[2])
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprintf("%x", sha256.Sum256(b)); got != m[1] {
			t.Errorf("vendor/%s: sha256 %s, VERSIONS says %s: run scripts/vendor-web.sh", m[2], got, m[1])
		}
	}
	for _, lic := range []string{"marked.LICENSE", "dompurify.LICENSE", "dompurify.LICENSE-MPL"} {
		if b, err := fs.ReadFile(static, "vendor/"+lic); err != nil || len(b) < 500 {
			t.Errorf("vendor/%s: %d bytes, %v", lic, len(b), err)
		}
	}
	err = fs.WalkDir(static, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !strings.HasSuffix(p, ".js") || strings.HasPrefix(p, "vendor/") {
			return err
		}
		b, err := fs.ReadFile(static, p)
		if err != nil {
			return err
		}
		if strings.Contains(string(b), "vendor/") && p != "markdown.js" {
			t.Errorf("%s uses a vendored library: only markdown.js does", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
