package node_test

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-dev/tandem/internal/nodetest"
	"github.com/tandem-dev/tandem/internal/redistest"
	"github.com/tandem-dev/tandem/node"
)

// recorder is a loopback HTTP server that records the paths it is asked
// for.
type recorder struct {
	*httptest.Server
	mu    sync.Mutex
	paths []string
}

func newRecorder(t *testing.T, h http.HandlerFunc) *recorder {
	r := &recorder{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.paths = append(r.paths, req.Method+" "+req.URL.Path)
		r.mu.Unlock()
		if h != nil {
			h(w, req)
		}
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *recorder) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.paths...)
}

func port(u string) string {
	_, p, _ := net.SplitHostPort(strings.TrimPrefix(u, "http://"))
	return p
}

// waitUnhealthy prompts ws and waits for the sandbox_unhealthy entry of
// its default session; it returns the entry's detail.
func waitUnhealthy(t *testing.T, n *nodetest.Node, ws string) map[string]any {
	t.Helper()
	if code, body := send(t, "POST", n.URL+"/v1/workspaces/"+ws+"/sessions/default/prompt", `{"text":"hi"}`, nil); code != 202 {
		t.Fatalf("prompt: %d %s", code, body)
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		code, body := send(t, "GET", n.URL+"/v1/workspaces/"+ws+"/sessions/default/events?limit=100", "", nil)
		if code != 200 {
			t.Fatalf("events: %d %s", code, body)
		}
		var page struct {
			Items []struct {
				Type   string         `json:"type"`
				Status string         `json:"status"`
				Detail map[string]any `json:"detail"`
			} `json:"items"`
		}
		if err := json.Unmarshal([]byte(body), &page); err != nil {
			t.Fatalf("events: %v %.200s", err, body)
		}
		for _, it := range page.Items {
			if it.Type == "session.status" && it.Status == "sandbox_unhealthy" {
				return it.Detail
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("no sandbox_unhealthy entry")
	return nil
}

// A hostile sandbox in the allow-list redirects every ACP call to a
// server the node can reach and the room could read: that server receives
// nothing, and what the hostile sandbox writes in its errors does not
// reach the room either.
func TestSandboxRedirectIsNotFollowed(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	inner := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"status":"ok","secret":"inner-secret"}`))
	})
	// Healthy until the owner's first ACP call (which is redirected), then
	// failing with words of its own.
	var redirected atomic.Bool
	hostile := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/health" && !redirected.Load() {
			w.Write([]byte(`{"status":"ok"}`))
			return
		}
		if r.URL.Path == "/v1/health" {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(500)
			w.Write([]byte(`{"title":"hostile-title","detail":"hostile-detail"}`))
			return
		}
		redirected.Store(true)
		http.Redirect(w, r, inner.URL+r.URL.Path, http.StatusTemporaryRedirect)
	})
	n := nodetest.Start(t, rs.URL(), func(c *node.Config) {
		c.SandboxAllow = []string{"127.0.0.1:" + port(hostile.URL), "127.0.0.1:" + port(inner.URL)}
		c.Workspace.HealthInterval = 100 * time.Millisecond
	})
	if code, body := send(t, "PUT", n.URL+"/v1/workspaces/hostile", `{"sandbox":{"baseUrl":"`+hostile.URL+`"}}`, nil); code != 201 {
		t.Fatalf("put: %d %s", code, body)
	}
	detail := waitUnhealthy(t, n, "hostile")
	if got := detail["error"]; got != "status 500 (server error)" {
		t.Errorf("sandbox_unhealthy error %q", got)
	}
	acpCalls := 0
	for _, p := range hostile.seen() {
		if strings.Contains(p, "/v1/acp/") {
			acpCalls++
		}
	}
	if acpCalls == 0 {
		t.Errorf("the owner never called the hostile sandbox's ACP route: %v", hostile.seen())
	}
	if got := inner.seen(); len(got) != 0 {
		t.Fatalf("the server redirected to received %v", got)
	}
	_, body := send(t, "GET", n.URL+"/v1/workspaces/hostile/sessions/default/events?limit=1000", "", nil)
	if strings.Contains(body, "hostile-") || strings.Contains(body, "secret") {
		t.Errorf("the sandbox's words reached the room: %.500s", body)
	}
}

// A name in the allow-list that resolves to 127.0.0.1 (localhost, as a
// rebound name would) is refused when the owner connects: the server
// there receives nothing.
func TestSandboxNameResolvingToLoopbackIsRefused(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	local := newRecorder(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"status":"ok"}`)) })
	n := nodetest.Start(t, rs.URL(), func(c *node.Config) {
		c.SandboxAllow = []string{"localhost:" + port(local.URL)}
		c.Workspace.HealthInterval = 100 * time.Millisecond
	})
	base := "http://localhost:" + port(local.URL)
	if code, body := send(t, "PUT", n.URL+"/v1/workspaces/rebound", `{"sandbox":{"baseUrl":"`+base+`"}}`, nil); code != 201 {
		t.Fatalf("put: %d %s", code, body)
	}
	detail := waitUnhealthy(t, n, "rebound")
	if got := detail["error"]; got != "address not allowed" {
		t.Errorf("sandbox_unhealthy error %q", got)
	}
	if got := local.seen(); len(got) != 0 {
		t.Fatalf("the loopback server received %v", got)
	}
}
