package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// An inbox read that Redis executed but whose reply never reached the
// owner (Redis killed right after it, or the connection cut) leaves the
// prompt pending for the owner's consumer without the owner knowing. The
// owner must find it again (ask again, never "nothing was there") and
// dispatch it before any later prompt of the session; and the next owner
// must not take a later prompt's dispatch for proof that it was sent. Found
// by the fault campaign (seed 678972383): a prompt answered 202 that never
// reached the agent.
func TestInboxReadReplyLost(t *testing.T) {
	e := newEnv(t)
	proxy := startReplyDropper(t, e.redis.Addr())
	a := startNode(t, "a", nodeOpts{redis: "redis://" + proxy.addr() + "/0", sandbox: e.sandbox.URL()})
	call(t, "PUT", a.URL()+"/v1/workspaces/lost", nil, nil, nil)
	c := follow(t, a, "lost", "default")
	warm := prompt(t, a, "lost", "default", "warm up [chunks=2]", nil)
	c.waitFor(t, "the warm-up turn", 15*time.Second, turnEnded(warm.ID))
	if owner := waitOwner(t, a, "lost", "", 5*time.Second); owner != "a" {
		t.Fatalf("owner %s, want a", owner)
	}

	const firstText = "first, whose read reply is lost [chunks=20] [delay=40ms]"
	const secondText = "second, accepted after [chunks=5] [delay=20ms]"
	// The first reply from Redis that carries the first prompt's text is
	// its inbox read: the proxy drops it and cuts the connection.
	proxy.arm([]byte("whose read reply is lost"))
	first := prompt(t, a, "lost", "default", firstText, nil)
	select {
	case <-proxy.dropped:
	case <-time.After(10 * time.Second):
		t.Fatal("the owner never read the first prompt")
	}
	second := prompt(t, a, "lost", "default", secondText, nil)
	// The owner dies while the session's prompts are in flight or queued;
	// another node takes over.
	time.Sleep(300 * time.Millisecond)
	a.kill()
	b := e.node("b", nil)
	if owner := waitOwner(t, b, "lost", "a", 15*time.Second); owner != "b" {
		t.Fatalf("owner %s, want b", owner)
	}

	deadline := time.Now().Add(30 * time.Second)
	for {
		entries := readStream(t, e.rdb, "lost", "default")
		_, firstDone := agentReply(entries, first.ID)
		_, secondDone := agentReply(entries, second.ID)
		if firstDone && secondDone {
			break
		}
		if time.Now().After(deadline) {
			users := chatUsers(entries)
			t.Fatalf("both turns did not end within 30s of the takeover: chat.user entries of the first prompt %d, of the second %d; the agent received %v",
				users[first.ID], users[second.ID], e.promptsReceived(t))
		}
		time.Sleep(100 * time.Millisecond)
	}
	entries := readStream(t, e.rdb, "lost", "default")
	checkStream(t, entries)
	users := chatUsers(entries)
	if users[first.ID] != 1 || users[second.ID] != 1 {
		t.Fatalf("chat.user entries: first %d, second %d; want one each", users[first.ID], users[second.ID])
	}
	var order []string
	for _, en := range entries {
		if en.Type == "chat.user" {
			order = append(order, en.Body["promptId"].(string))
		}
	}
	if want := []string{warm.ID, first.ID, second.ID}; strings.Join(order, " ") != strings.Join(want, " ") {
		t.Fatalf("chat.user order %v, want %v", order, want)
	}
	got := receivedInOrder(t, e.promptLog)
	if want := []string{"warm up [chunks=2]", firstText, secondText}; strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("the agent received %q, want %q (each once, in order)", got, want)
	}
}

// receivedInOrder lists the prompts the agent processes received, in the
// order they received them.
func receivedInOrder(t testing.TB, promptLog string) []string {
	t.Helper()
	f, err := os.Open(promptLog)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l struct{ Text string }
		if json.Unmarshal(sc.Bytes(), &l) == nil {
			out = append(out, l.Text)
		}
	}
	return out
}

// replyDropper is a loopback TCP proxy in front of Redis that, once armed,
// drops the first reply carrying a marker and cuts that connection: the
// command was executed, its reply is lost.
type replyDropper struct {
	ln      net.Listener
	target  string
	mu      sync.Mutex
	marker  []byte
	dropped chan struct{}
	conns   []net.Conn
}

func startReplyDropper(t testing.TB, target string) *replyDropper {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &replyDropper{ln: ln, target: target, dropped: make(chan struct{})}
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			c.Close()
		}
	})
	return p
}

func (p *replyDropper) addr() string { return p.ln.Addr().String() }

func (p *replyDropper) arm(marker []byte) {
	p.mu.Lock()
	p.marker = marker
	p.mu.Unlock()
}

// take reports whether chunk is the reply to drop, disarming the proxy.
func (p *replyDropper) take(chunk []byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.marker == nil || !bytes.Contains(chunk, p.marker) {
		return false
	}
	p.marker = nil
	close(p.dropped)
	return true
}

func (p *replyDropper) serve() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		upstream, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, client, upstream)
		p.mu.Unlock()
		go func() {
			_, _ = io.Copy(upstream, client)
			upstream.Close()
			client.Close()
		}()
		go func() {
			defer client.Close()
			defer upstream.Close()
			buf := make([]byte, 64<<10)
			for {
				n, err := upstream.Read(buf)
				if n > 0 {
					if p.take(buf[:n]) {
						return
					}
					if _, werr := client.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
}
