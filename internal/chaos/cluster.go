package chaos

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tandem-dev/tandem/internal/proc"
	"github.com/tandem-dev/tandem/internal/redistest"
	"github.com/tandem-dev/tandem/sandbox"
)

// NodeCount is the number of tandem nodes behind the load balancer.
const NodeCount = 3

// cluster is everything the campaign runs: redis-server (appendonly, fsync
// always), the Sandbox Agent server with the scripted agent, three tandem
// nodes and nginx in front of them. Every address is on 127.0.0.1.
//
// When the campaign injects failovers (sentinel mode), a second
// redis-server (appendonly too) replicates the first and a redis-server
// --sentinel watches them; nodes n1 and n2 reach the master through the
// Sentinel, n3 through the fault proxy, which the campaign points at the
// new master after each failover. redis is always the current master and
// replica the other server.
type cluster struct {
	cfg Config

	redis     *redistest.Server
	redisLog  *os.File
	redisPort int
	// rdbP is the campaign's client of the current master (db); it is
	// replaced when a failover changes the master.
	rdbP atomic.Pointer[redis.Client]

	sentinelMode bool
	replica      *redistest.Server
	replicaLog   *os.File
	sentinel     *redistest.Server
	sentinelLog  *os.File

	sbMu  sync.Mutex
	sb    *sandbox.Process
	sbCfg sandbox.ProcessConfig
	// PromptLog is the file the agent processes append every prompt they
	// receive to.
	promptLog string

	nodes []*tandemNode
	// proxy sits between the last node (proxied) and Redis, for the
	// partition and latency faults; the other nodes connect directly.
	proxy   *faultProxy
	proxied *tandemNode
	// redisStopped is the pid of a redis-server that a fault stopped
	// (SIGSTOP), 0 when none.
	redisStopped int

	nginx  *service
	lbPort int
}

type tandemNode struct {
	*service
	id   string
	addr string
}

func freePort() (int, error) { return proc.FreePort() }

