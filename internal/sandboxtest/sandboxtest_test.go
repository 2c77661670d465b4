package sandboxtest_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tandem-dev/tandem/acp"
	"github.com/tandem-dev/tandem/internal/sandboxtest"
)

func TestServer(t *testing.T) {
	srv := sandboxtest.Start(t, sandboxtest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	client, err := acp.New(acp.Config{BaseURL: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Health(ctx); err != nil {
		t.Fatal(err)
	}
	launcher, err := os.ReadFile(filepath.Join(srv.DataDir(), "data", "sandbox-agent", "bin", "agent_processes", "mock-acp"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(launcher), sandboxtest.MockAgent(t)) {
		t.Fatalf("launcher not replaced:\n%s", launcher)
	}

	t.Run("Kill", func(t *testing.T) {
		pid := srv.Pid()
		srv.Kill()
		if err := syscall.Kill(pid, 0); err == nil {
			t.Fatalf("process %d still exists", pid)
		}
		if err := client.Health(ctx); err == nil {
			t.Fatal("healthy after Kill")
		}
	})
	t.Run("Restart", func(t *testing.T) {
		srv.Restart()
		if err := client.Health(ctx); err != nil {
			t.Fatal(err)
		}
		if got := srv.URL(); got != client.BaseURL() {
			t.Fatalf("URL changed: %s", got)
		}
	})
}

func TestServerToken(t *testing.T) {
	srv := sandboxtest.Start(t, sandboxtest.Options{Token: "s3cret", KeepBuiltinMock: true})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	good, _ := acp.New(acp.Config{BaseURL: srv.URL(), Token: "s3cret"})
	if _, err := good.Connections(ctx); err != nil {
		t.Fatalf("with the token: %v", err)
	}
	bad, _ := acp.New(acp.Config{BaseURL: srv.URL(), Token: "wrong"})
	if _, err := bad.Connections(ctx); err == nil {
		t.Fatal("a wrong token was accepted")
	}
}
