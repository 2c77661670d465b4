// Package node assembles a Tandem node from its parts: the Redis client,
// the event log, the doorbell, the fan-out hub and the HTTP API. The
// command wires its flags into a Config; tests start nodes in-process.
//
// # Concurrency properties
//
// Run starts every goroutine of the node and returns only after all of
// them have exited. Shutdown order: open streams are closed first (so
// clients reconnect to another node at once), then requests in flight get
// Config.ShutdownTimeout to finish.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/tandem-dev/tandem/eventlog"
	"github.com/tandem-dev/tandem/fanout"
	"github.com/tandem-dev/tandem/httpapi"
	"github.com/tandem-dev/tandem/metrics"
	"github.com/tandem-dev/tandem/sandbox"
	"github.com/tandem-dev/tandem/workspace"
	"golang.org/x/sync/errgroup"
)

// Config configures a node. Zero values are the defaults given.
type Config struct {
	// NodeID names the node in ownership records and logs (required).
	NodeID string
	// RedisURL is a redis:// or rediss:// URL of one server, or a
	// redis+cluster:// or redis+sentinel:// URL (see NewRedis; default
	// redis://127.0.0.1:6379/0).
	RedisURL string
	// ShutdownTimeout bounds how long shutdown waits for requests in
	// flight (default 10s).
	ShutdownTimeout time.Duration

	EventLog  eventlog.Config
	Fanout    fanout.Config
	HTTP      httpapi.Config
	Workspace workspace.Config // NodeID is filled in from the node's
	Sandbox   SandboxConfig
	// SandboxAllow lists the sandbox hosts workspaces may point at, as
	// "host" or "host:port" patterns ("*.sandbox.internal:2468"); the
	// default sandbox is always allowed.
	SandboxAllow []string
	// Auth authenticates requests (nil: httpapi.NoAuth, local use only).
	Auth httpapi.Authenticator
	// PprofAddr, when set, serves net/http/pprof there (keep it on
	// loopback); empty: no profiling endpoints.
	PprofAddr string
	// MetricsToken, when set, is the bearer token GET /metrics on the API
	// port requires. With PprofAddr, /metrics is served on that listener
	// and not on the API port at all.
	MetricsToken string
	// BenchRoutes serves the load tool's append route (never in
	// production: it appends synthetic events).
	BenchRoutes bool
	// AllowEviction lets the node start on a Redis whose maxmemory-policy
	// may evict keys (anything but noeviction), with a loud warning; by
	// default the node refuses (CheckEvictionPolicy).
	AllowEviction bool

	Logger *slog.Logger // nil: slog.Default()
}

// SandboxConfig says which Sandbox Agent server workspaces created without
// settings use, and whether the node runs it.
type SandboxConfig struct {
	// Mode is "local" (the node runs the server as its child and restarts
	// it) or "static" (a server at URL, managed elsewhere). Default: static
	// when URL is set, local otherwise.
	Mode string
	// URL and Token of a static server.
	URL, Token string
	// Local server: the sandbox-agent binary, its data directory, its port
	// on 127.0.0.1 (0: a free one), and the launcher that replaces the
	// "mock" agent's (empty: the built-in mock).
	Bin, DataDir  string
	Port          int
	AgentLauncher string
	// PassEnv names the variables of the node's environment the local
	// server and its agents get besides PATH and the locale (agent
	// credentials); nothing else of it reaches them.
	PassEnv []string
	Output  *os.File
}

func (c SandboxConfig) mode() string {
	if c.Mode != "" {
		return c.Mode
	}
	if c.URL != "" {
		return "static"
	}
	return "local"
}

func (c SandboxConfig) validate() error {
	switch c.mode() {
	case "static":
		if c.URL == "" {
			return errors.New("sandbox: static mode needs a URL")
		}
	case "local":
		if c.Bin == "" || c.DataDir == "" {
			return errors.New("sandbox: local mode needs the sandbox-agent binary and a data directory")
		}
	default:
		return fmt.Errorf("sandbox: mode %q: want local or static", c.Mode)
	}
	return nil
}

