package node_test

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tandem-dev/tandem/internal/nodetest"
	"github.com/tandem-dev/tandem/internal/redistest"
	"github.com/tandem-dev/tandem/node"
)

func get(t *testing.T, url, authz string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// /metrics on the API port needs the metrics token when one is set; with
// an ops listener it is served there and not on the API port.
func TestMetricsAccess(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	tok := nodetest.Start(t, rs.URL(), func(c *node.Config) { c.MetricsToken = "scrape-secret" })
	for authz, want := range map[string]int{"": 401, "Bearer wrong": 401, "scrape-secret": 401, "Bearer scrape-secret": 200} {
		code, body := get(t, tok.URL+"/metrics", authz)
		if code != want {
			t.Errorf("metrics with %q: %d, want %d", authz, code, want)
		}
		if code == 401 && !strings.Contains(body, "urn:tandem:error:unauthenticated") {
			t.Errorf("401 is not the problem: %s", body)
		}
		if code == 200 && !strings.Contains(body, "tandem_sse_connections") {
			t.Errorf("metrics body: %.200s", body)
		}
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opsAddr := ln.Addr().String()
	ln.Close()
	ops := nodetest.Start(t, rs.URL(), func(c *node.Config) { c.PprofAddr = opsAddr })
	if code, _ := get(t, ops.URL+"/metrics", ""); code != 404 {
		t.Errorf("API port /metrics with an ops listener: %d, want 404", code)
	}
	var code int
	var body string
	for range 50 { // the listener starts with the node
		resp, err := http.Get("http://" + opsAddr + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			code, body = resp.StatusCode, string(b)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code != 200 || !strings.Contains(body, "tandem_inbox_depth") {
		t.Errorf("ops listener /metrics: %d %.200s", code, body)
	}
}
