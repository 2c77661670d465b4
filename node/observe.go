package node

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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
// read from Redis at each scrape (bounded by a short timeout).
func inboxDepth(m *metrics.Metrics, mgr *workspace.Manager) {
	m.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tandem_inbox_depth",
		Help: "Inbox entries not done yet (unread or unacknowledged) of the workspaces this node owns.",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		n, err := mgr.InboxDepth(ctx)
		if err != nil {
			return -1
		}
		return float64(n)
	}))
}

// servePprof serves net/http/pprof on its own listener (never on the API
// port) until ctx ends.
func servePprof(ctx context.Context, addr string, logger *slog.Logger) error {
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
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	stop := context.AfterFunc(ctx, func() { srv.Close() })
	defer stop()
	logger.Info("pprof listening", slog.String("addr", ln.Addr().String()))
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
