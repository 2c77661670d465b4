package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tandem-dev/tandem/internal/chaos"
	"github.com/tandem-dev/tandem/internal/proc"
	"github.com/tandem-dev/tandem/internal/redistest"
)

// nginxBinary is Debian's nginx; `make test` installs it
// (scripts/ensure-nginx.sh). The test fails without it, it never skips.
func nginxBinary(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	t.Fatal("nginx is missing: run `make test` (scripts/ensure-nginx.sh: apt-get install nginx)")
	return ""
}

// lb is nginx in front of nodes, with the fault campaign's configuration
// (chaos.NginxConfig).
type lb struct {
	url, dir string
	p        *proc.Proc
}

func startLB(t *testing.T, nodes []*node) *lb {
	t.Helper()
	bin := nginxBinary(t)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o777); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(filepath.Join(dir, "tmp"), 0o777) // workers may run as another user
	var addrs []string
	for _, n := range nodes {
		addrs = append(addrs, n.addr)
	}
	port := redistest.FreePort(t)
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(chaos.NginxConfig(dir, port, addrs)), 0o644); err != nil {
		t.Fatal(err)
	}
	l := &lb{url: "http://127.0.0.1:" + strconv.Itoa(port), dir: dir}
	out := &lockedBuffer{}
	cmd := exec.Command(bin, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"), "-g", "daemon off;")
	cmd.Stdout, cmd.Stderr = out, out
	var err error
	if l.p, err = proc.Start(cmd); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	t.Cleanup(func() {
		l.p.Kill()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("nginx error.log (tail):\n%s%s", out, tail(string(b), 4000))
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if resp, err := http.Get(l.url + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return l
			}
		}
		select {
		case <-l.p.Done():
			t.Fatalf("nginx exited: %s", out)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx not answering within 10s: %s", out)
		}
	}
}

func (l *lb) errorLog() string {
	b, _ := os.ReadFile(filepath.Join(l.dir, "error.log"))
	return string(b)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// esLine is one line of internal/chaos/node/client.mjs: the WHATWG EventSource
// (npm eventsource@4) as a browser runs it.
type esLine struct {
	C, K, ID, T, D, Msg string
	Code                int
}

// esClients runs internal/chaos/node/client.mjs and keeps what its EventSources
// report.
type esClients struct {
	p     *proc.Proc
	stdin io.WriteCloser

	mu     sync.Mutex
	events map[string][]esLine // per client, events in arrival order
	errs   map[string]int      // per client, error events (it reconnects)
	opens  map[string]int
	fatal  []esLine // the EventSource gave up: the failure this test is about
}

func startESClients(t *testing.T) *esClients {
	t.Helper()
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is missing: this test needs Node.js 20+ and npm")
	}
	dir := filepath.Join(repoRoot(), "internal", "chaos", "node")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "eventsource", "package.json")); err != nil {
		t.Fatal("internal/chaos/node/node_modules/eventsource is missing: run `make test` (scripts/ensure-node-client.sh: npm ci in internal/chaos/node)")
	}
	c := &esClients{events: map[string][]esLine{}, errs: map[string]int{}, opens: map[string]int{}}
	cmd := exec.Command(nodeBin, filepath.Join(dir, "client.mjs"))
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = proc.Lines(func(b []byte) {
		var l esLine
		if json.Unmarshal(b, &l) != nil {
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		switch l.K {
		case "ev":
			c.events[l.C] = append(c.events[l.C], l)
		case "err":
			c.errs[l.C]++
		case "open":
			c.opens[l.C]++
		case "fatal":
			c.fatal = append(c.fatal, l)
		}
	})
	if c.p, err = proc.Start(cmd); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.send(map[string]string{"op": "close"})
		c.stdin.Close()
		select {
		case <-c.p.Done():
		case <-time.After(5 * time.Second):
			c.p.Kill()
		}
	})
	return c
}

func (c *esClients) send(v any) {
	b, _ := json.Marshal(v)
	c.stdin.Write(append(b, '\n'))
}

func (c *esClients) open(id, url string) {
	c.send(map[string]string{"op": "open", "client": id, "url": url})
}

// drop resets the TCP connection of a client's stream, as a network fault
// does: its EventSource reconnects by itself after retry.
func (c *esClients) drop(id string) { c.send(map[string]string{"op": "drop", "client": id}) }

func (c *esClients) fatals() []esLine {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]esLine(nil), c.fatal...)
}

// indexes are the eventIndex values of the persisted events a client
// received, in order.
func (c *esClients) indexes(id string) []uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []uint64
	for _, l := range c.events[id] {
		var b struct{ EventIndex uint64 }
		if l.ID != "" && json.Unmarshal([]byte(l.D), &b) == nil {
			out = append(out, b.EventIndex)
		}
	}
	return out
}

