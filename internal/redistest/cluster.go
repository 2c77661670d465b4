package redistest

import (
	"context"
	"fmt"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tandem-dev/tandem/redisurl"
)

// ClusterOptions configure a test Redis Cluster.
type ClusterOptions struct {
	// Masters is the number of masters (default 3, the least Redis
	// accepts); ReplicasPerMaster the replicas of each (default 0).
	Masters           int
	ReplicasPerMaster int
	// AppendOnly turns on appendonly with fsync always on every node, so
	// that Server.Restart keeps the data.
	AppendOnly bool
	// NodeTimeout is cluster-node-timeout: how long a master may be
	// unreachable before a replica replaces it (default 1s).
	NodeTimeout time.Duration
}

// Cluster is a Redis Cluster of redis-server processes on loopback ports,
// created with redis-cli --cluster create and killed by a cleanup.
//
//	c := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3, ReplicasPerMaster: 1})
//	rdb := c.Client(t)
//	m := c.MasterFor(t, "{ws:a}:fence")
//	m.Kill()
//	c.WaitHealthy(t) // a replica of m took its slots
//
// Nodes are Servers: Kill, Restart and Do work on them as on one server
// (a restarted node keeps its nodes.conf and rejoins).
type Cluster struct {
	opts  ClusterOptions
	Nodes []*Server
}

// StartCluster starts the nodes, creates the cluster and waits until every
// node reports it healthy and every replica is in sync.
func StartCluster(tb testing.TB, opts ClusterOptions) *Cluster {
	tb.Helper()
	if opts.Masters == 0 {
		opts.Masters = 3
	}
	if opts.NodeTimeout == 0 {
		opts.NodeTimeout = time.Second
	}
	if _, err := exec.LookPath("redis-cli"); err != nil {
		tb.Fatalf("redis-cli not found on PATH (it comes with redis-server): %v", err)
	}
	c := &Cluster{opts: opts}
	n := opts.Masters * (1 + opts.ReplicasPerMaster)
	used := map[int]bool{}
	port := func() int {
		for i := 0; i < 100; i++ {
			if p := FreePort(tb); !used[p] {
				used[p] = true
				return p
			}
		}
		tb.Fatal("no free port")
		return 0
	}
	args := make([]string, 0, n+6)
	args = append(args, "--cluster", "create")
	for i := 0; i < n; i++ {
		srv := Start(tb, Options{
			AppendOnly: opts.AppendOnly,
			Port:       port(),
			Args: []string{
				"--cluster-enabled", "yes",
				"--cluster-config-file", "nodes.conf",
				"--cluster-node-timeout", strconv.FormatInt(opts.NodeTimeout.Milliseconds(), 10),
				"--cluster-port", strconv.Itoa(port()),
				// A replica with stale data may still be promoted: tests
				// of failover want it to happen, not to wait for an
				// operator.
				"--cluster-replica-validity-factor", "0",
			},
		})
		c.Nodes = append(c.Nodes, srv)
		args = append(args, srv.Addr())
	}
	args = append(args, "--cluster-replicas", strconv.Itoa(opts.ReplicasPerMaster), "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	c.WaitHealthy(tb)
	return c
}

// Addrs are the host:port of every node.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, s := range c.Nodes {
		out[i] = s.Addr()
	}
	return out
}

// URL is the cluster as a node's TANDEM_REDIS_URL: redis+cluster:// with
// every node as a seed.
func (c *Cluster) URL() string { return "redis+cluster://" + strings.Join(c.Addrs(), ",") }

// Client returns the client a node makes of URL (package redisurl),
// closed by a cleanup.
func (c *Cluster) Client(tb testing.TB) *redis.ClusterClient {
	tb.Helper()
	rdb, err := redisurl.NewClient(c.URL())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { rdb.Close() })
	return rdb.(*redis.ClusterClient)
}

// FlushAll empties every master (and so every replica): as if the whole
// cluster had lost its data.
func (c *Cluster) FlushAll(tb testing.TB) {
	tb.Helper()
	ctx := context.Background()
	for _, s := range c.live() {
		if role, _ := s.role(ctx); role == "master" {
			if _, err := s.Do(ctx, "FLUSHALL"); err != nil {
				tb.Fatalf("FLUSHALL on %s: %v", s.Addr(), err)
			}
		}
	}
}

