package httpapi_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/tandem-dev/tandem/auth"
	"github.com/tandem-dev/tandem/httpapi"
)

var errInternal = errors.New("database exploded with secret-internal-text")

type recObserver struct{ routes []string }

func (r *recObserver) Request(route, method string, status int, d time.Duration) {
	r.routes = append(r.routes, method+" "+route+" "+statusClass(status))
}

func statusClass(s int) string { return string(rune('0'+s/100)) + "xx" }

// Every log line of a request carries its id, the same as the response's
// X-Request-Id; no credential is logged; metrics see the route pattern.
func TestRequestLogs(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(httpapi.LogHandler(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	v, _ := auth.NewVerifier(auth.Config{Secret: fuzzSecret})
	tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "ann", "role": "admin", "workspaces": []string{"*"}, "exp": time.Now().Add(time.Hour).Unix()}).SignedString(fuzzSecret)
	obs := &recObserver{}
	h := httpapi.New(httpapi.Deps{Events: &fakeEvents{err: errInternal}, Streams: &fakeStreams{}, Workspaces: okWorkspaces{}, Auth: httpapi.JWTAuth{Verifier: v}, Logger: logger, Observer: obs}, httpapi.Config{})
	req := httptest.NewRequest("GET", "/v1/workspaces/w/sessions/s/events?cursor=0", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("X-Request-Id", "client-chosen\nid")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	id := rec.Header().Get("X-Request-Id")
	if rec.Code != 500 || id == "" || strings.Contains(id, "client") {
		t.Fatalf("%d, request id %q", rec.Code, id)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) < 2 {
		t.Fatalf("log:\n%s", buf.String())
	}
	for _, l := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatal(err)
		}
		if rec["request_id"] != id {
			t.Errorf("line without the request id %s: %s", id, l)
		}
	}
	if strings.Contains(buf.String(), tok) || strings.Contains(buf.String(), "Bearer") {
		t.Error("a credential was logged")
	}
	if len(obs.routes) != 1 || obs.routes[0] != "GET /v1/workspaces/:ws/sessions/:sid/events 5xx" {
		t.Errorf("observed %v", obs.routes)
	}
}
