package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/tandem-dev/tandem/eventlog"
	"github.com/tandem-dev/tandem/fanout"
	"github.com/tandem-dev/tandem/httpapi"
	"github.com/tandem-dev/tandem/node"
	"github.com/tandem-dev/tandem/workspace"
)

// defineServe: tandem serve [flags].
func defineServe(fs *flag.FlagSet) runFunc {
	c, e := registerServe(fs)
	return func(args []string, _, _ io.Writer) error {
		if len(args) > 0 {
			return usageErrorf("takes no arguments, got %q (settings are flags or TANDEM_* variables)", args[0])
		}
		if err := c.finish(e); err != nil {
			return err
		}
		return serve(*c)
	}
}

func serve(cfg config) error {
	logger := newLogger(cfg)
	slog.SetDefault(logger)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	authn, err := cfg.security.authenticator()
	if err != nil {
		return err
	}
	if cfg.security.Auth == "jwt" && cfg.localSandbox() {
		logger.Warn("the local sandbox with TANDEM_AUTH=jwt (TANDEM_SANDBOX_LOCAL_WITH_JWT): every member's agent runs on this node's host and shares its files, network and processes")
	}
	if cfg.security.Auth == "none" {
		logger.Warn("authentication is off (TANDEM_AUTH=none): anyone who reaches this node may do anything; for local use only")
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	return node.Run(ctx, node.Config{
		NodeID:          cfg.NodeID,
		RedisURL:        cfg.RedisURL,
		ShutdownTimeout: cfg.ShutdownWait,
		EventLog:        eventlog.Config{MaxLen: cfg.StreamMaxLen, WaitReplicas: int(cfg.WaitReplicas), WaitTimeout: cfg.WaitTimeout},
		Workspace: workspace.Config{
			LockTTL:        cfg.LockTTL,
			IdleTimeout:    cfg.IdleTimeout,
			HealthInterval: cfg.HealthInterval,
			DefaultAgent:   cfg.Agent,
			AgentCwd:       cfg.AgentCwd,
			MaxPromptBytes: int(cfg.MaxPromptBytes),
			PromptRate:     cfg.PromptRate,
			PromptBurst:    int(cfg.PromptBurst),

			PermissionTimeout: cfg.PermTimeout,
			MaxSessions:       int(cfg.MaxSessions),
			MaxEventBytes:     int(cfg.MaxEventBytes),
		},
		Fanout: fanout.Config{MaxStreamsPerUser: int(cfg.MaxStreams)},
		HTTP: httpapi.Config{
			MaxBodyBytes:         cfg.MaxBodyBytes,
			CORSOrigins:          splitList(cfg.CORSOrigins),
			NoAuthAllowRemote:    cfg.security.AllowRemoteNone,
			CommandRate:          cfg.CommandRate,
			CommandBurst:         int(cfg.CommandBurst),
			MaxWorkspacesPerUser: int(cfg.MaxWorkspaces),
		},
		Auth:          authn,
		PprofAddr:     cfg.PprofAddr,
		MetricsToken:  cfg.MetricsToken,
		BenchRoutes:   cfg.BenchRoutes,
		SandboxAllow:  splitList(cfg.SandboxAllow),
		AllowEviction: cfg.AllowEviction,
		Sandbox: node.SandboxConfig{
			Mode:          cfg.Sandbox,
			URL:           cfg.SandboxURL,
			Token:         cfg.SandboxToken,
			Bin:           cfg.SandboxBin,
			DataDir:       cfg.SandboxDataDir,
			Port:          int(cfg.SandboxPort),
			AgentLauncher: cfg.SandboxLauncher,
			PassEnv:       splitList(cfg.SandboxEnv),
			Output:        os.Stderr,
		},
		Logger: logger,
	}, ln)
}

func newLogger(cfg config) *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		lvl = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(os.Stderr, opts)
	} else {
		h = slog.NewTextHandler(os.Stderr, opts)
	}
	return slog.New(h)
}
