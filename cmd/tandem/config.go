package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tandem-dev/tandem/sandbox"
)

// config is a node's configuration. Every field has a flag and a TANDEM_*
// environment variable of the same meaning; a flag given on the command
// line wins over the variable, which wins over the default.
type config struct {
	Addr         string
	RedisURL     string
	NodeID       string
	LogFormat    string
	LogLevel     string
	ShutdownWait time.Duration
	StreamMaxLen int64
	WaitReplicas int64
	WaitTimeout  time.Duration

	LockTTL        time.Duration
	IdleTimeout    time.Duration
	HealthInterval time.Duration
	PermTimeout    time.Duration
	Agent          string
	AgentCwd       string

	Sandbox         string
	SandboxURL      string
	SandboxToken    string
	SandboxBin      string
	SandboxDataDir  string
	SandboxPort     int64
	SandboxLauncher string
	SandboxEnv      string

	security
	ops
}

// envFlag registers a flag whose default comes from an environment variable.
type envFlags struct {
	fs      *flag.FlagSet
	errs    []string
	secrets []secretFlag
}

// secretFlag is a setting whose variable's value must never be printed:
// its flag shows the built-in default only, and the variable is applied
// after parsing (when the flag was not given).
type secretFlag struct {
	p         *string
	name, env string
}

// secret registers a flag for a secret setting (a token, a password, a
// URL that may carry one): "serve -h" and flag errors, which print the
// defaults, never show the variable's value.
func (e *envFlags) secret(p *string, name, env, def, usage string) {
	e.fs.StringVar(p, name, def, usage+" ($"+env+", never printed)")
	e.secrets = append(e.secrets, secretFlag{p: p, name: name, env: env})
}

// applySecrets sets the secrets whose flag was not given from their
// variables.
func (e *envFlags) applySecrets() {
	given := map[string]bool{}
	e.fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for _, s := range e.secrets {
		if v, ok := os.LookupEnv(s.env); ok && !given[s.name] {
			*s.p = v
		}
	}
}

func (e *envFlags) str(p *string, name, env, def, usage string) {
	if v, ok := os.LookupEnv(env); ok {
		def = v
	}
	e.fs.StringVar(p, name, def, usage+" ($"+env+")")
}

func (e *envFlags) dur(p *time.Duration, name, env string, def time.Duration, usage string) {
	if v, ok := os.LookupEnv(env); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			e.errs = append(e.errs, fmt.Sprintf("%s=%q: %v", env, v, err))
		} else {
			def = d
		}
	}
	e.fs.DurationVar(p, name, def, usage+" ($"+env+")")
}

func (e *envFlags) int64(p *int64, name, env string, def int64, usage string) {
	if v, ok := os.LookupEnv(env); ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			e.errs = append(e.errs, fmt.Sprintf("%s=%q: %v", env, v, err))
		} else {
			def = n
		}
	}
	e.fs.Int64Var(p, name, def, usage+" ($"+env+")")
}

func defaultNodeID() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "node"
	}
	return h + "-" + strconv.Itoa(os.Getpid())
}

// parseServeConfig parses serve's flags (printing nothing) and checks the
// configuration.
func parseServeConfig(args []string) (config, error) {
	fs := newFlagSet("serve")
	c, e := registerServe(fs)
	if err := fs.Parse(args); err != nil {
		return *c, err
	}
	return *c, c.finish(e)
}

