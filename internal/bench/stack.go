package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tandem-dev/tandem/internal/proc"
	"github.com/tandem-dev/tandem/internal/redistest"
	"github.com/tandem-dev/tandem/sandbox"
)

// Options say where the stack comes from.
type Options struct {
	// URL of a running node; empty: start one.
	URL string
	// NodePid is the given node's process id, for its CPU and memory;
	// 0: not measured.
	NodePid int
	// Redis is the node's Redis (host:port) for redis-benchmark; empty with
	// URL set: append's comparison is skipped.
	Redis string
	// TandemBin and MockAgentBin are the binaries started (default
	// bin/tandem, bin/tandem-mockagent); SandboxBin is sandbox-agent.
	TandemBin, MockAgentBin, SandboxBin string
	// Dir keeps the stack's files (default: a temporary directory).
	Dir string
	// Extra environment for a started node (TANDEM_*=...).
	NodeEnv []string
	Log     func(format string, args ...any)
}

// Stack is what a scenario runs against.
type Stack struct {
	URL        string
	NodePid    int
	Redis      string
	SandboxURL string
	redis      *redistest.Server
	node       *proc.Proc
	sandbox    *sandbox.Process
	dir        string
	ownDir     bool
}

// checkLoopback refuses any address not on loopback: the tool never loads
// anything else.
func checkLoopback(hostport string) error {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return err
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%s is not a loopback address; the load tool only targets loopback", hostport)
	}
	return nil
}

// Start brings the stack up: with opts.URL, only checks it; otherwise
// redis-server, the Sandbox Agent server when withSandbox, and one node.
func Start(ctx context.Context, opts Options, withSandbox bool) (*Stack, error) {
	if opts.URL != "" {
		u, err := url.Parse(opts.URL)
		if err != nil {
			return nil, err
		}
		if err := checkLoopback(u.Host); err != nil {
			return nil, err
		}
		if opts.Redis != "" {
			if err := checkLoopback(opts.Redis); err != nil {
				return nil, err
			}
		}
		return &Stack{URL: strings.TrimRight(opts.URL, "/"), NodePid: opts.NodePid, Redis: opts.Redis}, nil
	}
	s := &Stack{dir: opts.Dir}
	if s.dir == "" {
		d, err := os.MkdirTemp("", "tandem-bench-")
		if err != nil {
			return nil, err
		}
		s.dir, s.ownDir = d, true
	}
	fail := func(err error) (*Stack, error) { s.Close(); return nil, err }
	redis, err := redistest.Launch(redistest.Options{Dir: s.dir, Args: []string{"--maxclients", "20000"}})
	if err != nil {
		return fail(fmt.Errorf("redis-server: %w", err))
	}
	s.redis = redis
	s.Redis = redis.Addr()
	env := []string{
		"TANDEM_REDIS_URL=redis://" + s.Redis + "/0",
		"TANDEM_NODE_ID=bench-node",
		"TANDEM_LOG_LEVEL=warn",
		"TANDEM_BENCH_ROUTES=1",
		"TANDEM_PROMPT_RATE=-1",
		"TANDEM_MAX_STREAMS_PER_USER=-1",
		"TANDEM_MAX_WORKSPACES_PER_USER=-1",
		"TANDEM_COMMAND_RATE=-1",
		"TANDEM_IDLE_TIMEOUT=10m",
	}
	if withSandbox {
		sport, err := proc.FreePort()
		if err != nil {
			return fail(err)
		}
		agent, err := filepath.Abs(or(opts.MockAgentBin, "bin/tandem-mockagent"))
		if err != nil {
			return fail(err)
		}
		p, err := sandbox.StartProcess(ctx, sandbox.ProcessConfig{
			Bin: opts.SandboxBin, DataDir: filepath.Join(s.dir, "sandbox"), Port: sport, AgentLauncher: agent,
		})
		if err != nil {
			return fail(fmt.Errorf("sandbox-agent: %w", err))
		}
		s.sandbox = p
		s.SandboxURL = p.BaseURL()
		env = append(env, "TANDEM_SANDBOX_URL="+s.SandboxURL)
	} else {
		env = append(env, "TANDEM_SANDBOX_URL=http://127.0.0.1:9")
	}
	nport, err := proc.FreePort()
	if err != nil {
		return fail(err)
	}
	env = append(env, "TANDEM_ADDR=127.0.0.1:"+strconv.Itoa(nport))
	env = append(env, opts.NodeEnv...)
	node := exec.Command(or(opts.TandemBin, "bin/tandem"), "serve")
	node.Env = append(os.Environ(), env...)
	logf, err := os.Create(filepath.Join(s.dir, "node.log"))
	if err != nil {
		return fail(err)
	}
	node.Stdout, node.Stderr = logf, logf
	p, err := proc.Start(node)
	logf.Close() // the node has its own copy
	if err != nil {
		return fail(fmt.Errorf("tandem: %w", err))
	}
	s.node = p
	s.NodePid = p.Pid()
	s.URL = "http://127.0.0.1:" + strconv.Itoa(nport)
	if err := waitReady(ctx, s.URL); err != nil {
		b, _ := os.ReadFile(logf.Name())
		return fail(fmt.Errorf("%w; node log:\n%s", err, b))
	}
	return s, nil
}

func or(v, def string) string {
	if v != "" {
		return v
	}
	return def
}

func waitReady(ctx context.Context, base string) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return errors.New("the node was not ready in 20s")
}

// Close stops what Start started.
func (s *Stack) Close() {
	// The node first, then its Redis.
	if s.node != nil {
		s.node.Stop(10 * time.Second)
	}
	if s.redis != nil {
		s.redis.Stop(10 * time.Second)
	}
	if s.sandbox != nil {
		s.sandbox.Stop(2 * time.Second)
	}
	if s.ownDir {
		os.RemoveAll(s.dir)
	}
}

// redisBenchmarkXADD runs redis-benchmark's XADD with clients connections
// and no pipelining, and returns its requests per second.
func redisBenchmarkXADD(ctx context.Context, addr string, clients, requests int) (float64, error) {
	host, port, _ := net.SplitHostPort(addr)
	cmd := exec.CommandContext(ctx, "redis-benchmark", "-h", host, "-p", port, "-c", strconv.Itoa(clients),
		"-n", strconv.Itoa(requests), "-P", "1", "--csv", "XADD", "tandem:bench:xadd", "*", "f", "v")
	out, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("redis-benchmark: %w", err)
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ",")
		if len(f) >= 2 && strings.Contains(f[0], "XADD") {
			return strconv.ParseFloat(strings.Trim(f[1], `"`), 64)
		}
	}
	return 0, fmt.Errorf("redis-benchmark: no result in %q", out)
}
