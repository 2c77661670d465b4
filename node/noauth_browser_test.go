package node_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/tandem-dev/tandem/internal/nodetest"
	"github.com/tandem-dev/tandem/internal/redistest"
)

// rawSend sends a request with exactly the headers given (Host among
// them) and returns the status and the problem type, if any.
func rawSend(t *testing.T, method, u, host, ctype, body string, hdr map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	var p struct{ Type string }
	_ = json.Unmarshal(b, &p)
	return resp.StatusCode, p.Type
}

// Without authentication, a web page the developer visits cannot use the
// node: not by DNS rebinding (its requests carry its own Host), not with
// cross-site simple requests (text/plain POSTs, no preflight); and what
// is refused changes nothing. curl, the CLI and the node's own web client
// keep working.
func TestNoAuthRefusesOtherHostsAndCrossSiteRequests(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	rdb := rs.Client(t)
	n := nodetest.Start(t, rs.URL(), nil)
	if code, body := send(t, "PUT", n.URL+"/v1/workspaces/w", "", nil); code != 201 {
		t.Fatalf("put: %d %s", code, body)
	}
	before := keysOf(t, rdb, "w")
	const hostType = "urn:tandem:error:host_not_allowed"
	const siteType = "urn:tandem:error:cross_site_request"
	for _, tc := range []struct {
		name, method, path, host, ctype string
		hdr                             map[string]string
		want                            int
		typ                             string
	}{
		{"rebinding read", "GET", "/v1/workspaces/w/sessions/default/events", "evil.example", "", nil, 403, hostType},
		{"rebinding read, port", "GET", "/v1/workspaces/w", "evil.example:8080", "", nil, 403, hostType},
		{"rebinding stream", "GET", "/v1/workspaces/w/sessions/default/events/stream", "evil.example", "", nil, 403, hostType},
		{"rebinding page", "GET", "/", "rebind.evil.example", "", nil, 403, hostType},
		{"rebinding metrics", "GET", "/metrics", "evil.example", "", nil, 403, hostType},
		{"rebinding create, with the CSRF header", "POST", "/v1/workspaces/w/sessions", "evil.example", "application/json", map[string]string{"X-Tandem-Csrf": "1"}, 403, hostType},
		{"cross-site create", "POST", "/v1/workspaces/w/sessions", "", "text/plain", map[string]string{"Origin": "https://evil.example"}, 403, siteType},
		{"cross-site create, null origin", "POST", "/v1/workspaces/w/sessions", "", "text/plain", map[string]string{"Origin": "null"}, 403, siteType},
		{"cross-site cancel", "POST", "/v1/workspaces/w/sessions/default/cancel", "", "text/plain", map[string]string{"Origin": "http://127.0.0.1:1"}, 403, siteType},
		{"cross-site prompt", "POST", "/v1/workspaces/w/sessions/default/prompt", "", "text/plain", map[string]string{"Origin": "https://evil.example"}, 403, siteType},
		{"cross-site delete, fetch metadata only", "DELETE", "/v1/workspaces/w", "", "", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403, siteType},
		{"same-site subdomain", "PUT", "/v1/workspaces/w", "", "", map[string]string{"Sec-Fetch-Site": "same-site"}, 403, siteType},
	} {
		code, typ := rawSend(t, tc.method, n.URL+tc.path, tc.host, tc.ctype, "", tc.hdr)
		if code != tc.want || typ != tc.typ {
			t.Errorf("%s: %d %s, want %d %s", tc.name, code, typ, tc.want, tc.typ)
		}
	}
	if after := keysOf(t, rdb, "w"); after != before {
		t.Errorf("refused requests changed the workspace:\nbefore %s\nafter  %s", before, after)
	}

	// What is meant to work still does.
	host := strings.TrimPrefix(n.URL, "http://")
	for _, tc := range []struct {
		name, host string
		hdr        map[string]string
	}{
		{"curl", "", nil},
		{"localhost", "localhost:" + port(n.URL), nil},
		{"the web client", "", map[string]string{"X-Tandem-Csrf": "1"}},
		{"same origin", "", map[string]string{"Origin": n.URL, "Sec-Fetch-Site": "same-origin"}},
		{"same origin by localhost", "localhost:" + port(n.URL), map[string]string{"Origin": "http://localhost:" + port(n.URL)}},
	} {
		code, typ := rawSend(t, "POST", n.URL+"/v1/workspaces/w/sessions", tc.host, "application/json", `{"id":"s-`+strings.ReplaceAll(tc.name, " ", "-")+`"}`, tc.hdr)
		if code != 201 {
			t.Errorf("%s (Host %s): %d %s, want 201", tc.name, host, code, typ)
		}
	}
}
