package eventlog_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-dev/tandem/eventlog"
	"github.com/tandem-dev/tandem/internal/redistest"
	"github.com/tandem-dev/tandem/redisurl"
)

type ackedAppend struct {
	index uint64
	seq   int
}

// writer appends {"seq":n} to one session without pause, as an owner
// would, and remembers what Redis acknowledged and when appends failed. A
// failed append has an unknown outcome (the reply may be what was lost),
// so the same seq is tried again: a seq may land twice, but an
// acknowledged one must never be missing.
type writer struct {
	mu       sync.Mutex
	acked    []ackedAppend
	ackedAt  []time.Time
	failures []time.Time // one per failed append
	errs     map[string]int
}

func (w *writer) run(ctx context.Context, l *eventlog.Log, ws, sid string, ep uint64) {
	seq := 0
	for ctx.Err() == nil {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		evs, err := l.Append(actx, ws, sid, ep, eventlog.Record{Type: "chat.user", Body: json.RawMessage(fmt.Sprintf(`{"seq":%d}`, seq))})
		cancel()
		now := time.Now()
		w.mu.Lock()
		if err != nil {
			if ctx.Err() == nil {
				w.failures = append(w.failures, now)
				w.errs[errClass(err)]++
			}
		} else {
			w.acked = append(w.acked, ackedAppend{evs[0].Index, seq})
			w.ackedAt = append(w.ackedAt, now)
			seq++
		}
		w.mu.Unlock()
		if err != nil {
			time.Sleep(20 * time.Millisecond)
		} else {
			time.Sleep(2 * time.Millisecond)
		}
	}
}

func errClass(err error) string {
	switch {
	case errors.Is(err, eventlog.ErrStaleWriter):
		return "stale writer"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, eventlog.ErrUnavailable):
		return "unavailable"
	}
	return "other"
}

// outage is the time from the first failure after since to the first
// acknowledged append after it (0 without failures), and the failures.
func (w *writer) outage(since time.Time) (time.Duration, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var first time.Time
	n := 0
	for _, f := range w.failures {
		if f.After(since) {
			if first.IsZero() {
				first = f
			}
			n++
		}
	}
	if first.IsZero() {
		return 0, 0
	}
	for _, a := range w.ackedAt {
		if a.After(first) {
			return a.Sub(first), n
		}
	}
	return time.Since(first), n
}

// firstAckAfter is the time from since to the first acknowledged append
// that started after it.
func (w *writer) firstAckAfter(since time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, a := range w.ackedAt {
		if a.After(since) {
			return a.Sub(since)
		}
	}
	return -1
}

func (w *writer) ackedSince(since time.Time) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, a := range w.ackedAt {
		if a.After(since) {
			n++
		}
	}
	return n
}

// bellCounter counts what a doorbell hears without ever blocking it.
type bellCounter struct {
	rings, subscribed atomic.Int64
	lastRing          atomic.Uint64
}

func (b *bellCounter) Ring(_ string, ev eventlog.Event, _ string) {
	b.rings.Add(1)
	b.lastRing.Store(ev.Index)
}
func (b *bellCounter) Subscribed(string)     { b.subscribed.Add(1) }
func (b *bellCounter) Signal(string, string) {}

