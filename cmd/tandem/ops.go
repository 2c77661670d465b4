package main

import (
	"fmt"
	"net"
)

// ops is the configuration of operational endpoints.
type ops struct {
	PprofAddr        string
	PprofAllowRemote bool
	MetricsToken     string
	BenchRoutes      bool
	AllowEviction    bool
}

func (o *ops) register(e *envFlags) {
	e.str(&o.PprofAddr, "pprof-addr", "TANDEM_PPROF_ADDR", "", "serve net/http/pprof on this address (keep it on loopback; empty: off)")
	e.boolean(&o.PprofAllowRemote, "pprof-allow-remote", "TANDEM_PPROF_ALLOW_REMOTE", "serve pprof on a non-loopback address (it shows the node's memory and command line to anyone who reaches it)")
	e.secret(&o.MetricsToken, "metrics-token", "TANDEM_METRICS_TOKEN", "", "bearer token GET /metrics on the API port requires (with TANDEM_PPROF_ADDR, /metrics is served there instead)")
	e.boolean(&o.BenchRoutes, "bench-routes", "TANDEM_BENCH_ROUTES", "serve the load tool's synthetic append route (never in production)")
	e.boolean(&o.AllowEviction, "allow-eviction", "TANDEM_ALLOW_EVICTION", "start even when Redis's maxmemory-policy may evict keys (anything but noeviction), with a loud warning")
}

// validate refuses pprof on an address other than loopback unless forced.
func (o *ops) validate() error {
	if o.PprofAddr == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(o.PprofAddr)
	if err != nil {
		return fmt.Errorf("pprof addr %q: %v", o.PprofAddr, err)
	}
	if !isLoopback(host) && !o.PprofAllowRemote {
		return fmt.Errorf("refusing to serve pprof on %s: keep TANDEM_PPROF_ADDR on loopback (or set TANDEM_PPROF_ALLOW_REMOTE=1)", o.PprofAddr)
	}
	return nil
}
