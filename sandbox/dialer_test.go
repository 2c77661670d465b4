package sandbox_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-dev/tandem/acp"
	"github.com/tandem-dev/tandem/sandbox"
)

// counting is a loopback server that counts what reaches it.
func counting(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		if h != nil {
			h(w, r)
			return
		}
		w.Write([]byte(`{"status":"ok"}`))
	}))
	t.Cleanup(s.Close)
	return s, &n
}

func mustList(t *testing.T, def string, patterns ...string) *sandbox.AllowList {
	t.Helper()
	a, err := sandbox.NewAllowList(def, patterns)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestAllowListPatterns(t *testing.T) {
	for _, p := range []string{"10.0.0.*", "10.*", "[::1", "[box]:2468", "host:99999", "host:x", "10.0.0.0/33", "[fd00::/8]2468", ""} {
		if p == "" {
			continue
		}
		if _, err := sandbox.NewAllowList("", []string{p}); err == nil {
			t.Errorf("pattern %q accepted", p)
		}
	}
	a := mustList(t, "http://127.0.0.1:2468",
		"*.sandbox.test:2468", "box.example", "[fd00::7]:2468", "::1", "10.0.0.0/8:2468", "[2001:db8:1::/48]:80")
	for _, tc := range []struct {
		url  string
		want bool
	}{
		{"http://127.0.0.1:2468", true}, // the default
		{"http://localhost:2468", false},
		{"http://a.sandbox.test:2468", true},
		{"http://a.sandbox.test:22", false},
		{"https://box.example", true},
		{"http://BOX.example:9", true},
		{"http://[fd00::7]:2468", true}, // IPv6 literals are addresses, not glob classes
		{"http://[fd00::7]:22", false},
		{"http://[fd00::8]:2468", false},
		{"http://[::1]:6379", true},
		{"http://10.1.2.3:2468", true},
		{"http://10.1.2.3:6379", false},
		{"http://[2001:db8:1::5]", true},
		{"http://[::ffff:10.0.0.1]:2468", true}, // mapped: the IPv4 address
		{"http://169.254.169.254", false},
	} {
		u, _ := url.Parse(tc.url)
		if got := a.AllowURL(u); got != tc.want {
			t.Errorf("AllowURL(%s) = %v, want %v", tc.url, got, tc.want)
		}
	}
}

// A name in the allow-list that resolves to 127.0.0.1 is refused at
// connect time, and the server there receives nothing; naming loopback
// explicitly (or being the default sandbox) allows it.
func TestDialerRefusesNameResolvingToLoopback(t *testing.T) {
	srv, hits := counting(t, nil)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	byName := "http://localhost:" + port

	health := func(a *sandbox.AllowList, base string) error {
		c, err := acp.New(acp.Config{BaseURL: base, HTTPClient: a.HTTPClient()})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return c.Health(ctx)
	}

	a := mustList(t, "http://127.0.0.1:1", "localhost:"+port)
	u, _ := url.Parse(byName)
	if !a.AllowURL(u) {
		t.Fatal("the name itself is in the allow-list")
	}
	err := health(a, byName)
	if !errors.Is(err, sandbox.ErrAddressNotAllowed) {
		t.Fatalf("health by a name resolving to loopback: %v", err)
	}
	if d := acp.Describe(err); d != "address not allowed" {
		t.Errorf("described as %q", d)
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the loopback server received %d requests", n)
	}
	// Also when the name is reached by a wildcard.
	if err := health(mustList(t, "", "*"), byName); !errors.Is(err, sandbox.ErrAddressNotAllowed) {
		t.Errorf("wildcard: %v", err)
	}
	if err := health(mustList(t, "", "*"), srv.URL); !errors.Is(err, sandbox.ErrAddressNotAllowed) {
		t.Errorf("wildcard, loopback literal: %v", err)
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the loopback server received %d requests", n)
	}

	// Loopback named by an address pattern: allowed.
	if err := health(mustList(t, "", "localhost:"+port, "127.0.0.0/8"), byName); err != nil {
		t.Errorf("with 127.0.0.0/8 allowed: %v", err)
	}
	// The default sandbox is the operator's: allowed wherever it is.
	if err := health(mustList(t, byName), byName); err != nil {
		t.Errorf("the default sandbox: %v", err)
	}
	if err := health(mustList(t, srv.URL), srv.URL); err != nil {
		t.Errorf("the default sandbox by address: %v", err)
	}
	if hits.Load() != 3 {
		t.Errorf("%d requests reached the server, want 3", hits.Load())
	}
}

// A redirect from an allowed sandbox is an error: the server it points to
// receives nothing, also when it is allowed itself, through the node's
// dialer and through an ACP client on its own.
func TestRedirectIsNotFollowed(t *testing.T) {
	second, secondHits := counting(t, nil)
	for _, code := range []int{301, 302, 307, 308} {
		first, firstHits := counting(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, second.URL+r.URL.Path, code)
		})
		for name, hc := range map[string]*http.Client{
			"allow-list": mustList(t, "", "127.0.0.1").HTTPClient(),
			"default":    nil,
			"following":  {}, // a client that would follow: the ACP client refuses anyway
		} {
			c, err := acp.New(acp.Config{BaseURL: first.URL, HTTPClient: hc})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err = c.Health(ctx)
			if !errors.Is(err, acp.ErrRedirect) {
				t.Errorf("%d %s: health %v", code, name, err)
			}
			_, _, err = c.Post(ctx, "s1", "mock", []byte(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`))
			if !errors.Is(err, acp.ErrRedirect) {
				t.Errorf("%d %s: post %v", code, name, err)
			}
			if d := acp.Describe(err); d != "redirect refused" {
				t.Errorf("described as %q", d)
			}
			cancel()
		}
		if firstHits.Load() != 6 {
			t.Errorf("%d: the first server received %d requests, want 6", code, firstHits.Load())
		}
	}
	if n := secondHits.Load(); n != 0 {
		t.Fatalf("the server redirected to received %d requests", n)
	}
}

// What a failing sandbox answers never reaches the words Tandem uses.
func TestDescribeLeavesTheBodyOut(t *testing.T) {
	srv, _ := counting(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(500)
		w.Write([]byte(`{"title":"ami-secret-title","detail":"AKIA-secret-detail"}`))
	})
	ok, _ := counting(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("instance-id: i-secret")) })
	for base, want := range map[string]string{srv.URL: "status 500 (server error)", ok.URL: "unexpected answer"} {
		c, _ := acp.New(acp.Config{BaseURL: base})
		err := c.Health(context.Background())
		d := acp.Describe(err)
		if d != want || strings.Contains(d, "secret") {
			t.Errorf("%s: described %v as %q, want %q", base, err, d, want)
		}
	}
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	c, _ := acp.New(acp.Config{BaseURL: closed.URL})
	if d := acp.Describe(c.Health(context.Background())); d != "connection refused" {
		t.Errorf("closed port: %q", d)
	}
}