// The master of a workspace's slot is failed over to its replica while a
// writer appends without pause: first in step with the replica (CLUSTER
// FAILOVER), then by SIGKILL and promotion. Appends fail for a bounded
// time, every acknowledged event is in the stream afterwards at its
// eventIndex (the replication lag on loopback is far below the writer's
// pace; see the README on what asynchronous replication can lose), the
// stream has no gap, and the doorbell resubscribes on the new master and
// rings again.
func TestClusterFailover(t *testing.T) {
	c := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3, ReplicasPerMaster: 1})
	rdb := c.Client(t)
	l := eventlog.New(rdb, eventlog.Config{})
	const ws, sid = "failover", "s"
	key := eventlog.FenceKey(ws)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var bc bellCounter
	bell := eventlog.NewBell(rdb, &bc)
	bellDone := make(chan error, 1)
	go func() { bellDone <- bell.Run(ctx) }()
	if err := bell.Subscribe(ctx, ws); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the first subscription", 10*time.Second, func() bool { return bc.subscribed.Load() == 1 })

	ep, err := l.AcquireEpoch(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	w := &writer{errs: map[string]int{}}
	wctx, stopWriter := context.WithCancel(ctx)
	writerDone := make(chan struct{})
	go func() { defer close(writerDone); w.run(wctx, l, ws, sid, ep) }()
	waitUntil(t, "appends before the failover", 10*time.Second, func() bool { return w.ackedSince(time.Time{}) >= 50 })

	// ringsAgain waits until the doorbell rings for an event appended now.
	ringsAgain := func(t *testing.T) {
		t.Helper()
		head, err := l.Head(ctx, ws, sid)
		if err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "a ring of a new event", 20*time.Second, func() bool { return bc.lastRing.Load() > head.Index })
	}
	// measure fails the master over with fail and reports how long appends
	// failed.
	measure := func(t *testing.T, fail func()) {
		t.Helper()
		start := time.Now()
		fail()
		c.WaitHealthy(t)
		healthy := time.Since(start)
		waitUntil(t, "appends after the failover", 20*time.Second, func() bool { return w.ackedSince(start) >= 50 })
		outage, failed := w.outage(start)
		t.Logf("the cluster was healthy again after %v; appends failed for %v (%d failed appends, each retried by go-redis for up to 2s); the first append acknowledged after the failover began came %v after it",
			healthy.Round(time.Millisecond), outage.Round(time.Millisecond), failed, w.firstAckAfter(start).Round(time.Millisecond))
		if outage > 10*time.Second {
			t.Errorf("appends failed for %v", outage)
		}
	}

	t.Run("CLUSTER FAILOVER", func(t *testing.T) {
		// The doorbell's connection to the old master stays: a replica
		// hears every PUBLISH of the cluster too.
		measure(t, func() { c.Failover(t, key) })
		ringsAgain(t)
	})
	t.Run("SIGKILL of the node the doorbell listens on", func(t *testing.T) {
		srv := subscriberNode(t, c, eventlog.NotifyChannel(ws))
		subs := bc.subscribed.Load()
		srv.Kill()
		waitUntil(t, "the doorbell's resubscription", 20*time.Second, func() bool { return bc.subscribed.Load() > subs })
		ringsAgain(t)
		srv.Restart(t) // back as a replica, for the next failover
		c.WaitHealthy(t)
	})
	t.Run("SIGKILL of the master", func(t *testing.T) {
		m := c.MasterFor(t, key)
		subs := bc.subscribed.Load()
		onMaster := subscriberNode(t, c, eventlog.NotifyChannel(ws)) == m
		measure(t, m.Kill)
		if onMaster {
			waitUntil(t, "the doorbell's resubscription", 20*time.Second, func() bool { return bc.subscribed.Load() > subs })
		}
		ringsAgain(t)
	})
	stopWriter()
	<-writerDone

	lost, dup, total := ackedLost(t, l, w, ws, sid)
	t.Logf("%d events acknowledged, %d lost, %d appends of unknown outcome landed twice; errors %v", total, lost, dup, w.errs)
	if lost > 0 {
		t.Errorf("%d acknowledged events lost", lost)
	}
	cancel()
	if err := <-bellDone; !errors.Is(err, context.Canceled) {
		t.Errorf("bell: %v", err)
	}
}

