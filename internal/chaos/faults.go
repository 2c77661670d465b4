package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"slices"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tandem-dev/tandem/eventlog"
)

// fault is one injected fault and what followed it.
type fault struct {
	kind   string
	target string
	at     time.Time
	end    time.Time // when the injector was done with it (processes back)
	// takeovers are the workspaces the fault took the owner from, and how
	// long until a live node owned each again.
	takeovers []takeover
	err       error
	// lost is, for a lossy restart, how many stream entries Redis held
	// just before the kill and not after the restart; for a failover, how
	// many the old master held just before its SIGSTOP and the promoted
	// replica did not (at least that many acknowledged writes were lost;
	// -1 when it could not be read).
	lost int
	// snapAt is when the snapshot a lossy restart went back to was taken,
	// or when a failover cut the replication: the writes acknowledged
	// from then until end may be lost.
	snapAt time.Time
}

type takeover struct {
	ws      string
	d       time.Duration
	ok      bool // a new owner within the bound
	nodeTag string
}

// injector chooses and injects faults.
type injector struct {
	c       *cluster
	rng     *rand.Rand
	clients []dropper
	wss     []string
	kinds   []string // allowed kinds; all when empty
	logf    func(string, ...any)
	// streams are the ws/sid of every stream, for counting what a lossy
	// restart lost.
	streams [][2]string
	// first is the seeded order in which the first faults go through
	// every allowed kind once, so that even a short campaign reaches all.
	first []string
	began bool
}

// dropper is a subscriber whose connection can be reset.
type dropper interface{ dropConn() bool }

// weights of the kinds, in FaultKinds order: deploys take long, drops are
// cheap; the lossy restart is the costliest of the new kinds to recover
// from and the one the checker is most interested in; a failover takes
// some 10 s.
var faultWeights = []int{3, 2, 1, 2, 2, 3, 2, 1, 2, 1, 2, 2}

// pick returns the next kind: first every allowed kind once, in an order
// drawn from the seed, then by weight.
func (in *injector) pick() string {
	if !in.began {
		in.began = true
		for _, k := range FaultKinds {
			if len(in.kinds) == 0 || slices.Contains(in.kinds, k) {
				in.first = append(in.first, k)
			}
		}
		in.rng.Shuffle(len(in.first), func(i, j int) { in.first[i], in.first[j] = in.first[j], in.first[i] })
	}
	if len(in.first) > 0 {
		k := in.first[0]
		in.first = in.first[1:]
		return k
	}
	weights := make([]int, len(faultWeights))
	total := 0
	for i, w := range faultWeights {
		if len(in.kinds) == 0 || slices.Contains(in.kinds, FaultKinds[i]) {
			weights[i] = w
			total += w
		}
	}
	n := in.rng.Intn(total)
	for i, w := range weights {
		if n < w {
			return FaultKinds[i]
		}
		n -= w
	}
	return FaultDrop
}

// owners returns, per node id, the workspaces it owns now with their
// epochs, from the {ws:ID}:owner hashes.
func (in *injector) owners(ctx context.Context) map[string]map[string]uint64 {
	out := map[string]map[string]uint64{}
	for _, ws := range in.wss {
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		v, err := in.c.db().HGetAll(ctx, "{ws:"+ws+"}:owner").Result()
		cancel()
		if err != nil || v["node"] == "" {
			continue
		}
		ep, _ := strconv.ParseUint(v["epoch"], 10, 64)
		if out[v["node"]] == nil {
			out[v["node"]] = map[string]uint64{}
		}
		out[v["node"]][ws] = ep
	}
	return out
}

// watchTakeover measures, for each workspace in owned, the time from
// since until a node holds its lock with a newer epoch. Each watch is
// bounded by limit; wait blocks until all are done.
type takeoverWatch struct {
	wg  sync.WaitGroup
	mu  sync.Mutex
	res []takeover
}

func (in *injector) watchTakeover(ctx context.Context, tw *takeoverWatch, owned map[string]uint64, since time.Time, limit time.Duration, tag string) {
	for ws, ep := range owned {
		tw.wg.Add(1)
		go func() {
			defer tw.wg.Done()
			t := takeover{ws: ws, nodeTag: tag}
			deadline := since.Add(limit)
			for time.Now().Before(deadline) && ctx.Err() == nil {
				qctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
				v, err := in.c.db().HGetAll(qctx, "{ws:"+ws+"}:owner").Result()
				var lock int64
				if err == nil {
					lock, err = in.c.db().Exists(qctx, "{ws:"+ws+"}:lock").Result()
				}
				cancel()
				if err == nil && lock == 1 {
					if e, _ := strconv.ParseUint(v["epoch"], 10, 64); e > ep {
						t.d, t.ok = time.Since(since), true
						break
					}
				}
				time.Sleep(20 * time.Millisecond)
			}
			tw.mu.Lock()
			tw.res = append(tw.res, t)
			tw.mu.Unlock()
		}()
	}
}

