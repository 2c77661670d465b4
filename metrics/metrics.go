// Package metrics exposes what a node does as Prometheus metrics: it
// implements the observer hooks of fanout, workspace, eventlog and
// httpapi, so that those packages know nothing of Prometheus.
//
// # Concurrency properties
//
// Every hook is safe for concurrent use and does not block: counters,
// gauges and histograms only.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds a node's metrics in their own registry.
type Metrics struct {
	reg *prometheus.Registry

	sseConnections prometheus.Gauge
	deliveries     prometheus.Counter
	sendLatency    prometheus.Histogram
	resumes        *prometheus.CounterVec
	fallbacks      prometheus.Counter
	fanoutErrors   prometheus.Counter

	appends        prometheus.Counter
	appendBatches  prometheus.Counter
	fenceRejects   prometheus.Counter
	appendFailures prometheus.Counter

	owned          prometheus.Gauge
	takeovers      prometheus.Counter
	restoring      prometheus.Gauge
	takeoverFails  prometheus.Counter
	releases       *prometheus.CounterVec
	prompts        prometheus.Counter
	turns          *prometheus.CounterVec
	healthFailures prometheus.Counter
	sandboxRestart *prometheus.CounterVec

	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec
}

// New returns the metrics of a node, with Go runtime and process metrics.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	f := func(c prometheus.Collector) { m.reg.MustRegister(c) }
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	m.sseConnections = prometheus.NewGauge(prometheus.GaugeOpts{Name: "tandem_sse_connections", Help: "Open SSE streams on this node."})
	m.deliveries = prometheus.NewCounter(prometheus.CounterOpts{Name: "tandem_sse_deliveries_total", Help: "Events written to SSE clients."})
	m.sendLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "tandem_append_to_send_seconds", Help: "Time from an event's append to its write to a client (the oldest of a batch).",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	})
	m.resumes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tandem_sse_resumes_total", Help: "Streams started with a cursor, by outcome: exact or reset."}, []string{"outcome"})
	m.fallbacks = prometheus.NewCounter(prometheus.CounterOpts{Name: "tandem_sse_slow_fallbacks_total", Help: "Clients served from Redis or detached because they fell behind."})
	m.fanoutErrors = prometheus.NewCounter(prometheus.CounterOpts{Name: "tandem_fanout_errors_total", Help: "Failures the fan-out handled by retrying (Redis reads, doorbell)."})
	f(m.sseConnections)
	f(m.deliveries)
	f(m.sendLatency)
	f(m.resumes)
	f(m.fallbacks)
	f(m.fanoutErrors)

	m.appends = prometheus.NewCounter(prometheus.CounterOpts{Name: "tandem_appends_total", Help: "Events appended by this node."})
	m.appendBatches = prometheus.NewCounter(prometheus.CounterOpts{Name: "tandem_append_calls_total", Help: "Append script calls by this node."})
	m.fenceRejects = prometheus.NewCounter(prometheus.CounterOpts{Name: "tandem_fence_rejections_total", Help: "Appends refused because this node's epoch was stale."})
	m.appendFailures = prometheus.NewCounter(prometheus.CounterOpts{Name: "tandem_append_failures_total", Help: "Appends that failed for another reason (Redis unavailable...)."})
	f(m.appends)
	f(m.appendBatches)
	f(m.fenceRejects)
	f(m.appendFailures)

	m.owned = prometheus.NewGauge(prometheus.GaugeOpts{Name: "tandem_owned_workspaces", Help: "Workspaces this node owns."})
	m.takeovers = prometheus.NewCounter(prometheus.CounterOpts{Name: "tandem_takeovers_total", Help: "Workspaces this node became the owner of."})
	m.restoring = prometheus.NewGauge(prometheus.GaugeOpts{Name: "tandem_takeovers_in_progress", Help: "Takeovers on this node still restoring their workspace (sessions re-attached, inbox claimed) before serving it."})
	m.takeoverFails = prometheus.NewCounter(prometheus.CounterOpts{Name: "tandem_takeover_failures_total", Help: "Takeovers on this node that failed before the workspace was served (the lock is let go and taken again later)."})
	m.releases = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tandem_releases_total", Help: "Workspaces this node stopped owning, by reason: idle, handover, lost."}, []string{"reason"})
	m.prompts = prometheus.NewCounter(prometheus.CounterOpts{Name: "tandem_prompts_accepted_total", Help: "Prompts accepted into an inbox by this node."})
	m.turns = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tandem_turns_total", Help: "Turns ended on workspaces this node owned, by stop reason."}, []string{"stop_reason"})
	m.healthFailures = prometheus.NewCounter(prometheus.CounterOpts{Name: "tandem_sandbox_health_failures_total", Help: "Failed sandbox health checks by owners on this node."})
	m.sandboxRestart = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tandem_sandbox_restarts_total", Help: "Sandbox restarts asked for by owners on this node, by result."}, []string{"result"})
	f(m.owned)
	f(m.takeovers)
	f(m.restoring)
	f(m.takeoverFails)
	f(m.releases)
	f(m.prompts)
	f(m.turns)
	f(m.healthFailures)
	f(m.sandboxRestart)

	m.httpRequests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tandem_http_requests_total", Help: "HTTP requests by route, method and status."}, []string{"route", "method", "status"})
	m.httpDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "tandem_http_request_seconds", Help: "Time to answer HTTP requests (streams: until the hub took them over).",
		Buckets: prometheus.DefBuckets,
	}, []string{"route", "method"})
	f(m.httpRequests)
	f(m.httpDuration)

	// Every series of a closed label set exists from the start, at 0, so
	// that increase() and rate() see a node's first restart, resume or
	// release (a series born at 1 has no increase), and dashboards and
	// alerts find every name on a node that has not seen one yet.
	for _, v := range []string{"ok", "failed"} {
		m.sandboxRestart.WithLabelValues(v)
	}
	for _, v := range []string{"exact", "reset"} {
		m.resumes.WithLabelValues(v)
	}
	for _, v := range []string{"idle", "handover", "lost"} {
		m.releases.WithLabelValues(v)
	}
	for _, v := range stopLabels {
		m.turns.WithLabelValues(v)
	}
	return m
}

