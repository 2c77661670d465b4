package httpapi_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/tandem-dev/tandem/auth"
	"github.com/tandem-dev/tandem/httpapi"
	"github.com/tandem-dev/tandem/workspace"
)

// okWorkspaces accepts everything the handlers pass it: fuzzing then
// exercises the parsing and validation of the HTTP layer alone.
type okWorkspaces struct{}

func (okWorkspaces) PutWorkspace(context.Context, string, workspace.Settings) (bool, error) {
	return true, nil
}
func (okWorkspaces) GetWorkspace(_ context.Context, ws string) (workspace.Info, error) {
	return workspace.Info{WorkspaceID: ws}, nil
}
func (okWorkspaces) DeleteWorkspace(context.Context, string) error { return nil }
func (okWorkspaces) PurgeWorkspace(context.Context, string) error  { return nil }
func (okWorkspaces) Exists(context.Context, string) error          { return nil }
func (okWorkspaces) ListSessions(context.Context, string, string, int) ([]workspace.SessionRecord, string, error) {
	return nil, "", nil
}
func (okWorkspaces) CreateSession(_ context.Context, _, id, _ string) (workspace.SessionRecord, bool, error) {
	return workspace.SessionRecord{ID: id}, true, nil
}
func (okWorkspaces) GetSession(_ context.Context, _, sid string) (workspace.SessionRecord, error) {
	return workspace.SessionRecord{ID: sid}, nil
}
func (okWorkspaces) DeleteSession(_ context.Context, _, sid string) (workspace.SessionRecord, error) {
	return workspace.SessionRecord{ID: sid}, nil
}
func (okWorkspaces) Prompt(_ context.Context, _, sid, _, _, _ string) (workspace.Accepted, error) {
	return workspace.Accepted{ID: "1-0", SessionID: sid}, nil
}
func (okWorkspaces) Withdraw(context.Context, string, string, string, string, bool) error {
	return nil
}
func (okWorkspaces) Cancel(context.Context, string, string, string) (string, error) {
	return "1-0", nil
}
func (okWorkspaces) GetPresence(context.Context, string) (workspace.Presence, error) {
	return workspace.Presence{Users: []workspace.PresentUser{}}, nil
}

var fuzzSecret = []byte("fuzz-secret-fuzz-secret-fuzz-secret!")

// FuzzRequests: whatever the method, path, body and headers, the API
// answers without panicking and never with a 5xx.
func FuzzRequests(f *testing.F) {
	good, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "ann", "role": "admin", "workspaces": []string{"*"}, "exp": time.Now().Add(24 * time.Hour).Unix()}).SignedString(fuzzSecret)
	f.Add("POST", "/v1/workspaces/w/sessions/default/prompt", `{"text":"hi"}`, "application/json", "Bearer "+good, "")
	f.Add("PUT", "/v1/workspaces/w", `{"sandbox":{"baseUrl":"http://x"},"agent":"mock"}`, "application/json", "Bearer "+good, "")
	f.Add("POST", "/v1/workspaces/w/sessions", `{"id":"s","agent":"a"}`, "application/json; charset=utf-8", "Bearer "+good, "")
	f.Add("GET", "/v1/workspaces/w/sessions?cursor=1:a&limit=2", "", "", "Bearer x.y.z", "k")
	f.Add("DELETE", "/v1/workspaces/%zz", "\x00", "text/plain", "Basic Zm9v", "")
	f.Add("GET", "/v1/workspaces/w/sessions/s/events?cursor=1.a", "", "", "", "")
	v, _ := auth.NewVerifier(auth.Config{Secret: fuzzSecret})
	h := httpapi.New(httpapi.Deps{Events: &fakeEvents{evs: events(3)}, Streams: &fakeStreams{}, Workspaces: okWorkspaces{}, Auth: httpapi.JWTAuth{Verifier: v}}, httpapi.Config{})
	f.Fuzz(func(t *testing.T, method, path, body, ctype, authz, idem string) {
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		req, err := http.NewRequest(method, "http://tandem"+path, strings.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("Content-Type", ctype)
		req.Header.Set("Authorization", authz)
		req.Header.Set("Idempotency-Key", idem)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s %q: %d %s", method, path, body, rec.Code, rec.Body)
		}
	})
}