func (tw *takeoverWatch) wait() []takeover {
	tw.wg.Wait()
	sort.Slice(tw.res, func(i, j int) bool { return tw.res[i].ws < tw.res[j].ws })
	return tw.res
}

func (in *injector) sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func (in *injector) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(in.rng.Int63n(int64(hi-lo)+1))
}

// inject carries out one fault of kind and returns once the cluster is
// whole again (a killed process restarted) and every takeover it caused
// was measured.
func (in *injector) inject(ctx context.Context, kind string) fault {
	ttl := in.c.cfg.LockTTL
	limit := 3*ttl + 10*time.Second
	f := fault{kind: kind}
	tw := &takeoverWatch{}
	// Choices come from the seed before anything is looked at, so that a
	// replay makes the same ones.
	nodeIdx := in.rng.Intn(len(in.c.nodes))
	wsIdx := in.rng.Intn(len(in.wss))
	clientIdx := in.rng.Intn(max(1, len(in.clients)))
	switch kind {
	case FaultKill:
		// Mostly an owner: that is where it hurts.
		n := in.c.nodes[nodeIdx]
		owners := in.owners(ctx)
		if in.rng.Intn(4) != 0 {
			if o := in.ownerNode(ctx, in.wss[wsIdx]); o != nil {
				n = o
			}
		}
		pause := in.between(200*time.Millisecond, 2*time.Second)
		f.target, f.at = n.id, time.Now()
		n.kill()
		in.watchTakeover(ctx, tw, owners[n.id], f.at, limit, n.id)
		in.sleep(ctx, pause)
		f.err = in.c.startNode(ctx, n)
	case FaultStop:
		n := in.ownerNode(ctx, in.wss[wsIdx])
		if n == nil {
			n = in.c.nodes[nodeIdx]
		}
		hold := ttl + in.between(500*time.Millisecond, 2*time.Second)
		owners := in.owners(ctx)
		f.target, f.at = n.id, time.Now()
		f.err = n.signal(syscall.SIGSTOP)
		in.watchTakeover(ctx, tw, owners[n.id], f.at, limit, n.id)
		in.sleep(ctx, hold)
		_ = n.signal(syscall.SIGCONT)
	case FaultDeploy:
		f.target, f.at = "all", time.Now()
		for i, n := range in.c.nodes {
			if i > 0 {
				in.sleep(ctx, in.between(500*time.Millisecond, 1500*time.Millisecond))
			}
			owners := in.owners(ctx)
			at := time.Now()
			if !n.term(20 * time.Second) {
				f.err = fmt.Errorf("%s did not stop within 20s of SIGTERM", n.id)
			}
			in.watchTakeover(ctx, tw, owners[n.id], at, limit, n.id)
			if err := in.c.startNode(ctx, n); err != nil {
				f.err = err
				break
			}
		}
	case FaultRedis:
		pause := in.between(200*time.Millisecond, 1500*time.Millisecond)
		f.target, f.at = "redis", time.Now()
		in.c.redis.Kill()
		in.sleep(ctx, pause)
		f.err = in.c.restartRedis(ctx)
	case FaultSandbox:
		pause := in.between(300*time.Millisecond, 3*time.Second)
		f.target, f.at = "sandbox", time.Now()
		in.c.killSandbox()
		in.sleep(ctx, pause)
		f.err = in.c.restartSandbox(ctx)
	case FaultLossy:
		in.lossy(ctx, &f, tw, wsIdx, limit)
	case FaultRedisStop:
		// Past go-redis's default 3 s read timeout (the nodes'), and so
		// past the lock TTL as well.
		hold := 3*time.Second + in.between(500*time.Millisecond, 2500*time.Millisecond)
		owners := in.owners(ctx)
		f.target, f.at = "redis", time.Now()
		if f.err = in.c.stopRedis(ctx); f.err == nil {
			in.sleep(ctx, hold)
			in.c.contRedis()
			// Every owner's lock expired meanwhile: each workspace is
			// owned again (the same node or another, under a new epoch),
			// measured from when Redis answers again.
			back := time.Now()
			for _, m := range owners {
				in.watchTakeover(ctx, tw, m, back, limit, "redis")
			}
		}
	case FaultPartition:
		n := in.c.proxied
		hold := in.rng.Intn(2) == 0
		// Either well within the lock TTL (the node keeps its lock) or
		// well past it (it loses it): a takeover is required only then.
		d := in.between(time.Second, max(ttl-time.Second/2, time.Second))
		long := in.rng.Intn(2) == 0
		if long {
			d = ttl + in.between(time.Second, 3*time.Second)
		}
		owners := in.owners(ctx)
		mode := "drop"
		if hold {
			mode = "hold"
		}
		f.target, f.at = fmt.Sprintf("%s %s %v", n.id, mode, d.Round(time.Millisecond)), time.Now()
		if hold {
			in.c.proxy.PartitionHold()
		} else {
			in.c.proxy.PartitionDrop()
		}
		if long {
			in.watchTakeover(ctx, tw, owners[n.id], f.at, limit, n.id)
		}
		in.sleep(ctx, d)
		in.c.proxy.Heal()
	case FaultLatency:
		lat := in.between(100*time.Millisecond, 800*time.Millisecond)
		d := in.between(2*time.Second, 6*time.Second)
		f.target, f.at = fmt.Sprintf("%s +%v for %v", in.c.proxied.id, lat.Round(time.Millisecond), d.Round(time.Millisecond)), time.Now()
		in.c.proxy.SetLatency(lat)
		in.sleep(ctx, d)
		in.c.proxy.SetLatency(0)
	case FaultTTLPause:
		n := in.ownerNode(ctx, in.wss[wsIdx])
		if n == nil {
			n = in.c.nodes[nodeIdx]
		}
		hold := ttl + in.between(50*time.Millisecond, 400*time.Millisecond)
		owners := in.owners(ctx)
		f.target, f.at = fmt.Sprintf("%s %v", n.id, hold.Round(time.Millisecond)), time.Now()
		f.err = n.signal(syscall.SIGSTOP)
		in.watchTakeover(ctx, tw, owners[n.id], f.at, limit, n.id)
		in.sleep(ctx, hold)
		_ = n.signal(syscall.SIGCONT)
	case FaultFailover:
		in.failover(ctx, &f)
	case FaultDrop:
		f.at = time.Now()
		if len(in.clients) > 0 {
			d := in.clients[clientIdx]
			f.target = fmt.Sprint(d)
			if !d.dropConn() {
				f.target += " (no connection)"
			}
		}
	}
	f.takeovers = tw.wait()
	f.end = time.Now()
	return f
}