// TestEventSourceRidesThroughFaults is guarantee 7 end to end: WHATWG
// EventSources (npm eventsource@4, internal/chaos/node/client.mjs) follow a session
// through nginx (the fault campaign's configuration) over three nodes
// while prompts keep the agent talking, and ride through (a) Redis killed,
// down for 4 s with their connections dropped meanwhile (so that they
// reconnect while no node can serve them), and started again from its
// append-only file on the same port, and (b) a rolling restart of every
// node while the workspace's owner is SIGSTOPped for longer than the lock
// TTL. No EventSource may ever give up (an error with readyState CLOSED),
// and each receives every event of the session exactly once, in order.
func TestEventSourceRidesThroughFaults(t *testing.T) {
	e := newEnv(t)
	opts := map[string]string{"TANDEM_SHUTDOWN_TIMEOUT": "3s", "TANDEM_LOG_LEVEL": "info"}
	nodes := []*node{e.node("n1", opts), e.node("n2", opts), e.node("n3", opts)}
	lb := startLB(t, nodes)
	es := startESClients(t)

	const ws = "es-ride"
	if code := call(t, "PUT", lb.url+"/v1/workspaces/"+ws, nil, nil, nil); code != 201 {
		t.Fatalf("PUT workspace: %d", code)
	}
	stream := lb.url + "/v1/workspaces/" + ws + "/sessions/default/events/stream"
	clients := []string{"a", "b"}
	for _, id := range clients {
		es.open(id, stream)
	}
	p := startProber(t, lb.url, ws, 300*time.Millisecond)
	waitEvents := func(what string, n int) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			ok := true
			for _, id := range clients {
				ok = ok && len(es.indexes(id)) >= n
			}
			if ok {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("%s: the clients have %d and %d events, want %d", what, len(es.indexes("a")), len(es.indexes("b")), n)
	}
	waitEvents("before the faults", 5)

	// (a) Redis goes away. Open streams wait for it; the dropped ones
	// reconnect (after the stream's retry: of 2 s) while it is still down,
	// so their requests fail on every node.
	t.Log("fault: redis-server killed, down for 4 s")
	e.redis.Kill()
	for _, id := range clients {
		es.drop(id)
	}
	time.Sleep(4 * time.Second)
	e.redis.Restart(t) // from its append-only file, on the same port
	t.Log("fault: redis-server started again")
	time.Sleep(2 * time.Second)
	n := len(es.indexes("a"))
	waitEvents("after Redis came back", n+3)

	// (b) The owner is paused past the lock TTL (3 s) while every other
	// node is restarted, one at a time; then it is resumed and restarted
	// too.
	ownerID := waitOwner(t, nodes[0], ws, "", 10*time.Second)
	var owner *node
	var others []*node
	for _, nd := range nodes {
		if nd.id == ownerID {
			owner = nd
		} else {
			others = append(others, nd)
		}
	}
	t.Logf("fault: owner %s SIGSTOPped; rolling restart of the others", ownerID)
	stopped := time.Now()
	owner.signal(syscall.SIGSTOP)
	for _, nd := range others {
		es.drop("a") // a reconnect in the middle of it, every time
		nd.term()
		nd.start()
	}
	if d := 4*time.Second - time.Since(stopped); d > 0 {
		time.Sleep(d)
	}
	owner.signal(syscall.SIGCONT)
	t.Logf("fault: %s resumed after %v; restarting it", ownerID, time.Since(stopped).Round(100*time.Millisecond))
	owner.term()
	owner.start()
	time.Sleep(time.Second)
	p.halt()

	// Every event of the session, exactly once, in order, at both clients.
	var want int
	deadline := time.Now().Add(20 * time.Second)
	for {
		want = len(readStream(t, e.rdb, ws, "default"))
		ok := true
		for _, id := range clients {
			ok = ok && len(es.indexes(id)) >= want
		}
		if ok && want > 0 {
			time.Sleep(500 * time.Millisecond) // anything more would be a duplicate
			if len(readStream(t, e.rdb, ws, "default")) == want {
				break
			}
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if f := es.fatals(); len(f) > 0 {
		t.Errorf("an EventSource gave up %d times (readyState CLOSED), first: %+v", len(f), f[0])
	}
	for _, id := range clients {
		got := es.indexes(id)
		for i, idx := range got {
			if idx != uint64(i+1) {
				t.Fatalf("client %s: event %d has eventIndex %d, want %d (a gap, a duplicate or out of order): %v", id, i, idx, i+1, got)
			}
		}
		if len(got) != want {
			t.Errorf("client %s received %d events, the stream holds %d", id, len(got), want)
		}
	}
	es.mu.Lock()
	t.Logf("stream of %d events; reconnects (error events): a %d, b %d; opens: a %d, b %d; prompts accepted %d",
		want, es.errs["a"], es.errs["b"], es.opens["a"], es.opens["b"], len(p.order))
	es.mu.Unlock()
	// The nodes told the reconnecting clients to come back (200 retry:)
	// while Redis was down, and nginx never ran out of upstreams.
	told := 0
	for _, nd := range nodes {
		told += strings.Count(nd.log.String(), "stream unavailable, client told to reconnect")
	}
	if told == 0 {
		t.Error("no node answered a stream with 200 retry: while Redis was down (they answered 503, which only nginx's last line of defence turned into 200, or no reconnect hit the outage)")
	}
	if c := strings.Count(lb.errorLog(), "no live upstreams"); c > 0 {
		t.Errorf("nginx had no live upstream %d times", c)
	}
	t.Logf("200 retry: answers from the nodes: %d", told)
}

// The shipped deploy/nginx.conf is valid for nginx, with the compose
// service names standing for loopback addresses.
func TestDeployNginxConfigValid(t *testing.T) {
	bin := nginxBinary(t)
	src, err := os.ReadFile(filepath.Join(repoRoot(), "deploy", "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	conf := regexp.MustCompile(`tandem[0-9]+:`).ReplaceAllString(string(src), "127.0.0.1:")
	conf = strings.Replace(conf, "listen 80;", fmt.Sprintf("listen 127.0.0.1:%d;", redistest.FreePort(t)), 1)
	file := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-t", "-p", dir, "-c", file, "-e", filepath.Join(dir, "error.log"), "-g", "pid "+filepath.Join(dir, "nginx.pid")+";").CombinedOutput()
	if err != nil {
		t.Fatalf("nginx -t deploy/nginx.conf: %v\n%s", err, out)
	}
}
