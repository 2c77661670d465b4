package httpapi_test

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tandem-dev/tandem/httpapi"
	"github.com/tandem-dev/tandem/metrics"
)

// seriesLines counts the series of the HTTP metrics in a scrape.
func seriesLines(t *testing.T, m *metrics.Metrics) int {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	n := 0
	for _, l := range strings.Split(rec.Body.String(), "\n") {
		if strings.HasPrefix(l, "tandem_http_requests_total{") || strings.HasPrefix(l, "tandem_http_request_seconds_count{") {
			n++
		}
	}
	return n
}

// Unauthenticated requests with 5,000 distinct methods and paths (404s,
// 405s, 401s) add no series to the node's metrics.
func TestDistinctMethodsAndPathsAddNoSeries(t *testing.T) {
	m := metrics.New()
	h := httpapi.New(httpapi.Deps{Events: &fakeEvents{}, Streams: &fakeStreams{}, Workspaces: okWorkspaces{}, Observer: m}, httpapi.Config{})
	send := func(method, path string) {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(method, "http://127.0.0.1"+path, nil))
	}
	for _, p := range []string{"/nope0", "/v1/workspaces/w0", "/healthz"} {
		send("BREW0", p)
		send("GET", p)
	}
	base := seriesLines(t, m)
	if base == 0 {
		t.Fatal("no HTTP series at all")
	}
	for i := range 5000 {
		send(fmt.Sprintf("BREW%d", i), fmt.Sprintf("/nope%d", i))
		send(fmt.Sprintf("BREW%d", i), fmt.Sprintf("/v1/workspaces/w%d", i))
		send(fmt.Sprintf("BREW%d", i), "/healthz")
	}
	if got := seriesLines(t, m); got != base {
		t.Errorf("%d HTTP series after 5,000 distinct methods and paths, %d before", got, base)
	}
}
