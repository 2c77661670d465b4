package chaos

import (
	"context"
	"fmt"
	"math/rand"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Result is what one campaign found.
type Result struct {
	Seed    int64
	Elapsed time.Duration
	LockTTL time.Duration
	Faults  map[string]int
	Prompts int // answered 2xx
	Silent  int // of which silent turns (the agent quiet for over 10 s)
	Cancels int // cancel requests answered 2xx
	// LostWithRedis are prompts answered 2xx while a lossy restart's
	// window was open (between its snapshot and the restart): Redis may
	// have lost their inbox entry, so they need not be answered, only not
	// answered twice.
	LostWithRedis int
	// Resets are the reset events subscribers received (each allowed only
	// after a lossy restart); LostEntries what the lossy restarts lost.
	Resets      int
	LostEntries int
	Unacked     int // never answered 2xx within the writer's bound
	Retries     int // writer requests retried (errors, 5xx, timeouts)
	Events      int // entries in the streams
	Received    int // events received by all subscribers together
	Reconnects  int // subscriber streams opened beyond the first
	Fatal       int // times an EventSource gave up (non-200) and was made again
	Violations  int
	ByRule      map[string]int
	Samples     []string
	Takeovers   []time.Duration
	Missed      int // takeovers not seen within their bound
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
	if c.sentinelMode {
		logf("sentinel mode: replica %s, sentinel %s (n1, n2: %s; n3 through the fault proxy to the master)",
			c.replica.Addr(), c.sentinel.Addr(), c.sentinelURL())
	}

	hc := lbClient()
	// wss are the followed workspaces, idle the ones nobody follows;
	// sides the followed workspaces with a second session.
	var wss, idle, all []string
	sides := map[string]string{}
	var streams [][2]string // ws, sid
	for i := 1; i <= cfg.Workspaces+cfg.IdleWorkspaces; i++ {
		ws := "chaos-w" + strconv.Itoa(i)
		if i > cfg.Workspaces {
			ws = "chaos-idle" + strconv.Itoa(i-cfg.Workspaces)
			idle = append(idle, ws)
		} else {
			wss = append(wss, ws)
		}
		all = append(all, ws)
		if err := setup(ctx, hc, c.LB(), ws, "default"); err != nil {
			return nil, err
		}
		streams = append(streams, [2]string{ws, "default"})
		if i%2 == 0 && i <= cfg.Workspaces {
			sides[ws] = "side"
			if err := setup(ctx, hc, c.LB(), ws, "side"); err != nil {
				return nil, err
			}
			streams = append(streams, [2]string{ws, "side"})
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
		if side := sides[ws]; side != "" {
			// One Go subscriber of the second session.
			r := &recording{id: fmt.Sprintf("go-%s-%s", ws, side), kind: "go", ws: ws, sid: side}
			g := &goClient{rec: r, url: c.LB() + "/v1/workspaces/" + ws + "/sessions/" + side + "/events/stream", broken: cfg.Break == BreakClientGap}
			recs = append(recs, r)
			subs = append(subs, subscriber{rec: r, drop: g.drop})
			subWG.Add(1)
			go func() { defer subWG.Done(); g.run(loadCtx) }()
		}
		url := c.LB() + "/v1/workspaces/" + ws + "/sessions/default/events/stream"
		for i := 0; i < cfg.GoClients; i++ {
			r := &recording{id: fmt.Sprintf("go-%s-%d", ws, i), kind: "go", ws: ws, sid: "default"}
			g := &goClient{rec: r, url: url, broken: cfg.Break == BreakClientGap}
			recs = append(recs, r)
			subs = append(subs, subscriber{rec: r, drop: g.drop})
			subWG.Add(1)
			go func() { defer subWG.Done(); g.run(loadCtx) }()
		}
		for i := 0; i < cfg.NodeClients; i++ {
			r := &recording{id: fmt.Sprintf("es-%s-%d", ws, i), kind: "eventsource", ws: ws, sid: "default"}
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
	for i, ws := range all {
		w := &writer{ws: ws, user: "user" + strconv.Itoa(i%3), lb: c.LB(), hc: hc, rng: rand.New(rand.NewSource(cfg.Seed*1000 + int64(i))),
			side: sides[ws], idle: slices.Contains(idle, ws), quiet: cfg.NoSilent}
		writers = append(writers, w)
		wWG.Add(1)
		go func() { defer wWG.Done(); w.run(writeCtx, retryCtx) }()
	}

	// Faults.
	// Takeovers are required (and measured) for the followed workspaces
	// only: an idle one with nothing pending may stay unowned.
	in := &injector{c: c, rng: rand.New(rand.NewSource(cfg.Seed)), wss: wss, kinds: cfg.Kinds, logf: logf, streams: streams}
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
		msg := fmt.Sprintf("fault %d at %s: %s %s (%v)", i+1, f.at.Format("15:04:05.000"), kind, f.target, f.end.Sub(f.at).Round(time.Millisecond))
		if lossyKind(kind) {
			msg += fmt.Sprintf("; lost %d stream entries", f.lost)
			if f.lost > 0 {
				res.LostEntries += f.lost
			}
		}
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
	if c.sentinelMode {
		// The checker reads the master the Sentinel names.
		if err := c.syncMaster(ctx); err != nil {
			return nil, err
		}
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
		ps, retries, cancels := w.snapshot()
		prompts = append(prompts, ps...)
		res.Retries += retries
		res.Cancels += cancels
	}
	if err := waitTurns(ctx, c, streams, prompts, faults, 120*time.Second); err != nil {
		logf("settle: %v", err)
	}
	heads := map[string]uint64{}
	for _, k := range streams {
		s, err := readStream(ctx, c.db(), k[0], k[1])
		if err == nil {
			heads[k[0]+"/"+k[1]] = s.head
		}
	}
	_ = waitUntil(ctx, 60*time.Second, "subscribers to reach the head", func() bool {
		for _, r := range recs {
			if r.last() < heads[r.ws+"/"+r.sid] {
				return false
			}
		}
		return true
	})
	stopLoad()
	subWG.Wait()
	nc.close(ctx)

	// Check.
	final := map[string]*stream{}
	for _, k := range streams {
		s, err := readStream(ctx, c.db(), k[0], k[1])
		if err != nil {
			return nil, fmt.Errorf("read %s/%s: %w", k[0], k[1], err)
		}
		final[k[0]+"/"+k[1]] = s
		res.Events += len(s.entries)
	}
	received, err := readPromptLog(c.promptLog)
	if err != nil {
		return nil, err
	}
	v := check(checkInput{streams: final, prompts: prompts, received: received, subs: recs, faults: faults, slack: 2 * time.Second})
	res.Violations, res.ByRule, res.Samples = v.n, v.byRule, v.samples
	for _, p := range prompts {
		if p.acked {
			res.Prompts++
			if p.silent {
				res.Silent++
			}
			if lostWithRedis(p, faults) {
				res.LostWithRedis++
			}
		} else {
			res.Unacked++
		}
	}
	for _, r := range recs {
		r.mu.Lock()
		res.Received += len(r.events)
		res.Resets += len(r.resets)
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
func setup(ctx context.Context, hc *http.Client, lb, ws, sid string) error {
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
		req, _ = http.NewRequestWithContext(ctx, "POST", lb+"/v1/workspaces/"+ws+"/sessions", strings.NewReader(`{"id":"`+sid+`"}`))
		req.Header.Set("Content-Type", "application/json")
		resp, err = hc.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode/100 == 2
	})
}

// waitTurns waits until every prompt answered 2xx has its turn_ended
// (but for those a lossy restart may have lost).
func waitTurns(ctx context.Context, c *cluster, streams [][2]string, prompts []prompt, faults []fault, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		if turnsEnded(ctx, c, streams, prompts, faults) {
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

func turnsEnded(ctx context.Context, c *cluster, streams [][2]string, prompts []prompt, faults []fault) bool {
	ended := map[string]bool{}
	for _, k := range streams {
		s, err := readStream(ctx, c.db(), k[0], k[1])
		if err != nil {
			return false
		}
		for _, e := range s.entries {
			if e.ev.Type == "session.status" && str(e.body, "status") == "turn_ended" {
				ended[k[0]+"/"+str(detail(e), "promptId")] = true
			}
		}
	}
	for _, p := range prompts {
		if p.acked && !ended[p.ws+"/"+p.id] && !lostWithRedis(p, faults) {
			return false
		}
	}
	return true
}
