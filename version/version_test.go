package version

import (
	"runtime"
	"strings"
	"testing"
)

// A test binary has build information: the Go version and a version
// string, never empty.
func TestGet(t *testing.T) {
	in := Get()
	if in.GoVersion != runtime.Version() || in.Version == "" {
		t.Fatalf("%+v", in)
	}
	if s := in.String(); !strings.Contains(s, in.Version) || !strings.HasSuffix(s, runtime.Version()) {
		t.Fatalf("String() = %q", s)
	}
	withCommit := Info{Version: "v1.2.3", Commit: "abc", Modified: true, GoVersion: "go1.26"}
	if got := withCommit.String(); got != "v1.2.3 commit abc (modified) go1.26" {
		t.Fatalf("String() = %q", got)
	}
}
