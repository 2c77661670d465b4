package main

// ops is the configuration of operational endpoints.
type ops struct {
	PprofAddr     string
	BenchRoutes   bool
	AllowEviction bool
}

func (o *ops) register(e *envFlags) {
	e.str(&o.PprofAddr, "pprof-addr", "TANDEM_PPROF_ADDR", "", "serve net/http/pprof on this address (keep it on loopback; empty: off)")
	e.boolean(&o.BenchRoutes, "bench-routes", "TANDEM_BENCH_ROUTES", "serve the load tool's synthetic append route (never in production)")
	e.boolean(&o.AllowEviction, "allow-eviction", "TANDEM_ALLOW_EVICTION", "start even when Redis's maxmemory-policy may evict keys (anything but noeviction), with a loud warning")
}
