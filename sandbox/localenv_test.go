package sandbox_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tandem-dev/tandem/internal/sandboxtest"
	"github.com/tandem-dev/tandem/sandbox"
)

// The local Sandbox Agent server, and every agent it runs, gets an
// allow-listed environment: none of the node's secrets (nor anything else
// of its environment but PATH, the locale and the agent credentials named
// in PassEnv). It requires a token of its own.
func TestLocalChildEnvironmentHasNoSecrets(t *testing.T) {
	secrets := map[string]string{
		"TANDEM_JWT_SECRET":     "jwt-secret-0123456789abcdef0123456789",
		"TANDEM_REDIS_URL":      "redis://:redis-password@10.0.0.1:6379/0",
		"TANDEM_SANDBOX_TOKEN":  "sandbox-token-secret",
		"TANDEM_METRICS_TOKEN":  "metrics-token-secret",
		"AWS_SECRET_ACCESS_KEY": "aws-secret",
		"DATABASE_URL":          "postgres://u:db-password@db/x",
	}
	for k, v := range secrets {
		t.Setenv(k, v)
	}
	t.Setenv("ANTHROPIC_API_KEY", "agent-credential")
	dump := filepath.Join(t.TempDir(), "agent.env")
	launcher := filepath.Join(t.TempDir(), "dump-env")
	script := "#!/bin/sh\nenv > '" + dump + "'\nexec '" + sandboxtest.MockAgent(t) + "' \"$@\"\n"
	if err := os.WriteFile(launcher, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	local, err := sandbox.NewLocal(sandbox.LocalConfig{
		Bin: sandboxtest.Binary(t), DataDir: dataDir, AgentLauncher: launcher,
		PassEnv: []string{"ANTHROPIC_API_KEY"}, StopGrace: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithTimeout(context.Background(), 60*time.Second)
	done := make(chan error, 1)
	go func() { done <- local.Run(ctx) }()
	t.Cleanup(func() { stop(); <-done })
	if err := local.EnsureServer(ctx); err != nil {
		t.Fatal(err)
	}
	if len(local.Token()) < 32 {
		t.Fatalf("token %q", local.Token())
	}
	startAgent(t, ctx, local.BaseURL(), local.Token())

	server, err := os.ReadFile("/proc/" + strconv.Itoa(local.Pid()) + "/environ")
	if err != nil {
		t.Fatal(err)
	}
	agent, err := os.ReadFile(dump)
	if err != nil {
		t.Fatal(err)
	}
	for who, env := range map[string][]string{
		"server": strings.Split(strings.TrimRight(string(server), "\x00"), "\x00"),
		"agent":  strings.Split(strings.TrimSpace(string(agent)), "\n"),
	} {
		joined := strings.Join(env, "\n")
		for k, v := range secrets {
			if strings.Contains(joined, v) || slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, k+"=") }) {
				t.Errorf("the %s's environment has %s", who, k)
			}
		}
		// Nothing of the node's environment but what is allowed.
		for _, kv := range os.Environ() {
			k, _, _ := strings.Cut(kv, "=")
			switch k {
			case "PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "ANTHROPIC_API_KEY":
				continue
			}
			if slices.Contains(env, kv) && !strings.HasPrefix(kv, "PWD=") && !strings.HasPrefix(kv, "SHLVL=") && !strings.HasPrefix(kv, "_=") {
				t.Errorf("the %s's environment has the node's %s", who, k)
			}
		}
		if !slices.Contains(env, "ANTHROPIC_API_KEY=agent-credential") {
			t.Errorf("the %s's environment lacks the agent credential it was given: %v", who, env)
		}
		if !slices.Contains(env, "HOME="+dataDir) && !slices.ContainsFunc(env, func(kv string) bool {
			return strings.HasPrefix(kv, "HOME=") && strings.HasSuffix(kv, filepath.Base(dataDir))
		}) {
			t.Errorf("the %s's HOME is not its data dir: %v", who, env)
		}
	}

	// The server wants its token.
	for tok, want := range map[string]int{"": 401, "wrong": 401, local.Token(): 200} {
		req, _ := http.NewRequestWithContext(ctx, "GET", local.BaseURL()+"/v1/acp", nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET /v1/acp with token %q: %d, want %d", tok, resp.StatusCode, want)
		}
	}

	// Each workspace gets a directory of its own under the data dir.
	a, b, dots := local.WorkspaceDir("a"), local.WorkspaceDir("b"), local.WorkspaceDir("..")
	for _, d := range []string{a, b, dots} {
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() || !strings.HasPrefix(d, dataDir+string(filepath.Separator)+"workspaces"+string(filepath.Separator)) {
			t.Errorf("workspace dir %q: %v", d, err)
		}
	}
	if a == b {
		t.Error("two workspaces share a directory")
	}
}
