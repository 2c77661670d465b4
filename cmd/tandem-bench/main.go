// Command tandem-bench is Tandem's load tool. Each scenario prints a table
// and writes JSON; see package bench for what each measures.
//
//	tandem-bench [flags] fanout|append|replay|prompt|all
//
// It starts its own stack (redis-server, one tandem node, and for prompt
// the Sandbox Agent server with the scripted agent) on loopback unless
// -url names a running node (loopback only, started with
// TANDEM_BENCH_ROUTES=1).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/tandem-dev/tandem/internal/bench"
)

func main() {
	var (
		opts     bench.Options
		fan      bench.FanoutConfig
		app      bench.AppendConfig
		rep      bench.ReplayConfig
		pr       bench.PromptConfig
		jsonPath string
		timeout  time.Duration
	)
	flag.StringVar(&opts.URL, "url", "", "a running node (loopback); empty: start a stack")
	flag.IntVar(&opts.NodePid, "node-pid", 0, "with -url: the node's pid, to measure its CPU and memory")
	flag.StringVar(&opts.Redis, "redis", "", "with -url: the node's Redis host:port, for redis-benchmark")
	flag.StringVar(&opts.TandemBin, "tandem", "bin/tandem", "tandem binary to start")
	flag.StringVar(&opts.MockAgentBin, "mockagent", "bin/tandem-mockagent", "scripted agent binary")
	flag.StringVar(&opts.SandboxBin, "sandbox-agent", os.Getenv("TANDEM_SANDBOX_AGENT_BIN"), "sandbox-agent binary (prompt scenario)")
	flag.IntVar(&fan.Conns, "conns", 10000, "fanout: SSE connections")
	flag.IntVar(&fan.Workspaces, "workspaces", 100, "fanout: workspaces")
	flag.Float64Var(&fan.Rate, "rate", 500, "fanout: events per second in all")
	flag.DurationVar(&fan.Duration, "duration", 30*time.Second, "fanout: measured window")
	flag.DurationVar(&fan.Warmup, "warmup", 5*time.Second, "fanout: appends before the window")
	flag.IntVar(&fan.Size, "size", 200, "bytes of text per event")
	flag.IntVar(&app.HotEvents, "hot-events", 200000, "append: events into one session")
	flag.IntVar(&app.HotBatch, "hot-batch", 64, "append: events per call into the hot session")
	flag.IntVar(&app.Sessions, "sessions", 50, "append: concurrent sessions")
	flag.IntVar(&app.EventsPerSess, "events-per-session", 4000, "append: events per session")
	flag.IntVar(&rep.Events, "replay-events", 10000, "replay: events behind")
	flag.IntVar(&rep.Runs, "replay-runs", 7, "replay: resumes measured")
	flag.IntVar(&pr.Prompts, "prompts", 50, "prompt: prompts measured on each path")
	flag.StringVar(&jsonPath, "json", "", "write the results as JSON to this file")
	nodeEnv := flag.String("node-env", "", "comma-separated KEY=VALUE settings for a started node (TANDEM_PPROF_ADDR=127.0.0.1:6060, say)")
	flag.DurationVar(&timeout, "timeout", 15*time.Minute, "give up after this long")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: tandem-bench [flags] fanout|append|replay|prompt|all")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	scenario := flag.Arg(0)
	for _, kv := range strings.Split(*nodeEnv, ",") {
		if kv = strings.TrimSpace(kv); kv != "" {
			opts.NodeEnv = append(opts.NodeEnv, kv)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := run(ctx, scenario, opts, fan, app, rep, pr, jsonPath); err != nil {
		fmt.Fprintln(os.Stderr, "tandem-bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, scenario string, opts bench.Options, fan bench.FanoutConfig, app bench.AppendConfig,
	rep bench.ReplayConfig, pr bench.PromptConfig, jsonPath string) error {
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
	want := func(s string) bool { return scenario == s || scenario == "all" }
	switch scenario {
	case "fanout", "append", "replay", "prompt", "all":
	default:
		return fmt.Errorf("unknown scenario %q", scenario)
	}
	results := map[string]any{"scenario": scenario, "at": time.Now().UTC().Format(time.RFC3339)}
	// Each scenario on a fresh stack, so that one does not weigh on the next.
	step := func(name string, sandbox bool, fn func(*bench.Stack) (any, error)) error {
		if !want(name) {
			return nil
		}
		s, err := bench.Start(ctx, opts, sandbox)
		if err != nil {
			return err
		}
		defer s.Close()
		r, err := fn(s)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		bench.PrintTable(os.Stdout, name, r)
		results[name] = r
		return nil
	}
	if err := step("append", false, func(s *bench.Stack) (any, error) { return bench.Append(ctx, s, app, logf) }); err != nil {
		return err
	}
	if err := step("replay", false, func(s *bench.Stack) (any, error) { return bench.Replay(ctx, s, rep, logf) }); err != nil {
		return err
	}
	if err := step("prompt", true, func(s *bench.Stack) (any, error) { return bench.Prompt(ctx, s, pr, logf) }); err != nil {
		return err
	}
	if err := step("fanout", false, func(s *bench.Stack) (any, error) { return bench.Fanout(ctx, s, fan, logf) }); err != nil {
		return err
	}
	if jsonPath != "" {
		return bench.WriteJSON(jsonPath, results)
	}
	return nil
}