// registerServe registers serve's flags on fs, each with the default its
// variable gives; finish completes the configuration once they are parsed.
func registerServe(fs *flag.FlagSet) (*config, *envFlags) {
	c := &config{}
	e := &envFlags{fs: fs}
	e.str(&c.Addr, "addr", "TANDEM_ADDR", "127.0.0.1:8080", "listen address")
	e.secret(&c.RedisURL, "redis-url", "TANDEM_REDIS_URL", "redis://127.0.0.1:6379/0", "Redis URL: redis:// (one server), redis+cluster:// or redis+sentinel://")
	e.str(&c.NodeID, "node-id", "TANDEM_NODE_ID", defaultNodeID(), "this node's id, unique in the cluster")
	e.str(&c.LogFormat, "log-format", "TANDEM_LOG_FORMAT", "text", "log format: text or json")
	e.str(&c.LogLevel, "log-level", "TANDEM_LOG_LEVEL", "info", "log level: debug, info, warn, error")
	e.dur(&c.ShutdownWait, "shutdown-timeout", "TANDEM_SHUTDOWN_TIMEOUT", 10*time.Second, "how long shutdown waits for requests in flight")
	e.int64(&c.StreamMaxLen, "stream-maxlen", "TANDEM_STREAM_MAXLEN", 0, "trim each session stream to about this many events (0: keep all)")
	e.int64(&c.WaitReplicas, "redis-wait-replicas", "TANDEM_REDIS_WAIT_REPLICAS", 0, "after each append, wait until this many replicas have it (Redis WAIT; 0: do not wait)")
	e.dur(&c.WaitTimeout, "redis-wait-timeout", "TANDEM_REDIS_WAIT_TIMEOUT", time.Second, "the longest an append waits for those replicas")
	e.dur(&c.LockTTL, "lock-ttl", "TANDEM_LOCK_TTL", 8*time.Second, "expiry of a workspace's ownership lock")
	e.dur(&c.IdleTimeout, "idle-timeout", "TANDEM_IDLE_TIMEOUT", 30*time.Second, "an owner with nothing to do lets its workspace go after this long")
	e.dur(&c.PermTimeout, "permission-timeout", "TANDEM_PERMISSION_TIMEOUT", 10*time.Minute, "a permission request of the agent nobody answers is answered cancelled after this long")
	e.dur(&c.HealthInterval, "health-interval", "TANDEM_HEALTH_INTERVAL", 2*time.Second, "how often an owner checks its sandbox")
	e.str(&c.Agent, "agent", "TANDEM_AGENT", "mock", "default agent of new workspaces")
	e.str(&c.AgentCwd, "agent-cwd", "TANDEM_AGENT_CWD", "/tmp", "working directory of new agent sessions")
	e.str(&c.Sandbox, "sandbox", "TANDEM_SANDBOX", "", "sandbox provider: local (run the server) or static (default: static when a URL is given)")
	e.str(&c.SandboxURL, "sandbox-url", "TANDEM_SANDBOX_URL", "", "URL of a Sandbox Agent server managed elsewhere")
	e.secret(&c.SandboxToken, "sandbox-token", "TANDEM_SANDBOX_TOKEN", "", "bearer token of that server")
	e.str(&c.SandboxBin, "sandbox-bin", "TANDEM_SANDBOX_AGENT_BIN", "", "local provider: the sandbox-agent binary")
	e.str(&c.SandboxDataDir, "sandbox-data-dir", "TANDEM_SANDBOX_DATA_DIR", ".cache/sandbox-data", "local provider: the server's home directory")
	e.int64(&c.SandboxPort, "sandbox-port", "TANDEM_SANDBOX_PORT", 2468, "local provider: the server's port on 127.0.0.1")
	e.str(&c.SandboxLauncher, "agent-launcher", "TANDEM_AGENT_LAUNCHER", "", "local provider: a program installed as the mock agent (our scripted agent)")
	e.str(&c.SandboxEnv, "sandbox-env", "TANDEM_SANDBOX_ENV", "", "local provider: comma-separated names of variables passed to the server and its agents (their credentials, such as ANTHROPIC_API_KEY); besides PATH and the locale nothing else of the node's environment is")
	c.security.register(e)
	c.ops.register(e)
	return c, e
}

// finish applies the secrets' variables and checks the configuration.
func (c *config) finish(e *envFlags) error {
	e.applySecrets()
	if len(e.errs) > 0 {
		return fmt.Errorf("configuration: %s", strings.Join(e.errs, "; "))
	}
	if err := c.Validate(); err != nil {
		return err
	}
	if err := c.ops.validate(); err != nil {
		return err
	}
	if err := sandbox.ValidPassEnv(splitList(c.SandboxEnv)); err != nil {
		return err
	}
	if _, err := sandbox.NewAllowList("", splitList(c.SandboxAllow)); err != nil {
		return err
	}
	return c.security.validate(c.Addr, c.localSandbox())
}

// localSandbox reports whether the node runs the Sandbox Agent server.
func (c config) localSandbox() bool {
	return c.Sandbox == "local" || (c.Sandbox == "" && c.SandboxURL == "")
}

// Validate reports whether the configuration can be used.
func (c config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("addr %q: %v", c.Addr, err)
	}
	if c.NodeID == "" || strings.ContainsAny(c.NodeID, " \t\r\n") {
		return fmt.Errorf("node id %q must be non-empty without spaces", c.NodeID)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return fmt.Errorf("log format %q: want text or json", c.LogFormat)
	}
	if c.StreamMaxLen < 0 {
		return fmt.Errorf("stream maxlen %d is negative", c.StreamMaxLen)
	}
	if c.WaitReplicas < 0 || c.WaitTimeout <= 0 {
		return fmt.Errorf("redis wait: %d replicas within %v: want 0 or more within a positive time", c.WaitReplicas, c.WaitTimeout)
	}
	return nil
}

func (e *envFlags) float(p *float64, name, env string, def float64, usage string) {
	if v, ok := os.LookupEnv(env); ok {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			e.errs = append(e.errs, fmt.Sprintf("%s=%q: %v", env, v, err))
		} else {
			def = f
		}
	}
	e.fs.Float64Var(p, name, def, usage+" ($"+env+")")
}

func (e *envFlags) boolean(p *bool, name, env string, usage string) {
	def := false
	if v, ok := os.LookupEnv(env); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			e.errs = append(e.errs, fmt.Sprintf("%s=%q: %v", env, v, err))
		} else {
			def = b
		}
	}
	e.fs.BoolVar(p, name, def, usage+" ($"+env+")")
}