// Register adds a collector (inbox depth, say) to the node's registry.
func (m *Metrics) Register(c prometheus.Collector) { m.reg.MustRegister(c) }

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// fanout.Observer

func (m *Metrics) Error(error)       { m.fanoutErrors.Inc() }
func (m *Metrics) Clients(delta int) { m.sseConnections.Add(float64(delta)) }
func (m *Metrics) Delivered(n int, appendToSendMs int64) {
	m.deliveries.Add(float64(n))
	m.sendLatency.Observe(float64(max(appendToSendMs, 0)) / 1000)
}
func (m *Metrics) Resumed(exact bool) {
	if exact {
		m.resumes.WithLabelValues("exact").Inc()
	} else {
		m.resumes.WithLabelValues("reset").Inc()
	}
}
func (m *Metrics) Fallback() { m.fallbacks.Inc() }

// eventlog observer

// Appended reports an append call of n records and its outcome.
func (m *Metrics) Appended(n int, stale bool, err error) {
	switch {
	case stale:
		m.fenceRejects.Inc()
	case err != nil:
		m.appendFailures.Inc()
	default:
		m.appendBatches.Inc()
		m.appends.Add(float64(n))
	}
}

// workspace.Observer

func (m *Metrics) Owned(delta int)  { m.owned.Add(float64(delta)) }
func (m *Metrics) TookOver()        { m.takeovers.Inc() }
func (m *Metrics) TakeoverStarted() { m.restoring.Inc() }
func (m *Metrics) TakeoverFinished(ok bool) {
	m.restoring.Dec()
	if !ok {
		m.takeoverFails.Inc()
	}
}
func (m *Metrics) Released(reason string)      { m.releases.WithLabelValues(reason).Inc() }
func (m *Metrics) PromptAccepted()             { m.prompts.Inc() }
func (m *Metrics) TurnEnded(stopReason string) { m.turns.WithLabelValues(stopLabel(stopReason)).Inc() }
func (m *Metrics) HealthCheckFailed()          { m.healthFailures.Inc() }
func (m *Metrics) SandboxRestarted(ok bool) {
	if ok {
		m.sandboxRestart.WithLabelValues("ok").Inc()
	} else {
		m.sandboxRestart.WithLabelValues("failed").Inc()
	}
}

// httpapi observer

// Request reports an answered HTTP request; route is the route pattern,
// never the raw path, so that ids do not explode the label set, and a
// method outside the known ones counts as "other".
func (m *Metrics) Request(route, method string, status int, d time.Duration) {
	if route == "" {
		route = "unmatched"
	}
	method = MethodLabel(method)
	m.httpRequests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.httpDuration.WithLabelValues(route, method).Observe(d.Seconds())
}
