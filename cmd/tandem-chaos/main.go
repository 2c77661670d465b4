// Command tandem-chaos runs Tandem's fault campaign: redis-server, the
// Sandbox Agent server with the scripted agent, three tandem nodes and
// nginx, all on 127.0.0.1; r3labs/sse and WHATWG EventSource subscribers and
// prompt writers through nginx; randomized faults from a printed seed; then
// an independent check of what the clients observed against what Redis
// holds. It exits 1 when the checker found a violation.
//
//	tandem-chaos -duration 3m -seed 42 -dir /tmp/chaos \
//	  -tandem bin/tandem -mockagent bin/tandem-mockagent \
//	  -sandbox-agent .cache/sandbox-agent/0.4.2/sandbox-agent -node-client internal/chaos/node/client.mjs
//
// scripts/chaos.sh (make chaos) builds and installs all of that.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tandem-dev/tandem/internal/chaos"
)

func main() {
	os.Exit(run())
}

func run() int {
	var cfg chaos.Config
	var runs int
	flag.Int64Var(&cfg.Seed, "seed", 0, "seed of the faults and the load (0: from the clock; printed)")
	flag.DurationVar(&cfg.Duration, "duration", 3*time.Minute, "time of the fault phase of each run")
	flag.IntVar(&cfg.Faults, "faults", 0, "end a run's fault phase after this many faults (0: no limit)")
	flag.IntVar(&runs, "runs", 1, "runs, each on a fresh cluster, with seeds seed, seed+1…")
	flag.IntVar(&cfg.Workspaces, "workspaces", 4, "workspaces under load")
	flag.IntVar(&cfg.IdleWorkspaces, "idle-workspaces", 2, "workspaces with bursts of prompts and no subscriber, whose owners go idle (-1: none)")
	flag.BoolVar(&cfg.NoSilent, "no-silent", false, "leave out silent turns (>10 s) and cancels from the workload")
	flag.IntVar(&cfg.GoClients, "go-clients", 2, "r3labs/sse subscribers per workspace")
	flag.IntVar(&cfg.NodeClients, "node-clients", 2, "EventSource (Node.js) subscribers per workspace")
	flag.DurationVar(&cfg.LockTTL, "lock-ttl", 3*time.Second, "the nodes' TANDEM_LOCK_TTL")
	flag.DurationVar(&cfg.Gap, "gap", 2*time.Second, "mean pause between faults")
	flag.StringVar(&cfg.Dir, "dir", "", "directory for data and logs (default: a new one under the system's temp dir)")
	flag.StringVar(&cfg.TandemBin, "tandem", "bin/tandem", "the tandem binary")
	flag.StringVar(&cfg.MockAgentBin, "mockagent", "bin/tandem-mockagent", "the scripted agent binary")
	flag.StringVar(&cfg.SandboxBin, "sandbox-agent", "", "the sandbox-agent binary")
	flag.StringVar(&cfg.NginxBin, "nginx", "nginx", "the nginx binary")
	flag.StringVar(&cfg.RedisBin, "redis-server", "redis-server", "the redis-server binary")
	flag.StringVar(&cfg.NodeBin, "node", "node", "the Node.js binary")
	flag.StringVar(&cfg.NodeClient, "node-client", "internal/chaos/node/client.mjs", "the EventSource client script (its node_modules installed)")
	kinds := flag.String("kinds", "", "comma-separated fault kinds to inject (default all: "+strings.Join(chaos.FaultKinds, ",")+")")
	flag.StringVar(&cfg.Break, "break", os.Getenv("CHAOS_BREAK"), "deliberately break a guarantee to see the checker fail: client-gap ($CHAOS_BREAK)")
	flag.Parse()
	if *kinds != "" {
		cfg.Kinds = strings.Split(*kinds, ",")
	}
	if runs < 1 || runs > 100 {
		fmt.Fprintln(os.Stderr, "tandem-chaos: -runs must be 1 to 100")
		return 2
	}
	for _, p := range []*string{&cfg.TandemBin, &cfg.MockAgentBin, &cfg.SandboxBin, &cfg.NodeClient} {
		if *p != "" {
			if abs, err := filepath.Abs(*p); err == nil {
				*p = abs
			}
		}
	}
	if cfg.Seed == 0 {
		cfg.Seed = time.Now().UnixNano() % 1_000_000_007
	}
	base := cfg.Dir
	if base == "" {
		d, err := os.MkdirTemp("", "tandem-chaos-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "tandem-chaos:", err)
			return 2
		}
		base = d
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	cfg.Logf = func(format string, args ...any) {
		fmt.Printf("[%7s] %s\n", time.Since(start).Round(time.Second), fmt.Sprintf(format, args...))
	}
	fmt.Printf("fault campaign: %d run(s), seed %d (replay with -seed %d), fault phase %v each", runs, cfg.Seed, cfg.Seed, cfg.Duration)
	if cfg.Faults > 0 {
		fmt.Printf(" or %d faults", cfg.Faults)
	}
	fmt.Printf(", lock TTL %v, data and logs in %s\n", cfg.LockTTL, base)
	if cfg.Break != "" {
		fmt.Printf("DELIBERATELY BROKEN: %s\n", cfg.Break)
	}
	var results []*chaos.Result
	failed := false
	for i := 0; i < runs; i++ {
		rc := cfg
		rc.Seed = cfg.Seed + int64(i)
		rc.Dir = filepath.Join(base, "run"+strconv.Itoa(i+1))
		fmt.Printf("== run %d, seed %d\n", i+1, rc.Seed)
		r, err := chaos.Run(ctx, rc)
		if err != nil {
			fmt.Fprintf(os.Stderr, "tandem-chaos: run %d (seed %d): %v (logs in %s)\n", i+1, rc.Seed, err, rc.Dir)
			return 2
		}
		chaos.WriteDetails(os.Stdout, r)
		results = append(results, r)
		failed = failed || r.Violations > 0
	}
	fmt.Println()
	chaos.WriteTable(os.Stdout, results)
	if failed {
		fmt.Printf("\nFAIL: the checker found violations (seed %d; logs in %s)\n", cfg.Seed, base)
		return 1
	}
	fmt.Printf("\nPASS: no violation in %d run(s)\n", runs)
	return 0
}
