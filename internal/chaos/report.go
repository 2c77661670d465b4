package chaos

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteTable prints the campaign table: one row per run and, for more
// than one run, a total.
func WriteTable(w io.Writer, results []*Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "run\tseed\ttime\tfaults\tkill\tstop\tdeploy\tredis\tsandbox\tdrop\tlossy\trstop\tpartition\tlatency\tttlpause\tfailover\tresets\tprompts\tevents\treceived\treconnects\tviolations\ttakeover p50\tp99\tmax\tTTL\t")
	var total Result
	total.Faults = map[string]int{}
	var elapsed time.Duration
	for i, r := range results {
		writeRow(tw, fmt.Sprint(i+1), fmt.Sprint(r.Seed), r, r.Elapsed)
		for k, n := range r.Faults {
			total.Faults[k] += n
		}
		total.Prompts += r.Prompts
		total.Events += r.Events
		total.Received += r.Received
		total.Reconnects += r.Reconnects
		total.Violations += r.Violations
		total.Resets += r.Resets
		total.Takeovers = append(total.Takeovers, r.Takeovers...)
		total.LockTTL = r.LockTTL
		elapsed += r.Elapsed
	}
	if len(results) > 1 {
		writeRow(tw, fmt.Sprintf("all %d", len(results)), "", &total, elapsed)
	}
	tw.Flush()
}

func writeRow(tw io.Writer, run, seed string, r *Result, elapsed time.Duration) {
	n := 0
	for _, k := range FaultKinds {
		n += r.Faults[k]
	}
	ms := func(d time.Duration) string { return d.Round(10 * time.Millisecond).String() }
	fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t", run, seed, elapsed.Round(time.Second), n)
	for _, k := range FaultKinds {
		fmt.Fprintf(tw, "%d\t", r.Faults[k])
	}
	fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t\n",
		r.Resets, r.Prompts, r.Events, r.Received, r.Reconnects, r.Violations,
		ms(quantile(r.Takeovers, 0.5)), ms(quantile(r.Takeovers, 0.99)), ms(quantile(r.Takeovers, 1)), r.LockTTL)
}

// WriteDetails prints what the table summarises: violations by rule with
// examples, takeovers, writer retries and the rolling restarts.
func WriteDetails(w io.Writer, r *Result) {
	fmt.Fprintf(w, "seed %d: %d prompts answered 2xx (%d never, within %v of retries), %d writer retries, %d EventSource re-creations after a non-200\n",
		r.Seed, r.Prompts, r.Unacked, promptRetryFor, r.Retries, r.Fatal)
	fmt.Fprintf(w, "  workload: %d silent turns (agent quiet over %v), %d cancels; %d prompts answered 2xx inside a lossy restart's window\n",
		r.Silent, silentMin, r.Cancels, r.LostWithRedis)
	if r.Faults[FaultLossy] > 0 {
		fmt.Fprintf(w, "  lossy restarts: %d, losing %d stream entries in all; %d resets seen by subscribers\n", r.Faults[FaultLossy], r.LostEntries, r.Resets)
	}
	if r.Faults[FaultFailover] > 0 {
		fmt.Fprintf(w, "  failovers: %d (lossy restarts and failovers together lost %d stream entries; %d resets seen by subscribers)\n", r.Faults[FaultFailover], r.LostEntries, r.Resets)
	}
	fmt.Fprintf(w, "  takeovers: %d measured, p50 %v, p99 %v, max %v (lock TTL %v; bound TTL+1s = %v)\n",
		len(r.Takeovers), quantile(r.Takeovers, 0.5).Round(time.Millisecond), quantile(r.Takeovers, 0.99).Round(time.Millisecond),
		quantile(r.Takeovers, 1).Round(time.Millisecond), r.LockTTL, r.LockTTL+time.Second)
	for i, d := range r.Deploys {
		fmt.Fprintf(w, "  rolling restart %d: %v; during it: %d subscriber reconnects, %d EventSource gave up, %d prompt requests retried\n",
			i+1, d.End.Sub(d.At).Round(time.Millisecond), d.Reconnects, d.Fatal, d.WriterErrors)
	}
	if r.Violations == 0 {
		fmt.Fprintln(w, "  violations: none")
		return
	}
	var rules []string
	for k, n := range r.ByRule {
		rules = append(rules, fmt.Sprintf("%s %d", k, n))
	}
	fmt.Fprintf(w, "  VIOLATIONS: %d (%s)\n", r.Violations, strings.Join(rules, ", "))
	for _, s := range r.Samples {
		fmt.Fprintln(w, "    "+s)
	}
}