// ackedLost reads the whole stream and counts the acknowledged events
// that are not at the eventIndex their append returned, and the seqs that
// landed twice (a retried append of unknown outcome); it fails the test on
// a gap.
func ackedLost(t *testing.T, l *eventlog.Log, w *writer, ws, sid string) (lost, dup, total int) {
	t.Helper()
	var got []eventlog.Event
	after := eventlog.Cursor{}
	for {
		evs, _, err := l.Read(context.Background(), ws, sid, after, eventlog.MaxPage)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			break
		}
		got = append(got, evs...)
		after, _ = eventlog.ParseCursor(evs[len(evs)-1].ID)
	}
	seqAt := map[uint64]int{}
	seen := map[int]int{}
	for i, ev := range got {
		if ev.Index != uint64(i+1) {
			t.Fatalf("event %d has eventIndex %d: a gap", i, ev.Index)
		}
		var b struct{ Seq int }
		json.Unmarshal(ev.Body, &b)
		seqAt[ev.Index] = b.Seq
		seen[b.Seq]++
	}
	for _, n := range seen {
		if n > 1 {
			dup++
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, a := range w.acked {
		if s, ok := seqAt[a.index]; !ok || s != a.seq {
			lost++
		}
	}
	return lost, dup, len(w.acked)
}

// subscriberNode returns the node where ch has a subscriber.
func subscriberNode(t testing.TB, c *redistest.Cluster, ch string) *redistest.Server {
	t.Helper()
	for _, srv := range c.Nodes {
		v, err := srv.Do(context.Background(), "PUBSUB", "NUMSUB", ch)
		if err != nil {
			continue // a killed node
		}
		if r, ok := v.([]any); ok && len(r) == 2 && r[1] != int64(0) {
			return srv
		}
	}
	t.Fatalf("no node has a subscriber of %s", ch)
	return nil
}

func waitUntil(t testing.TB, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A failover asked of the sentinel while a writer appends without pause,
// through the client a node makes of a redis+sentinel:// URL. Sentinel
// promotes the replica while the old master still takes writes: go-redis
// moves its connections when the sentinel announces the switch, and
// Sentinel turns the old master into a replica only seconds later,
// dropping what it took meanwhile. The test measures that loss (see the
// README) and checks that appends go on on the new master and that the
// doorbell, which go-redis leaves on the old master, finds the new one
// (Bell's probe) and rings again.
func TestSentinelFailover(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	master := redistest.Start(t, redistest.Options{})
	redistest.StartReplica(t, master, redistest.Options{})
	s := redistest.StartSentinel(t, master, "tandem", 1)
	rdb, err := redisurl.NewClient(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	l := eventlog.New(rdb, eventlog.Config{})
	const ws, sid = "failover", "s"
	var bc bellCounter
	bell := eventlog.NewBell(rdb, &bc)
	bellDone := make(chan error, 1)
	go func() { bellDone <- bell.Run(ctx) }()
	if err := bell.Subscribe(ctx, ws); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the first subscription", 10*time.Second, func() bool { return bc.subscribed.Load() == 1 })
	ep, err := l.AcquireEpoch(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	w := &writer{errs: map[string]int{}}
	wctx, stopWriter := context.WithCancel(ctx)
	writerDone := make(chan struct{})
	go func() { defer close(writerDone); w.run(wctx, l, ws, sid, ep) }()
	waitUntil(t, "appends before the failover", 10*time.Second, func() bool { return w.ackedSince(time.Time{}) >= 50 })

	old := s.MasterAddr(t)
	start := time.Now()
	if _, err := s.Do(ctx, "SENTINEL", "FAILOVER", s.Name); err != nil {
		t.Fatal(err)
	}
	now := s.WaitMaster(t, old)
	promoted := time.Since(start)
	// The client has switched when its writes land on the new master.
	var switched time.Duration
	waitUntil(t, "the client's switch to the new master", 20*time.Second, func() bool {
		port, err := rdb.ConfigGet(ctx, "port").Result()
		if err == nil && "127.0.0.1:"+port["port"] == now {
			switched = time.Since(start)
			return true
		}
		return false
	})
	after := time.Now()
	waitUntil(t, "appends on the new master", 20*time.Second, func() bool { return w.ackedSince(after) >= 50 })
	outage, failed := w.outage(start)
	// The doorbell moves to the new master (its rings from the old one
	// carry eventIndexes the new master gives to other events).
	waitUntil(t, "the doorbell's move to the new master", 20*time.Second, func() bool { return bc.subscribed.Load() > 1 })
	head, err := l.Head(ctx, ws, sid)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "a ring of a new event", 20*time.Second, func() bool { return bc.lastRing.Load() > head.Index })
	deaf := time.Since(start)
	stopWriter()
	<-writerDone
	lost, dup, total := ackedLost(t, l, w, ws, sid)
	t.Logf("%s was promoted %v after SENTINEL FAILOVER and the client wrote there %v after it; appends failed for %v (%d failed); %d events acknowledged, %d of them lost (taken by the old master before the client switched); the doorbell rang again %v after the failover began (subscribed %d times); %d landed twice; errors %v",
		now, promoted.Round(time.Millisecond), switched.Round(time.Millisecond), outage.Round(time.Millisecond), failed, total, lost, deaf.Round(time.Millisecond), bc.subscribed.Load(), dup, w.errs)
	if deaf > 10*time.Second {
		t.Errorf("the doorbell was deaf for %v", deaf)
	}
	cancel()
	<-bellDone
}
