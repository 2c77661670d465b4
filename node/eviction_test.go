package node_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandem-dev/tandem/internal/nodetest"
	"github.com/tandem-dev/tandem/internal/redistest"
	"github.com/tandem-dev/tandem/node"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A node refuses to start on a Redis that may evict its keys.
func TestNodeRefusesEvictingRedis(t *testing.T) {
	for _, policy := range []string{"allkeys-lru", "volatile-ttl"} {
		t.Run(policy, func(t *testing.T) {
			srv := redistest.Start(t, redistest.Options{Args: []string{"--maxmemory-policy", policy}})
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err = node.Run(ctx, node.Config{NodeID: "n", RedisURL: srv.URL(), Sandbox: node.SandboxConfig{URL: "http://127.0.0.1:9"},
				Logger: slog.New(slog.NewTextHandler(&syncBuffer{}, nil))}, ln)
			if !errors.Is(err, node.ErrEvictionPolicy) || !strings.Contains(err.Error(), policy) || !strings.Contains(err.Error(), "TANDEM_ALLOW_EVICTION") {
				t.Fatalf("Run: %v; want ErrEvictionPolicy naming %s and the override", err, policy)
			}
			if ctx.Err() != nil {
				t.Fatal("Run returned only when its context ended")
			}
		})
	}
}

// With the override, or when the policy cannot be read (CONFIG renamed, as
// managed services do), the node starts and says so in its log; with
// noeviction it says nothing.
func TestNodeEvictionPolicyWarnings(t *testing.T) {
	for _, c := range []struct {
		name  string
		args  []string
		allow bool
		want  string
	}{
		{"override", []string{"--maxmemory-policy", "volatile-lru"}, true, "MAY EVICT KEYS"},
		{"config renamed", []string{"--rename-command", "CONFIG", ""}, false, "could not check"},
		{"noeviction", nil, false, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := redistest.Start(t, redistest.Options{Args: c.args})
			logs := &syncBuffer{}
			n := nodetest.Start(t, srv.URL(), func(cfg *node.Config) {
				cfg.AllowEviction = c.allow
				cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
			})
			deadline := time.Now().Add(10 * time.Second)
			for {
				resp, err := http.Get(n.URL + "/readyz")
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode == 200 {
						break
					}
				}
				if time.Now().After(deadline) {
					t.Fatalf("not ready: %v", err)
				}
				time.Sleep(20 * time.Millisecond)
			}
			got := logs.String()
			if c.want == "" {
				if strings.Contains(got, "maxmemory-policy") || strings.Contains(got, "EVICT") {
					t.Fatalf("warned on noeviction: %s", got)
				}
				return
			}
			if !strings.Contains(got, c.want) {
				t.Fatalf("log %q does not say %q", got, c.want)
			}
		})
	}
}

// On a cluster every master is checked: one that may evict is enough to
// refuse.
func TestEvictionPolicyOnCluster(t *testing.T) {
	cl := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3})
	rdb := cl.Client(t)
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(&syncBuffer{}, nil))
	if err := node.CheckEvictionPolicy(ctx, rdb, false, logger); err != nil {
		t.Fatalf("noeviction cluster: %v", err)
	}
	m := cl.MasterFor(t, "{ws:x}:inbox")
	if _, err := m.Do(ctx, "CONFIG", "SET", "maxmemory-policy", "allkeys-lfu"); err != nil {
		t.Fatal(err)
	}
	err := node.CheckEvictionPolicy(ctx, rdb, false, logger)
	if !errors.Is(err, node.ErrEvictionPolicy) || !strings.Contains(err.Error(), m.Addr()+": allkeys-lfu") {
		t.Fatalf("one master on allkeys-lfu: %v", err)
	}
}