// startCluster starts every process and waits until each is ready. On
// failure it stops what it started.
func startCluster(ctx context.Context, cfg Config) (c *cluster, err error) {
	c = &cluster{cfg: cfg}
	defer func() {
		if err != nil {
			c.stop()
			c = nil
		}
	}()
	for _, d := range []string{"redis", "sandbox", "nginx/tmp", "logs"} {
		if err := os.MkdirAll(filepath.Join(cfg.Dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	c.sentinelMode = len(cfg.Kinds) == 0 || slices.Contains(cfg.Kinds, FaultFailover)
	if err := c.startRedis(ctx); err != nil {
		return nil, err
	}
	if c.sentinelMode {
		if err := c.startSentinel(ctx); err != nil {
			return nil, err
		}
	}
	if err := c.startSandbox(ctx); err != nil {
		return nil, err
	}
	if c.proxy, err = startFaultProxy(c.redis.Addr()); err != nil {
		return nil, err
	}
	for i := 1; i <= NodeCount; i++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		n := &tandemNode{id: "n" + strconv.Itoa(i), addr: "127.0.0.1:" + strconv.Itoa(port)}
		redisURL := "redis://" + c.redis.Addr() + "/0"
		if c.sentinelMode {
			redisURL = c.sentinelURL()
		}
		if i == NodeCount {
			redisURL, c.proxied = "redis://"+c.proxy.Addr()+"/0", n
		}
		n.service = &service{
			name: "node " + n.id,
			path: cfg.TandemBin,
			args: []string{"serve"},
			dir:  cfg.Dir,
			log:  filepath.Join(cfg.Dir, "logs", n.id+".log"),
			env: []string{
				"TANDEM_ADDR=" + n.addr,
				"TANDEM_REDIS_URL=" + redisURL,
				"TANDEM_NODE_ID=" + n.id,
				"TANDEM_LOCK_TTL=" + cfg.LockTTL.String(),
				"TANDEM_SANDBOX_URL=" + c.sandboxURL(),
				"TANDEM_HEALTH_INTERVAL=500ms",
				// Short, so that the owners of the workspaces nobody
				// follows go idle and release them within a campaign.
				"TANDEM_IDLE_TIMEOUT=8s",
				"TANDEM_SHUTDOWN_TIMEOUT=5s",
				"TANDEM_LOG_LEVEL=info",
			},
		}
		c.nodes = append(c.nodes, n)
		if err := c.startNode(ctx, n); err != nil {
			return nil, err
		}
	}
	if err := c.startNginx(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// LB is the base URL of the load balancer.
func (c *cluster) LB() string { return "http://127.0.0.1:" + strconv.Itoa(c.lbPort) }

func (c *cluster) startRedis(ctx context.Context) error {
	log, err := os.OpenFile(filepath.Join(c.cfg.Dir, "logs", "redis.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	c.redisLog = log
	// appendonly with fsync always: a SIGKILL loses no acknowledged write.
	c.redis, err = redistest.Launch(redistest.Options{
		AppendOnly: true, Dir: filepath.Join(c.cfg.Dir, "redis"), Bin: c.cfg.RedisBin,
		Output: log, StartTimeout: 15 * time.Second,
	})
	if err != nil {
		return err
	}
	c.redisPort = c.redis.Port()
	c.rdbP.Store(newClient(c.redis.Addr()))
	return nil
}

func newClient(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: 2 * time.Second})
}

// db is the campaign's client of the current master.
func (c *cluster) db() *redis.Client { return c.rdbP.Load() }

// restartRedis starts redis-server again on its port and data directory,
// and waits for PING.
func (c *cluster) restartRedis(ctx context.Context) error {
	if err := c.redis.Relaunch(); err != nil {
		return fmt.Errorf("redis-server: %w", err)
	}
	return ctx.Err()
}

func (c *cluster) startSandbox(ctx context.Context) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	c.promptLog = filepath.Join(c.cfg.Dir, "prompts.jsonl")
	launcher := filepath.Join(c.cfg.Dir, "sandbox", "mockagent-logged")
	script := "#!/bin/sh\nTANDEM_MOCKAGENT_LOG=" + shellQuote(c.promptLog) + " exec " + shellQuote(c.cfg.MockAgentBin) + " \"$@\"\n"
	if err := os.WriteFile(launcher, []byte(script), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(filepath.Join(c.cfg.Dir, "logs", "sandbox.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	c.sbCfg = sandbox.ProcessConfig{
		Bin: c.cfg.SandboxBin, DataDir: filepath.Join(c.cfg.Dir, "sandbox", "home"), Port: port,
		AgentLauncher: launcher, Output: out, StartTimeout: 30 * time.Second,
	}
	return c.restartSandbox(ctx)
}

func (c *cluster) sandboxURL() string { return "http://127.0.0.1:" + strconv.Itoa(c.sbCfg.Port) }

// restartSandbox starts the Sandbox Agent server (again), as a supervisor
// would, on the same port and data directory.
func (c *cluster) restartSandbox(ctx context.Context) error {
	c.sbMu.Lock()
	defer c.sbMu.Unlock()
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var p *sandbox.Process
		if p, err = sandbox.StartProcess(ctx, c.sbCfg); err == nil {
			c.sb = p
			return nil
		}
		time.Sleep(500 * time.Millisecond) // the port may linger a moment
	}
	return err
}

func (c *cluster) killSandbox() {
	c.sbMu.Lock()
	defer c.sbMu.Unlock()
	if c.sb != nil {
		c.sb.Kill()
		c.sb = nil
	}
}

// startNode starts a node and waits for /readyz.
func (c *cluster) startNode(ctx context.Context, n *tandemNode) error {
	if err := n.start(); err != nil {
		return err
	}
	hc := &http.Client{Timeout: time.Second}
	return waitUntil(ctx, 20*time.Second, n.name+" to be ready", func() bool {
		resp, err := hc.Get("http://" + n.addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

func (c *cluster) startNginx(ctx context.Context) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	c.lbPort = port
	dir := filepath.Join(c.cfg.Dir, "nginx")
	// Workers may run as another user than the master: let them write.
	_ = os.Chmod(filepath.Join(dir, "tmp"), 0o777)
	var upstreams []string
	for _, n := range c.nodes {
		upstreams = append(upstreams, n.addr)
	}
	conf := NginxConfig(dir, port, upstreams)
	file := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
		return err
	}
	c.nginx = &service{
		name: "nginx",
		path: c.cfg.NginxBin,
		args: []string{"-p", dir, "-c", file, "-e", filepath.Join(dir, "error.log"), "-g", "daemon off;"},
		dir:  dir,
		log:  filepath.Join(c.cfg.Dir, "logs", "nginx.log"),
	}
	if err := c.nginx.start(); err != nil {
		return err
	}
	hc := &http.Client{Timeout: time.Second}
	return waitUntil(ctx, 10*time.Second, "nginx to answer", func() bool {
		resp, err := hc.Get(c.LB() + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// redisPID is the pid of the running redis-server, from INFO.
func (c *cluster) redisPID(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	info, err := c.db().Info(ctx, "server").Result()
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "process_id:"); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, errors.New("chaos: no process_id in INFO server")
}

// stopRedis sends SIGSTOP to redis-server; contRedis resumes it.
func (c *cluster) stopRedis(ctx context.Context) error {
	pid, err := c.redisPID(ctx)
	if err != nil {
		return err
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return err
	}
	c.redisStopped = pid
	return nil
}

func (c *cluster) contRedis() {
	if c.redisStopped != 0 {
		_ = syscall.Kill(c.redisStopped, syscall.SIGCONT)
		c.redisStopped = 0
	}
}

// snapshot makes redis-server write its RDB file now (SAVE).
func (c *cluster) snapshot(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return c.db().Save(ctx).Err()
}

// restoreSnapshot replaces the append-only files of a killed redis-server
// with the last RDB snapshot, as the multi-part AOF's base and nothing
// after it: the next start loads the snapshot, and every write since is
// lost. (With appendonly on and no AOF, Redis 7 starts empty instead of
// loading dump.rdb.) The restarted server appends to a fresh incr file, so
// later kills lose nothing again.
func (c *cluster) restoreSnapshot() error {
	dir := c.redis.Dir()
	rdb, err := os.ReadFile(filepath.Join(dir, "dump.rdb"))
	if err != nil {
		return err
	}
	aof := filepath.Join(dir, "appendonlydir")
	if err := os.RemoveAll(aof); err != nil {
		return err
	}
	if err := os.MkdirAll(aof, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(aof, "appendonly.aof.1.base.rdb"), rdb, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(aof, "appendonly.aof.manifest"), []byte("file appendonly.aof.1.base.rdb seq 1 type b\n"), 0o644)
}

// ensureUp brings back whatever a fault left down or stopped.
func (c *cluster) ensureUp(ctx context.Context) error {
	c.contRedis()
	c.proxy.SetLatency(0)
	c.proxy.Heal()
	if !c.redis.Running() {
		if err := c.restartRedis(ctx); err != nil {
			return err
		}
	}
	if c.sentinelMode {
		if err := c.ensureSentinelUp(ctx); err != nil {
			return err
		}
	}
	c.sbMu.Lock()
	down := c.sb == nil
	c.sbMu.Unlock()
	if down {
		if err := c.restartSandbox(ctx); err != nil {
			return err
		}
	}
	for _, n := range c.nodes {
		_ = n.signal(syscall.SIGCONT)
		if !n.running() {
			if err := c.startNode(ctx, n); err != nil {
				return err
			}
		}
	}
	return nil
}

// stop ends every process: the nodes gracefully, the rest at once.
func (c *cluster) stop() {
	if c.nginx != nil {
		c.nginx.term(5 * time.Second)
	}
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = n.signal(syscall.SIGCONT)
			n.term(10 * time.Second)
		}()
	}
	wg.Wait()
	c.killSandbox()
	c.contRedis()
	if c.proxy != nil {
		c.proxy.Close()
	}
	if c.sbCfg.Output != nil {
		c.sbCfg.Output.Close()
	}
	if c.redis != nil {
		c.redis.Stop(5 * time.Second)
	}
	if c.redisLog != nil {
		c.redisLog.Close()
	}
	if c.replica != nil {
		c.replica.Stop(5 * time.Second)
	}
	if c.sentinel != nil {
		c.sentinel.Stop(5 * time.Second)
	}
	for _, f := range []*os.File{c.replicaLog, c.sentinelLog} {
		if f != nil {
			f.Close()
		}
	}
	if rdb := c.db(); rdb != nil {
		rdb.Close()
	}
}

// waitUntil polls cond every 25ms until it holds or within passes.
func waitUntil(ctx context.Context, within time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(within)
	for {
		if cond() {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("chaos: waiting for %s: not within %v", what, within)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(25 * time.Millisecond):
		}
	}
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// lbClient is the HTTP client of writers and checks: through nginx,
// bounded per request.
func lbClient() *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     30 * time.Second,
		},
	}
}
