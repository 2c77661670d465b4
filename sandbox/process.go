package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tandem-dev/tandem/acp"
	"github.com/tandem-dev/tandem/internal/proc"
)

// MockAgent is the Sandbox Agent agent whose launcher AgentLauncher replaces.
const MockAgent = "mock"

// ProcessConfig configures one Sandbox Agent server child process.
type ProcessConfig struct {
	// Bin is the sandbox-agent binary. Required.
	Bin string

	// DataDir holds everything of the server: it is its HOME and working
	// directory, and XDG_DATA_HOME is DataDir/data. Required; created when
	// missing. Reusing it keeps the installed agents.
	DataDir string

	// Port the server listens on, on 127.0.0.1. Required (LocalConfig picks a free one).
	Port int

	// Token, when set, is required by the server from its clients.
	// Empty: --no-token.
	Token string

	// PassEnv names the variables of this process's environment the
	// server (and so every agent it runs) gets, besides PATH and the
	// locale: the agents' credentials (ANTHROPIC_API_KEY...). Nothing
	// else of the node's environment reaches it, so that an agent running
	// env finds neither the JWT secret nor the Redis URL.
	PassEnv []string

	// AgentLauncher, when set, is an executable that speaks ACP on stdio: the
	// "mock" agent is installed and its launcher replaced by one that execs
	// AgentLauncher, so connections with agent "mock" run it. Empty: the
	// agents are left as they are.
	AgentLauncher string

	// StartTimeout bounds the wait for the server's health. Zero: 15 s.
	StartTimeout time.Duration

	// Output receives the server's stdout and stderr. Nil: discarded.
	Output *os.File
}

func (c ProcessConfig) validate() error {
	switch {
	case c.Bin == "":
		return errors.New("sandbox: no sandbox-agent binary")
	case c.DataDir == "":
		return errors.New("sandbox: no data dir")
	case c.Port <= 0 || c.Port > 65535:
		return fmt.Errorf("sandbox: bad port %d", c.Port)
	case c.StartTimeout < 0:
		return errors.New("sandbox: negative StartTimeout")
	}
	return nil
}

// Process is one running Sandbox Agent server, the leader of its own process
// group (so that killing it also kills the agent processes it started). A
// goroutine waits for it to exit; Kill and Stop wait for that goroutine.
type Process struct {
	p   *proc.Proc
	url string
}

// StartProcess starts the server and returns once it is healthy and, when
// configured, the mock agent's launcher is replaced. ctx bounds the start
// only, not the life of the process. On failure nothing is left running.
func StartProcess(ctx context.Context, cfg ProcessConfig) (*Process, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	cfg.DataDir = dataDir
	for _, d := range []string{"data", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dataDir, d), 0o700); err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
	}
	args := []string{"server", "--no-telemetry", "--host", "127.0.0.1", "--port", strconv.Itoa(cfg.Port)}
	if cfg.Token != "" {
		args = append(args, "--token", cfg.Token)
	} else {
		args = append(args, "--no-token")
	}
	cmd := exec.Command(cfg.Bin, args...)
	cmd.Dir = dataDir
	cmd.Env = childEnv(dataDir, cfg.PassEnv)
	if cfg.Output != nil {
		cmd.Stdout, cmd.Stderr = cfg.Output, cfg.Output
	}
	child, err := proc.Start(cmd)
	if err != nil {
		return nil, fmt.Errorf("sandbox: start %s: %w", cfg.Bin, err)
	}
	p := &Process{p: child, url: fmt.Sprintf("http://127.0.0.1:%d", cfg.Port)}

	if err := p.ready(ctx, cfg); err != nil {
		p.Kill()
		return nil, err
	}
	return p, nil
}

// baseEnv is what every server gets of the node's environment: where
// programs are, and the locale.
var baseEnv = []string{"PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ"}