// Validate reports whether the configuration can be used.
func (c Config) Validate() error {
	var errs []error
	if c.NodeID == "" || strings.ContainsAny(c.NodeID, " \t\r\n") {
		errs = append(errs, fmt.Errorf("node id %q must be non-empty without spaces", c.NodeID))
	}
	if c.ShutdownTimeout < 0 {
		errs = append(errs, errors.New("shutdown timeout is negative"))
	}
	errs = append(errs, c.EventLog.Validate(), c.Fanout.Validate(), c.HTTP.Validate(), c.Sandbox.validate())
	if _, err := sandbox.NewAllowList("", c.SandboxAllow); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (c Config) withDefaults() Config {
	if c.RedisURL == "" {
		c.RedisURL = "redis://127.0.0.1:6379/0"
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Run serves on ln until ctx ends, then shuts the node down. It returns nil
// after a shutdown asked for by ctx, or the error that stopped the node.
func Run(ctx context.Context, cfg Config, ln net.Listener) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg = cfg.withDefaults()
	logger := slog.New(httpapi.LogHandler(cfg.Logger.Handler())).With(slog.String("node", cfg.NodeID))
	rdb, err := NewRedis(cfg.RedisURL)
	if err != nil {
		return err
	}
	defer rdb.Close()
	if err := CheckEvictionPolicy(ctx, rdb, cfg.AllowEviction, logger); err != nil {
		return err
	}

	// The default sandbox, and the local server when the node runs one.
	var local *sandbox.Local
	wcfg := cfg.Workspace
	wcfg.NodeID = cfg.NodeID
	wcfg.Logger = logger
	switch cfg.Sandbox.mode() {
	case "local":
		local, err = sandbox.NewLocal(sandbox.LocalConfig{
			Bin: cfg.Sandbox.Bin, DataDir: cfg.Sandbox.DataDir, Port: cfg.Sandbox.Port,
			AgentLauncher: cfg.Sandbox.AgentLauncher, Output: cfg.Sandbox.Output, Logger: logger,
			PassEnv: cfg.Sandbox.PassEnv,
		})
		if err != nil {
			return err
		}
		// The local server's token is added by the node's sandbox client
		// (localAuth), never stored with the workspaces.
		wcfg.DefaultSandbox = workspace.Sandbox{BaseURL: local.BaseURL()}
		if wcfg.AgentCwdFor == nil {
			wcfg.AgentCwdFor = func(ws string, sb workspace.Sandbox) string {
				if strings.TrimRight(sb.BaseURL, "/") != local.BaseURL() {
					return ""
				}
				return local.WorkspaceDir(ws)
			}
		}
	default:
		wcfg.DefaultSandbox = workspace.Sandbox{BaseURL: cfg.Sandbox.URL, Token: cfg.Sandbox.Token}
	}
	allow, err := sandbox.NewAllowList(wcfg.DefaultSandbox.BaseURL, cfg.SandboxAllow)
	if err != nil {
		return err
	}
	if wcfg.SandboxAllowed == nil {
		wcfg.SandboxAllowed = allow.AllowURL
	}
	if wcfg.SandboxHTTPClient == nil {
		wcfg.SandboxHTTPClient = allow.HTTPClient()
		if local != nil {
			wcfg.SandboxHTTPClient.Transport = localAuth(wcfg.SandboxHTTPClient.Transport, local)
		}
	}
	if err := wcfg.Validate(); err != nil {
		return err
	}

	mtr := metrics.New()
	log := eventlog.New(rdb, cfg.EventLog)
	log.SetObserver(mtr.Appended)
	hub := fanout.New(log, cfg.Fanout)
	hub.SetObserver(hubObserver{mtr, logger})
	mux := &bellMux{hub: hub}
	bell := eventlog.NewBell(rdb, mux)
	hub.SetDoorbell(bell)
	mgr := workspace.New(eventlog.NewStore(log), bell, sandboxes{local: local, http: wcfg.SandboxHTTPClient}, hub, wcfg)
	mgr.SetObserver(mtr)
	inboxDepth(mtr, mgr)
	mux.mgr = mgr

	api := httpapi.New(httpapi.Deps{
		Events:     log,
		Streams:    hub,
		Workspaces: mgr,
		Auth:       cfg.Auth,
		Observer:   mtr,
		Quotas:     log,
		// The workspaces each user created, capped.
		UserWorkspaces: log,
		Metrics:        apiMetrics(cfg, mtr),
		Bench:          benchRoutes(cfg.BenchRoutes, mgr, log),
		Ready:          func(ctx context.Context) error { return rdb.Ping(ctx).Err() },
		Logger:         logger,
	}, withMetricsToken(cfg.HTTP, cfg.MetricsToken))

	// Requests' contexts end when shutdown begins, so that nothing waits
	// on a stream that would never end by itself.
	baseCtx, cancelBase := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelBase()
	srv := &http.Server{
		Handler:           api,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		BaseContext:       func(net.Listener) context.Context { return baseCtx },
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}

	runCtx, cancelRun := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRun()
	// The components run on runCtx, not on the group's context: a failing
	// component does not stop the others by itself, the shutdown below
	// does, in its order. The group's context only says that one failed,
	// and its cause is the first error.
	components, failed := errgroup.WithContext(runCtx)
	start := func(name string, fn func() error) {
		components.Go(func() error {
			if err := fn(); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("%s: %w", name, err)
			}
			return nil
		})
	}
	// The local sandbox outlives the owners: they hand their workspaces
	// over before it stops, so it is a group of its own, stopped last.
	sbCtx, cancelSandbox := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSandbox()
	sandboxes, sandboxFailed := errgroup.WithContext(sbCtx)
	if local != nil {
		sandboxes.Go(func() error {
			if err := local.Run(sbCtx); err != nil && !errors.Is(err, context.Canceled) {
				return fmt.Errorf("sandbox: %w", err)
			}
			return nil
		})
	}
	start("doorbell", func() error { return bell.Run(runCtx) })
	start("append pipeline", func() error { return log.RunPipeline(runCtx) })
	start("hub", func() error { return hub.Run(runCtx) })
	start("workspaces", func() error { return mgr.Run(runCtx) })
	start("http", func() error { return srv.Serve(ln) })
	if cfg.PprofAddr != "" {
		start("pprof", func() error { return servePprof(runCtx, cfg.PprofAddr, mtr.Handler(), logger) })
	}
	logger.Info("tandem node listening", slog.String("addr", ln.Addr().String()), slog.String("redis", RedactURL(cfg.RedisURL)))

	var runErr error
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case <-failed.Done():
		runErr = context.Cause(failed)
	case <-sandboxFailed.Done():
		runErr = context.Cause(sandboxFailed)
	}
	if runErr != nil {
		logger.Error("component failed, shutting down", slog.Any("err", runErr))
	}
	cancelRun()  // the hub closes every stream it holds
	cancelBase() // streams still in a handler end too
	shCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shCtx); err != nil {
		logger.Warn("shutdown: requests still in flight were cut", slog.Any("err", err))
		srv.Close()
	}
	// What fails while shutting down is not why the node stopped: the
	// first error (runErr) is.
	_ = components.Wait()
	cancelSandbox()
	_ = sandboxes.Wait()
	return runErr
}

// bellMux hands what the doorbell hears to the hub (events) and to the
// workspace manager (inbox and settings signals).
type bellMux struct {
	hub *fanout.Hub
	mgr *workspace.Manager
}

func (b *bellMux) Ring(ws string, ev eventlog.Event, gen string) { b.hub.Ring(ws, ev, gen) }

func (b *bellMux) Subscribed(ws string) {
	b.hub.Subscribed(ws)
	b.mgr.Subscribed(ws)
}

func (b *bellMux) Signal(ws, msg string) {
	b.hub.Signal(ws, msg)
	b.mgr.Signal(ws, msg)
}

// sandboxes restarts the node's local sandbox server; others are managed
// elsewhere and only checked.
type sandboxes struct {
	local *sandbox.Local
	http  *http.Client // through the allow-list's dialer
}

func (s sandboxes) EnsureServer(ctx context.Context, sb workspace.Sandbox) error {
	if s.local != nil && strings.TrimRight(sb.BaseURL, "/") == s.local.BaseURL() {
		return s.local.EnsureServer(ctx)
	}
	return (&sandbox.Static{URL: sb.BaseURL, BearerToken: sb.Token, HTTPClient: s.http}).EnsureServer(ctx)
}