// MasterFor returns the node that serves key's slot now.
func (c *Cluster) MasterFor(tb testing.TB, key string) *Server {
	tb.Helper()
	ctx := context.Background()
	for _, s := range c.live() {
		slot, err := s.Do(ctx, "CLUSTER", "KEYSLOT", key)
		if err != nil {
			continue
		}
		view, err := s.clusterNodes(ctx)
		if err != nil {
			continue
		}
		if addr := view.masterOf(int(slot.(int64))); addr != "" {
			if srv := c.byAddr(addr); srv != nil {
				return srv
			}
		}
	}
	tb.Fatalf("no live node knows the master of %q", key)
	return nil
}

// ReplicasOf returns the live replicas of master.
func (c *Cluster) ReplicasOf(tb testing.TB, master *Server) []*Server {
	tb.Helper()
	view, err := master.clusterNodes(context.Background())
	if err != nil {
		tb.Fatalf("CLUSTER NODES on %s: %v", master.Addr(), err)
	}
	id := view.self().id
	var out []*Server
	for _, n := range view {
		if n.masterID == id && !n.failed() {
			if s := c.byAddr(n.addr); s != nil && s.alive() {
				out = append(out, s)
			}
		}
	}
	return out
}

// Failover has a replica of key's master take over its slots with
// CLUSTER FAILOVER (the master hands over in step with it: nothing
// acknowledged is lost) and waits until the cluster agrees. It returns
// the new master.
func (c *Cluster) Failover(tb testing.TB, key string) *Server {
	tb.Helper()
	old := c.MasterFor(tb, key)
	reps := c.ReplicasOf(tb, old)
	if len(reps) == 0 {
		tb.Fatalf("master %s has no replica to fail over to", old.Addr())
	}
	if _, err := reps[0].Do(context.Background(), "CLUSTER", "FAILOVER"); err != nil {
		tb.Fatalf("CLUSTER FAILOVER on %s: %v", reps[0].Addr(), err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if role, _ := reps[0].role(context.Background()); role == "master" {
			c.WaitHealthy(tb)
			return reps[0]
		}
		time.Sleep(20 * time.Millisecond)
	}
	tb.Fatalf("replica %s did not take over from %s within 20s", reps[0].Addr(), old.Addr())
	return nil
}

// WaitHealthy waits until every live node reports cluster_state:ok, agrees
// on one live master for every slot, and every live replica's link to its
// master is up and in sync. Killed nodes are ignored.
func (c *Cluster) WaitHealthy(tb testing.TB) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var why string
	for time.Now().Before(deadline) {
		why = c.unhealthy(context.Background())
		if why == "" {
			c.waitStreaming(tb)
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	tb.Fatalf("cluster not healthy within 30s: %s", why)
}

// waitStreaming has every master write a key of its own slots and wait
// until its replicas acknowledge it (see Server.WaitReplicated).
func (c *Cluster) waitStreaming(tb testing.TB) {
	tb.Helper()
	ctx := context.Background()
	for _, m := range c.live() {
		view, err := m.clusterNodes(ctx)
		if err != nil {
			tb.Fatalf("CLUSTER NODES on %s: %v", m.Addr(), err)
		}
		me := view.self()
		if !me.master() || len(me.slots) == 0 {
			continue
		}
		for i := 0; i < 100000; i++ {
			key := fmt.Sprintf("redistest:sync:{%d}", i)
			slot, err := m.Do(ctx, "CLUSTER", "KEYSLOT", key)
			if err != nil {
				tb.Fatalf("CLUSTER KEYSLOT on %s: %v", m.Addr(), err)
			}
			if view.masterOf(int(slot.(int64))) == m.Addr() {
				m.WaitReplicated(tb, key)
				break
			}
		}
	}
}

// unhealthy returns why the cluster is not healthy yet, "" when it is.
func (c *Cluster) unhealthy(ctx context.Context) string {
	live := c.live()
	var first map[int]string
	var firstRoles string
	for _, s := range live {
		info, err := s.Do(ctx, "CLUSTER", "INFO")
		if err != nil {
			return fmt.Sprintf("%s: %v", s.Addr(), err)
		}
		if !strings.Contains(fmt.Sprint(info), "cluster_state:ok") {
			return s.Addr() + ": cluster_state not ok"
		}
		view, err := s.clusterNodes(ctx)
		if err != nil {
			return fmt.Sprintf("%s: %v", s.Addr(), err)
		}
		owners := map[int]string{}
		var roles []string // every live node's role as this node sees it
		for _, n := range view {
			if srv := c.byAddr(n.addr); srv != nil && srv.alive() {
				if n.failed() {
					return s.Addr() + " sees the live node " + n.addr + " as failing"
				}
				master := "-"
				if !n.master() {
					master = view.addrOf(n.masterID)
				}
				roles = append(roles, n.addr+">"+master)
			}
			if !n.master() || n.failed() || len(n.slots) == 0 {
				continue
			}
			if srv := c.byAddr(n.addr); srv == nil || !srv.alive() {
				return s.Addr() + " sees the dead node " + n.addr + " as a master"
			}
			for _, r := range n.slots {
				owners[r[0]] = n.addr
			}
		}
		sort.Strings(roles)
		if len(roles) != len(live) {
			return fmt.Sprintf("%s knows %d of the %d live nodes", s.Addr(), len(roles), len(live))
		}
		if first == nil {
			first, firstRoles = owners, strings.Join(roles, " ")
		} else if fmt.Sprint(first) != fmt.Sprint(owners) || firstRoles != strings.Join(roles, " ") {
			return "nodes disagree on the slots' masters or the replicas"
		}
		rep, err := s.Do(ctx, "INFO", "replication")
		if err != nil {
			return fmt.Sprintf("%s: %v", s.Addr(), err)
		}
		r := fmt.Sprint(rep)
		if strings.Contains(r, "role:slave") && (!strings.Contains(r, "master_link_status:up") || strings.Contains(r, "master_sync_in_progress:1")) {
			return s.Addr() + ": replica not in sync"
		}
	}
	return ""
}

func (c *Cluster) live() []*Server {
	var out []*Server
	for _, s := range c.Nodes {
		if s.alive() {
			out = append(out, s)
		}
	}
	return out
}

func (c *Cluster) byAddr(addr string) *Server {
	for _, s := range c.Nodes {
		if s.Addr() == addr {
			return s
		}
	}
	return nil
}

func (s *Server) alive() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.p != nil
}

func (s *Server) role(ctx context.Context) (string, error) {
	v, err := s.Do(ctx, "ROLE")
	if err != nil {
		return "", err
	}
	r, ok := v.([]any)
	if !ok || len(r) == 0 {
		return "", fmt.Errorf("ROLE: %v", v)
	}
	return fmt.Sprint(r[0]), nil
}

// clusterNode is one line of CLUSTER NODES.
type clusterNode struct {
	id, addr, flags, masterID string
	slots                     [][2]int
}

func (n clusterNode) master() bool { return strings.Contains(n.flags, "master") }
func (n clusterNode) failed() bool {
	return strings.Contains(n.flags, "fail") || strings.Contains(n.flags, "handshake") || strings.Contains(n.flags, "noaddr")
}

type clusterView []clusterNode

func (s *Server) clusterNodes(ctx context.Context) (clusterView, error) {
	v, err := s.Do(ctx, "CLUSTER", "NODES")
	if err != nil {
		return nil, err
	}
	var out clusterView
	for _, line := range strings.Split(strings.TrimSpace(fmt.Sprint(v)), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		addr, _, _ := strings.Cut(f[1], "@")
		n := clusterNode{id: f[0], addr: addr, flags: f[2], masterID: f[3]}
		for _, r := range f[8:] {
			if strings.HasPrefix(r, "[") {
				continue // a slot being migrated
			}
			lo, hi, ok := strings.Cut(r, "-")
			if !ok {
				hi = lo
			}
			a, err1 := strconv.Atoi(lo)
			b, err2 := strconv.Atoi(hi)
			if err1 == nil && err2 == nil {
				n.slots = append(n.slots, [2]int{a, b})
			}
		}
		out = append(out, n)
	}
	return out, nil
}

func (v clusterView) self() clusterNode {
	for _, n := range v {
		if strings.Contains(n.flags, "myself") {
			return n
		}
	}
	return clusterNode{}
}

func (v clusterView) addrOf(id string) string {
	for _, n := range v {
		if n.id == id {
			return n.addr
		}
	}
	return "?"
}

// masterOf returns the address of the healthy master serving slot.
func (v clusterView) masterOf(slot int) string {
	for _, n := range v {
		if !n.master() || n.failed() {
			continue
		}
		for _, r := range n.slots {
			if r[0] <= slot && slot <= r[1] {
				return n.addr
			}
		}
	}
	return ""
}
