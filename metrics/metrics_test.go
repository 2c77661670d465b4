package metrics

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// series counts the series of every metric family the registry gathers.
func series(t *testing.T, m *Metrics, name string) int {
	t.Helper()
	mfs, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return len(mf.GetMetric())
		}
	}
	return 0
}

// A caller choosing the request method (any token, before auth, on a
// 404 or a 405) must not be able to add series: methods outside the
// known set all count as "other".
func TestDistinctMethodsAddNoSeries(t *testing.T) {
	m := New()
	m.Request("unmatched", http.MethodGet, 404, time.Millisecond)
	m.Request("unmatched", "BREW0", 404, time.Millisecond)
	base := series(t, m, "tandem_http_requests_total")
	baseH := series(t, m, "tandem_http_request_seconds")
	for i := range 5000 {
		m.Request("unmatched", fmt.Sprintf("BREW%d", i), 404, time.Millisecond)
	}
	if got := series(t, m, "tandem_http_requests_total"); got != base {
		t.Errorf("requests series: %d after 5,000 methods, %d before", got, base)
	}
	if got := series(t, m, "tandem_http_request_seconds"); got != baseH {
		t.Errorf("duration series: %d after 5,000 methods, %d before", got, baseH)
	}
	if v := counter(t, m.httpRequests.WithLabelValues("unmatched", "other", "404")); v != 5001 {
		t.Errorf("other: %v, want 5001", v)
	}
	if v := counter(t, m.httpRequests.WithLabelValues("unmatched", "GET", "404")); v != 1 {
		t.Errorf("GET: %v, want 1", v)
	}
}

// A sandbox choosing the stopReason must not be able to add series.
func TestDistinctStopReasonsAddNoSeries(t *testing.T) {
	m := New()
	for _, r := range []string{"end_turn", "max_tokens", "max_turn_requests", "refusal", "cancelled", "error"} {
		m.TurnEnded(r)
	}
	m.TurnEnded("weird0")
	base := series(t, m, "tandem_turns_total")
	for i := range 5000 {
		m.TurnEnded(fmt.Sprintf("weird%d", i))
	}
	if got := series(t, m, "tandem_turns_total"); got != base {
		t.Errorf("turn series: %d after 5,000 stop reasons, %d before", got, base)
	}
	if v := counter(t, m.turns.WithLabelValues("other")); v != 5001 {
		t.Errorf("other: %v, want 5001", v)
	}
	if v := counter(t, m.turns.WithLabelValues("end_turn")); v != 1 {
		t.Errorf("end_turn: %v, want 1", v)
	}
}

func counter(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var d dto.Metric
	if err := c.Write(&d); err != nil {
		t.Fatal(err)
	}
	return d.GetCounter().GetValue()
}

// The series of closed label sets exist before anything happened, at 0:
// a node's first sandbox restart, resume or release is then an increase
// that rate() and increase() (and so the alerts) see.
func TestClosedLabelSetsStartAtZero(t *testing.T) {
	m := New()
	for name, want := range map[string]int{
		"tandem_sandbox_restarts_total": 2,
		"tandem_sse_resumes_total":      2,
		"tandem_releases_total":         3,
		"tandem_turns_total":            len(stopLabels),
	} {
		if got := series(t, m, name); got != want {
			t.Errorf("%s: %d series on a new node, want %d", name, got, want)
		}
	}
	if v := counter(t, m.sandboxRestart.WithLabelValues("failed")); v != 0 {
		t.Errorf("failed restarts on a new node: %v", v)
	}
}

// A takeover is in progress from its start to its end, and counts as a
// failure when it ends not ok.
func TestTakeoverProgressAndFailures(t *testing.T) {
	m := New()
	m.TakeoverStarted()
	m.TakeoverStarted()
	if v := gauge(t, m.restoring); v != 2 {
		t.Fatalf("in progress: %v, want 2", v)
	}
	m.TakeoverFinished(true)
	m.TakeoverFinished(false)
	if v := gauge(t, m.restoring); v != 0 {
		t.Errorf("in progress after both ended: %v", v)
	}
	if v := counter(t, m.takeoverFails); v != 1 {
		t.Errorf("failures: %v, want 1", v)
	}
}

func gauge(t *testing.T, g prometheus.Gauge) float64 {
	t.Helper()
	var d dto.Metric
	if err := g.Write(&d); err != nil {
		t.Fatal(err)
	}
	return d.GetGauge().GetValue()
}
