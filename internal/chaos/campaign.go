package chaos

import (
	"context"
	"fmt"
	"math/rand"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Result is what one campaign found.
type Result struct {
	Seed       int64
	Elapsed    time.Duration
	LockTTL    time.Duration
	Faults     map[string]int
	Prompts    int // answered 2xx
	Unacked    int // never answered 2xx within the writer's bound
	Retries    int // writer requests retried (errors, 5xx, timeouts)
	Events     int // entries in the streams
	Received   int // events received by all subscribers together
	Reconnects int // subscriber streams opened beyond the first
	Fatal      int // times an EventSource gave up (non-200) and was made again
	Violations int
	ByRule     map[string]int
	Samples    []string
	Takeovers  []time.Duration
	Missed     int // takeovers not seen within their bound
	// Deploys is the evidence of each rolling restart: its duration and
	// what clients saw meanwhile.
	Deploys []DeployWindow
}

// DeployWindow is what happened during one rolling restart.
type DeployWindow struct {
	At, End      time.Time
	WriterErrors int // prompt requests retried during the window
	Fatal        int // EventSources that gave up during the window
	Reconnects   int
}

// subscriber is a recording with a way to drop its connection.
type subscriber struct {
	rec  *recording
	drop func() bool
}

func (s subscriber) dropConn() bool { return s.drop() }
func (s subscriber) String() string { return s.rec.id }

// Run runs one campaign: it starts the cluster, puts the load on, injects
// faults until the duration or the fault count is reached, lets everything
// settle, checks, and stops everything it started.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	logf := cfg.Logf
	res := &Result{Seed: cfg.Seed, LockTTL: cfg.LockTTL, Faults: map[string]int{}}
	begin := time.Now()

	c, err := startCluster(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer c.stop()
	logf("cluster up: redis 127.0.0.1:%d, sandbox %s, nodes %s %s %s, nginx %s",
		c.redisPort, c.sandboxURL(), c.nodes[0].addr, c.nodes[1].addr, c.nodes[2].addr, c.LB())

	hc := lbClient()
	var wss []string
	for i := 1; i <= cfg.Workspaces; i++ {
		ws := "chaos-w" + strconv.Itoa(i)
		wss = append(wss, ws)
		if err := setup(ctx, hc, c.LB(), ws); err != nil {
			return nil, err
		}
	}

	nc, err := startNodeClients(cfg)
	if err != nil {
		return nil, err
	}
	defer nc.close(context.WithoutCancel(ctx))
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	var subs []subscriber
	var recs []*recording
	var subWG sync.WaitGroup
	for _, ws := range wss {
		url := c.LB() + "/v1/workspaces/" + ws + "/sessions/default/events/stream"
		for i := 0; i < cfg.GoClients; i++ {
			r := &recording{id: fmt.Sprintf("go-%s-%d", ws, i), kind: "go", ws: ws}
			g := &goClient{rec: r, url: url, broken: cfg.Break == BreakClientGap}
			recs = append(recs, r)
			subs = append(subs, subscriber{rec: r, drop: g.drop})
			subWG.Add(1)
			go func() { defer subWG.Done(); g.run(loadCtx) }()
		}
		for i := 0; i < cfg.NodeClients; i++ {
			r := &recording{id: fmt.Sprintf("es-%s-%d", ws, i), kind: "eventsource", ws: ws}
			recs = append(recs, r)
			if err := nc.open(r, url, ""); err != nil {
				return nil, err
			}
			subs = append(subs, subscriber{rec: r, drop: func() bool { return nc.drop(r.id) }})
		}
	}

	// Writers: one per workspace, each with its own random source from the
	// seed. stopWriters ends their retries at the latest after the settle
	// phase's bound.
	writeCtx, stopWriting := context.WithCancel(ctx)
	defer stopWriting()
	retryCtx, stopRetries := context.WithCancel(ctx)
	defer stopRetries()
	var writers []*writer
	var wWG sync.WaitGroup
	for i, ws := range wss {
		w := &writer{ws: ws, user: "user" + strconv.Itoa(i%3), lb: c.LB(), hc: hc, rng: rand.New(rand.NewSource(cfg.Seed*1000 + int64(i)))}
		writers = append(writers, w)
		wWG.Add(1)
		go func() { defer wWG.Done(); w.run(writeCtx, retryCtx) }()
	}

	// Faults.
	in := &injector{c: c, rng: rand.New(rand.NewSource(cfg.Seed)), wss: wss, kinds: cfg.Kinds, logf: logf}
	for _, s := range subs {
		in.clients = append(in.clients, s)
	}
	var faults []fault
	in.sleep(ctx, 3*time.Second) // let the load start
	faultStart := time.Now()
	for i := 0; ctx.Err() == nil && time.Since(faultStart) < cfg.Duration && (cfg.Faults == 0 || i < cfg.Faults); i++ {
		kind := in.pick()
		gap := in.between(cfg.Gap/2, cfg.Gap*3/2)
		f := in.inject(ctx, kind)
		faults = append(faults, f)
		res.Faults[kind]++
		var tk []string
		for _, t := range f.takeovers {
			if t.ok {
				tk = append(tk, fmt.Sprintf("%s %v", t.ws, t.d.Round(time.Millisecond)))
			} else {
				tk = append(tk, t.ws+" none")
			}
		}
		msg := fmt.Sprintf("fault %d: %s %s (%v)", i+1, kind, f.target, f.end.Sub(f.at).Round(time.Millisecond))
		if len(tk) > 0 {
			msg += "; takeover " + strings.Join(tk, ", ")
		}
		if f.err != nil {
			msg += "; error: " + f.err.Error()
		}
		logf("%s", msg)
		if kind == FaultDeploy {
			res.Deploys = append(res.Deploys, DeployWindow{At: f.at, End: f.end})
		}
		if f.err != nil {
			if err := c.ensureUp(ctx); err != nil {
				return nil, fmt.Errorf("after fault %s: %w", kind, err)
			}
		}
		in.sleep(ctx, gap)
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if err := c.ensureUp(ctx); err != nil {
		return nil, err
	}
	logf("%d faults injected in %v; settling", len(faults), time.Since(faultStart).Round(time.Second))

	// Settle: no new prompts; retries finish (bounded); every accepted
	// prompt's turn ends; every subscriber reaches the head.
	stopWriting()
	wDone := make(chan struct{})
	go func() { wWG.Wait(); close(wDone) }()
	select {
	case <-wDone:
	case <-time.After(promptRetryFor + 10*time.Second):
		stopRetries()
		<-wDone
	}
	var prompts []prompt
	for _, w := range writers {
		ps, retries := w.snapshot()
		prompts = append(prompts, ps...)
		res.Retries += retries
	}
	if err := waitTurns(ctx, c, wss, prompts, 120*time.Second); err != nil {
		logf("settle: %v", err)
	}
	heads := map[string]uint64{}
	for _, ws := range wss {
		s, err := readStream(ctx, c.rdb, ws)
		if err == nil {
			heads[ws] = s.head
		}
	}
	_ = waitUntil(ctx, 60*time.Second, "subscribers to reach the head", func() bool {
		for _, r := range recs {
			if r.last() < heads[r.ws] {
				return false
			}
		}
		return true
	})
	stopLoad()
	subWG.Wait()
	nc.close(ctx)

	// Check.
	streams := map[string]*stream{}
	for _, ws := range wss {
		s, err := readStream(ctx, c.rdb, ws)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", ws, err)
		}
		streams[ws] = s
		res.Events += len(s.entries)
	}
	received, err := readPromptLog(c.promptLog)
	if err != nil {
		return nil, err
	}
	v := check(checkInput{streams: streams, prompts: prompts, received: received, subs: recs, faults: faults, slack: 2 * time.Second})
	res.Violations, res.ByRule, res.Samples = v.n, v.byRule, v.samples
	for _, p := range prompts {
		if p.acked {
			res.Prompts++
		} else {
			res.Unacked++
		}
	}
	for _, r := range recs {
		r.mu.Lock()
		res.Received += len(r.events)
		res.Reconnects += max(0, r.connects-1)
		res.Fatal += r.fatal
		r.mu.Unlock()
	}
	for i := range res.Deploys {
		d := &res.Deploys[i]
		for _, w := range writers {
			d.WriterErrors += w.retriesIn(d.At, d.End)
		}
		for _, r := range recs {
			n, f := r.during(d.At, d.End)
			d.Reconnects += n
			d.Fatal += f
		}
	}
	for _, f := range faults {
		for _, t := range f.takeovers {
			if t.ok {
				res.Takeovers = append(res.Takeovers, t.d)
			} else {
				res.Missed++
			}
		}
	}
	if res.Missed > 0 {
		res.Violations += res.Missed
		if res.ByRule == nil {
			res.ByRule = map[string]int{}
		}
		res.ByRule["takeover"] += res.Missed
		res.Samples = append(res.Samples, fmt.Sprintf("takeover: %d owner losses without a new owner within 3×TTL+10s", res.Missed))
	}
	res.Elapsed = time.Since(begin)
	return res, nil
}

// setup creates a workspace and its default session through the LB,
// retrying briefly.
func setup(ctx context.Context, hc *http.Client, lb, ws string) error {
	return waitUntil(ctx, 20*time.Second, "workspace "+ws, func() bool {
		req, _ := http.NewRequestWithContext(ctx, "PUT", lb+"/v1/workspaces/"+ws, nil)
		resp, err := hc.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return false
		}
		req, _ = http.NewRequestWithContext(ctx, "POST", lb+"/v1/workspaces/"+ws+"/sessions", strings.NewReader(`{"id":"default"}`))
		req.Header.Set("Content-Type", "application/json")
		resp, err = hc.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode/100 == 2
	})
}

// waitTurns waits until every prompt answered 2xx has its turn_ended.
func waitTurns(ctx context.Context, c *cluster, wss []string, prompts []prompt, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		if turnsEnded(ctx, c, wss, prompts) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not every accepted prompt's turn ended within %v", within)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func turnsEnded(ctx context.Context, c *cluster, wss []string, prompts []prompt) bool {
	{
		ended := map[string]bool{}
		for _, ws := range wss {
			s, err := readStream(ctx, c.rdb, ws)
			if err != nil {
				return false
			}
			for _, e := range s.entries {
				if e.ev.Type == "session.status" && str(e.body, "status") == "turn_ended" {
					ended[ws+"/"+str(detail(e), "promptId")] = true
				}
			}
		}
		for _, p := range prompts {
			if p.acked && !ended[p.ws+"/"+p.id] {
				return false
			}
		}
		return true
	}
}
