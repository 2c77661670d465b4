package main

// ops is the configuration of operational endpoints.
type ops struct {
	PprofAddr   string
	BenchRoutes bool
}

func (o *ops) register(e *envFlags) {
	e.str(&o.PprofAddr, "pprof-addr", "TANDEM_PPROF_ADDR", "", "serve net/http/pprof on this address (keep it on loopback; empty: off)")
	e.boolean(&o.BenchRoutes, "bench-routes", "TANDEM_BENCH_ROUTES", "serve the load tool's synthetic append route (never in production)")
}
