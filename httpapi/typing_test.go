package httpapi_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/tandem-dev/tandem/httpapi"
	"github.com/tandem-dev/tandem/workspace"
)

// typingWorkspaces records Typing calls.
type typingWorkspaces struct {
	okWorkspaces
	mu    sync.Mutex
	calls []string
}

func (w *typingWorkspaces) Typing(_ context.Context, ws, sid, user string, on bool) error {
	if ws == "gone" {
		return workspace.ErrWorkspaceNotFound
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	state := "on"
	if !on {
		state = "off"
	}
	w.calls = append(w.calls, ws+"/"+sid+"/"+user+"/"+state)
	return nil
}

// POST /v1/workspaces/{ws}/typing: 204 for a session id (typing absent:
// on); bad input is a problem+json with a stable type and changes nothing.
func TestTypingRoute(t *testing.T) {
	ws := &typingWorkspaces{}
	h := httpapi.New(httpapi.Deps{Events: &fakeEvents{}, Streams: &fakeStreams{}, Workspaces: ws, Auth: httpapi.NoAuth{}}, httpapi.Config{})
	post := func(path, ct, body string) (int, string) {
		r := httptest.NewRequest("POST", "http://127.0.0.1"+path, strings.NewReader(body))
		r.Host = "127.0.0.1"
		if ct != "" {
			r.Header.Set("Content-Type", ct)
		}
		r.Header.Set("X-User-Id", "ann")
		r.Header.Set(httpapi.CSRFHeader, "1")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code >= 400 && w.Header().Get("Content-Type") != "application/problem+json" {
			t.Errorf("POST %s %q: %d with Content-Type %q", path, body, w.Code, w.Header().Get("Content-Type"))
		}
		return w.Code, w.Body.String()
	}
	for _, tc := range []struct {
		path, ct, body string
		code           int
		typ            string
	}{
		{"/v1/workspaces/w/typing", "application/json", `{}`, 400, "invalid_request"},
		{"/v1/workspaces/w/typing", "application/json", `{"sessionId":"~ws"}`, 400, "invalid_request"},
		{"/v1/workspaces/w/typing", "application/json", `{"sessionId":"s","typing":"yes"}`, 400, "malformed_json"},
		{"/v1/workspaces/w/typing", "application/json", `{"sessionId":"s","extra":1}`, 400, "malformed_json"},
		{"/v1/workspaces/w/typing", "application/json", `{"sessionId":`, 400, "malformed_json"},
		{"/v1/workspaces/w/typing", "application/json", ``, 400, "malformed_json"},
		{"/v1/workspaces/w/typing", "text/plain", `{"sessionId":"s"}`, 415, "unsupported_media_type"},
		{"/v1/workspaces/bad%20id/typing", "application/json", `{"sessionId":"s"}`, 400, "invalid_id"},
		{"/v1/workspaces/gone/typing", "application/json", `{"sessionId":"s"}`, 404, "workspace_not_found"},
	} {
		code, body := post(tc.path, tc.ct, tc.body)
		if code != tc.code || !strings.Contains(body, "urn:tandem:error:"+tc.typ) {
			t.Errorf("POST %s %q: %d %s, want %d %s", tc.path, tc.body, code, body, tc.code, tc.typ)
		}
	}
	if len(ws.calls) != 0 {
		t.Fatalf("bad requests changed something: %v", ws.calls)
	}
	if code, body := post("/v1/workspaces/w/typing", "application/json", `{"sessionId":"s2"}`); code != 204 {
		t.Fatalf("typing: %d %s", code, body)
	}
	if code, body := post("/v1/workspaces/w/typing", "application/json", `{"sessionId":"s2","typing":false}`); code != 204 {
		t.Fatalf("stopped typing: %d %s", code, body)
	}
	if got := strings.Join(ws.calls, " "); got != "w/s2/ann/on w/s2/ann/off" {
		t.Fatalf("calls %s", got)
	}
}