// ownerNode is the node that owns ws now, or nil.
func (in *injector) ownerNode(ctx context.Context, ws string) *tandemNode {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	id, err := in.c.db().HGet(ctx, "{ws:"+ws+"}:owner", "node").Result()
	if err != nil {
		return nil
	}
	for _, n := range in.c.nodes {
		if n.id == id {
			return n
		}
	}
	return nil
}

// lossy restarts Redis from a snapshot taken a moment before the kill, so
// that the writes it acknowledged in between are lost. Half the time an
// owner is killed first and the snapshot taken before the next owner's
// fence increment, which is lost with the rest: the epoch can then be
// handed out again.
func (in *injector) lossy(ctx context.Context, f *fault, tw *takeoverWatch, wsIdx int, limit time.Duration) {
	ttl := in.c.cfg.LockTTL
	window := in.between(500*time.Millisecond, 2*time.Second)
	duringTakeover := in.rng.Intn(2) == 0
	ws := in.wss[wsIdx]
	var victim *tandemNode
	var oldEpoch uint64
	f.target = "redis"
	if duringTakeover {
		owners := in.owners(ctx)
		if victim = in.ownerNode(ctx, ws); victim != nil {
			oldEpoch = owners[victim.id][ws]
			f.target = "redis, during the takeover of " + ws + " from " + victim.id
		}
	}
	f.at = time.Now()
	if victim != nil {
		owners := in.owners(ctx)
		victim.kill()
		in.watchTakeover(ctx, tw, owners[victim.id], f.at, limit, victim.id)
	}
	if f.err = in.c.snapshot(ctx); f.err != nil {
		f.lost = -1
		if victim != nil {
			f.err = errors.Join(f.err, in.c.startNode(ctx, victim))
		}
		return
	}
	f.snapAt = time.Now()
	if victim != nil {
		// Until the next owner holds the workspace (its INCR is after the
		// snapshot), and a moment for it to write.
		_ = waitUntil(ctx, ttl+3*time.Second, "a new owner of "+ws, func() bool {
			qctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			defer cancel()
			v, err := in.c.db().HGet(qctx, "{ws:"+ws+"}:owner", "epoch").Uint64()
			return err == nil && v > oldEpoch
		})
		window = in.between(200*time.Millisecond, 800*time.Millisecond)
	}
	in.sleep(ctx, window)
	before := in.entries(ctx)
	in.c.redis.Kill()
	if err := in.c.restoreSnapshot(); err != nil {
		f.err = err
	}
	f.err = errors.Join(f.err, in.c.restartRedis(ctx))
	after := in.entries(ctx)
	f.lost = -1
	if before >= 0 && after >= 0 {
		f.lost = before - after
	}
	if victim != nil {
		f.err = errors.Join(f.err, in.c.startNode(ctx, victim))
	}
}

// entries is how many entries the campaign's streams hold now on the
// master, or -1.
func (in *injector) entries(ctx context.Context) int { return in.entriesOn(ctx, in.c.db()) }

// entriesOn is how many entries the streams hold on rdb, or -1.
func (in *injector) entriesOn(ctx context.Context, rdb *redis.Client) int {
	n := 0
	for _, s := range in.streams {
		qctx, cancel := context.WithTimeout(ctx, time.Second)
		l, err := rdb.XLen(qctx, eventlog.StreamKey(s[0], s[1])).Result()
		cancel()
		if err != nil {
			return -1
		}
		n += int(l)
	}
	return n
}
