// Package nodetest runs Tandem nodes in-process for tests.
package nodetest

import (
	"context"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/tandem-dev/tandem/node"
)

// Node is an in-process node listening on a loopback port.
type Node struct {
	URL    string
	Addr   string
	cancel context.CancelFunc
	done   chan error
}

// Start runs a node on redisURL; mut may adjust its configuration. The node
// is stopped by a cleanup.
func Start(tb testing.TB, redisURL string, mut func(*node.Config)) *Node {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	cfg := node.Config{
		NodeID:          "test-" + ln.Addr().String(),
		RedisURL:        redisURL,
		ShutdownTimeout: 5 * time.Second,
		Logger:          slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		// A sandbox nobody listens on: tests that prompt set their own.
		Sandbox: node.SandboxConfig{URL: "http://127.0.0.1:9"},
	}
	if mut != nil {
		mut(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &Node{URL: "http://" + ln.Addr().String(), Addr: ln.Addr().String(), cancel: cancel, done: make(chan error, 1)}
	go func() { n.done <- node.Run(ctx, cfg, ln) }()
	tb.Cleanup(func() { n.Stop(tb) })
	return n
}

// Stop shuts the node down and waits for it; it fails the test when the
// node returned an error or took more than 15 s.
func (n *Node) Stop(tb testing.TB) {
	tb.Helper()
	if n.cancel == nil {
		return
	}
	n.cancel()
	n.cancel = nil
	select {
	case err := <-n.done:
		if err != nil {
			tb.Errorf("node %s: %v", n.Addr, err)
		}
	case <-time.After(15 * time.Second):
		tb.Errorf("node %s did not stop within 15s", n.Addr)
	}
}
