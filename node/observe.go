package node

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tandem-dev/tandem/httpapi"
	"github.com/tandem-dev/tandem/metrics"
	"github.com/tandem-dev/tandem/workspace"
)

// hubObserver feeds the hub's hooks to the metrics and logs its handled
// errors.
type hubObserver struct {
	*metrics.Metrics
	l *slog.Logger
}

func (o hubObserver) Error(err error) {
	o.Metrics.Error(err)
	o.l.Warn("fanout", slog.Any("err", err))
}

// inboxDepth registers the inbox depth of the node's owned workspaces,
// read from Redis by scrapes at most every 5 s (bounded by a short timeout).
func inboxDepth(m *metrics.Metrics, mgr *workspace.Manager) {
	// One Redis read per owned workspace: cached for a few seconds, and
	// one scrape at a time, so that scraping often (or a flood of
	// scrapes) costs Redis nothing more.
	var (
		mu   sync.Mutex
		at   time.Time
		last float64
	)
	m.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tandem_inbox_depth",
		Help: "Inbox entries not done yet (unread or unacknowledged) of the workspaces this node owns (refreshed at most every 5 s).",
	}, func() float64 {
		mu.Lock()
		defer mu.Unlock()
		if !at.IsZero() && time.Since(at) < inboxDepthEvery {
			return last
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		n, err := mgr.InboxDepth(ctx)
		at, last = time.Now(), float64(n)
		if err != nil {
			last = -1
		}
		return last
	}))
}

// inboxDepthEvery is how often a scrape reads the inbox depths.
const inboxDepthEvery = 5 * time.Second

// servePprof serves net/http/pprof, and /metrics, on its own listener
// (never on the API port) until ctx ends.
func servePprof(ctx context.Context, addr string, metrics http.Handler, logger *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("GET /metrics", metrics)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	stop := context.AfterFunc(ctx, func() { srv.Close() })
	defer stop()
	logger.Info("pprof listening", slog.String("addr", ln.Addr().String()))
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// apiMetrics is what the API port serves at /metrics: nothing when the
// ops listener serves it (httpapi checks MetricsToken otherwise).
func apiMetrics(cfg Config, m *metrics.Metrics) http.Handler {
	if cfg.PprofAddr != "" {
		return nil
	}
	return m.Handler()
}

func withMetricsToken(c httpapi.Config, token string) httpapi.Config {
	if c.MetricsToken == "" {
		c.MetricsToken = token
	}
	return c
}
