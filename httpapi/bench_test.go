package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tandem-dev/tandem/httpapi"
	"github.com/tandem-dev/tandem/workspace"
)

type notOwnerBench struct{}

func (notOwnerBench) BenchAppend(_ context.Context, ws, _ string, _, _, _, _ int, _ float64) (int, time.Duration, error) {
	return 0, 0, fmt.Errorf("%s: %w", ws, workspace.ErrNotOwner)
}

// The load tool's append on a node that cannot hold the workspace
// (another node owns it) is 503 unavailable, not an internal error.
func TestBenchAppendNotOwner(t *testing.T) {
	h := httpapi.New(httpapi.Deps{Events: &fakeEvents{}, Streams: &fakeStreams{}, Bench: notOwnerBench{}}, httpapi.Config{})
	req := httptest.NewRequest("POST", "/v1/workspaces/w/sessions/s/bench/append", strings.NewReader(`{"count":1}`))
	req.Host = "127.0.0.1"
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var p problem
	_ = json.Unmarshal(rec.Body.Bytes(), &p)
	if rec.Code != 503 || p.Type != "urn:tandem:error:unavailable" || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("%d %s %q", rec.Code, rec.Body, rec.Header().Get("Retry-After"))
	}
}
