package e2e

import (
	"bufio"
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tandem-dev/tandem/internal/ssetest"
)

// scrape reads /metrics into name{labels} → value.
func scrape(t testing.TB, n *node) map[string]float64 {
	t.Helper()
	resp, err := http.Get(n.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// A short run moves the counters as expected.
func TestMetricsMove(t *testing.T) {
	e := newEnv(t)
	n := e.node("m", nil)
	before := scrape(t, n)
	call(t, "PUT", n.URL()+"/v1/workspaces/mw", nil, nil, nil)
	c := follow(t, n, "mw", "default")
	acc := prompt(t, n, "mw", "default", "count me [chunks=4]", nil)
	evs := c.waitFor(t, "the turn", 15*time.Second, turnEnded(acc.ID))
	// A client resuming from the middle: an exact resume.
	mid := evs[len(evs)/2].ID
	conn, err := ssetest.Dial(context.Background(), n.URL()+"/v1/workspaces/mw/sessions/default/events/stream", mid, nil)
	if err != nil {
		t.Fatal(err)
	}
	conn.Next()
	time.Sleep(300 * time.Millisecond)
	m := scrape(t, n)
	conn.Close()
	for _, tc := range []struct {
		name string
		want func(v float64) bool
		desc string
	}{
		{"tandem_sse_connections", func(v float64) bool { return v == 2 }, "2 open streams"},
		{"tandem_sse_deliveries_total", func(v float64) bool { return v >= float64(len(evs)) }, "at least the events delivered"},
		{"tandem_append_to_send_seconds_count", func(v float64) bool { return v > 0 }, "latencies observed"},
		{`tandem_sse_resumes_total{outcome="exact"}`, func(v float64) bool { return v == 1 }, "one exact resume"},
		{"tandem_appends_total", func(v float64) bool { return v >= float64(len(evs)) }, "every event appended here"},
		{"tandem_owned_workspaces", func(v float64) bool { return v == 1 }, "owns the workspace"},
		{"tandem_takeovers_total", func(v float64) bool { return v == 1 }, "one takeover"},
		{"tandem_prompts_accepted_total", func(v float64) bool { return v == 1 }, "one prompt"},
		{`tandem_turns_total{stop_reason="end_turn"}`, func(v float64) bool { return v == 1 }, "one turn ended"},
		{`tandem_http_requests_total{method="POST",route="/v1/workspaces/:ws/sessions/:sid/prompt",status="202"}`, func(v float64) bool { return v == 1 }, "the prompt request"},
		{`tandem_http_requests_total{method="PUT",route="/v1/workspaces/:ws",status="201"}`, func(v float64) bool { return v == 1 }, "the workspace creation"},
		{"tandem_inbox_depth", func(v float64) bool { return v == 0 }, "nothing left in the inbox"},
		{"tandem_fence_rejections_total", func(v float64) bool { return v == 0 }, "no stale write"},
	} {
		v, ok := m[tc.name]
		if !ok || !tc.want(v) {
			t.Errorf("%s = %v (present %v), want %s (before: %v)", tc.name, v, ok, tc.desc, before[tc.name])
		}
	}
}