// childEnv is the server's environment: its own home, and of this
// process's environment only PATH, the locale and the variables pass
// names (an allow-list: the node's secrets never reach the agents).
func childEnv(dataDir string, pass []string) []string {
	env := []string{
		"HOME=" + dataDir,
		"XDG_DATA_HOME=" + filepath.Join(dataDir, "data"),
		"XDG_CONFIG_HOME=" + filepath.Join(dataDir, "config"),
		"XDG_CACHE_HOME=" + filepath.Join(dataDir, "cache"),
		"XDG_STATE_HOME=" + filepath.Join(dataDir, "state"),
		"TMPDIR=" + filepath.Join(dataDir, "tmp"),
	}
	seen := map[string]bool{}
	for _, k := range append(append([]string(nil), baseEnv...), pass...) {
		if v, ok := os.LookupEnv(k); ok && !seen[k] && ValidPassEnv([]string{k}) == nil {
			seen[k] = true
			env = append(env, k+"="+v)
		}
	}
	return env
}

// ValidPassEnv reports a variable name PassEnv may not carry: not a
// name, or one of the node's own (TANDEM_*) or the server's home.
func ValidPassEnv(names []string) error {
	for _, k := range names {
		if k == "" || strings.ContainsAny(k, "= \t\n\x00") {
			return fmt.Errorf("sandbox: environment variable name %q", k)
		}
		if strings.HasPrefix(strings.ToUpper(k), "TANDEM_") {
			return fmt.Errorf("sandbox: %s is the node's own setting: it is never passed to the sandbox", k)
		}
		switch k {
		case "HOME", "TMPDIR", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME":
			return fmt.Errorf("sandbox: %s is the server's own (its data dir)", k)
		}
	}
	return nil
}

// ready waits for health and sets up the mock agent.
func (p *Process) ready(ctx context.Context, cfg ProcessConfig) error {
	timeout := cfg.StartTimeout
	if timeout == 0 {
		timeout = 15 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client, err := acp.New(acp.Config{BaseURL: p.url, Token: cfg.Token})
	if err != nil {
		return err
	}
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		hctx, hcancel := context.WithTimeout(ctx, time.Second)
		err = client.Health(hctx)
		hcancel()
		if err == nil {
			break
		}
		select {
		case <-p.p.Done():
			return fmt.Errorf("sandbox: server exited while starting: %v", p.p.Err())
		case <-ctx.Done():
			return fmt.Errorf("sandbox: server not healthy: %w (last error: %v)", ctx.Err(), err)
		case <-tick.C:
		}
	}
	if cfg.AgentLauncher == "" {
		return nil
	}
	return replaceLauncher(ctx, client, filepath.Join(cfg.DataDir, "data"), cfg.AgentLauncher)
}

// replaceLauncher installs the mock agent, then overwrites the launcher the
// install wrote (installing again would rewrite it) with one that runs ours.
func replaceLauncher(ctx context.Context, client *acp.Client, dataHome, launcher string) error {
	launcher, err := filepath.Abs(launcher)
	if err != nil {
		return err
	}
	res, err := client.InstallAgent(ctx, MockAgent)
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	path := filepath.Join(dataHome, "sandbox-agent", "bin", "agent_processes", MockAgent+"-acp")
	for _, a := range res.Artifacts {
		if a.Kind == "agent_process" && a.Path != "" {
			path = a.Path
		}
	}
	script := "#!/bin/sh\nexec " + shellQuote(launcher) + ` "$@"` + "\n"
	tmp := path + ".tandem"
	if err := os.WriteFile(tmp, []byte(script), 0o755); err != nil {
		return fmt.Errorf("sandbox: write launcher: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("sandbox: write launcher: %w", err)
	}
	return nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// BaseURL is the server's base URL.
func (p *Process) BaseURL() string { return p.url }

// Pid is the server's process id, which is also its process group id.
func (p *Process) Pid() int { return p.p.Pid() }

// Done is closed once the process has exited and its group been killed.
func (p *Process) Done() <-chan struct{} { return p.p.Done() }

// ExitErr is how the process exited (as exec.Cmd.Wait says), valid once Done
// is closed.
func (p *Process) ExitErr() error { return p.p.Err() }

// Kill sends SIGKILL to the process group and waits for the process.
func (p *Process) Kill() { p.p.Kill() }

// Stop sends SIGTERM to the process group, then SIGKILL when the process has
// not exited within grace, and waits for it.
func (p *Process) Stop(grace time.Duration) { p.p.Stop(grace) }
