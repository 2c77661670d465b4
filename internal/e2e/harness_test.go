package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tandem-dev/tandem/eventlog"
	"github.com/tandem-dev/tandem/internal/proc"
	"github.com/tandem-dev/tandem/internal/redistest"
	"github.com/tandem-dev/tandem/internal/sandboxtest"
	"github.com/tandem-dev/tandem/internal/ssetest"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(filepath.Dir(file)))
}

// tandemBinary builds cmd/tandem once per test binary.
func tandemBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir := filepath.Join(repoRoot(), ".cache", "e2e")
		if buildErr = os.MkdirAll(dir, 0o755); buildErr != nil {
			return
		}
		tmp, err := os.CreateTemp(dir, "tandem-*")
		if err != nil {
			buildErr = err
			return
		}
		tmp.Close()
		cmd := exec.Command("go", "build", "-race", "-o", tmp.Name(), "./cmd/tandem")
		cmd.Dir = repoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("%v: %s", err, out)
			return
		}
		binPath = filepath.Join(dir, "tandem")
		buildErr = os.Rename(tmp.Name(), binPath)
	})
	if buildErr != nil {
		t.Fatalf("build tandem: %v", buildErr)
	}
	return binPath
}

// node is a tandem serve process.
type node struct {
	t    testing.TB
	id   string
	addr string
	env  []string
	p    *proc.Proc
	log  *lockedBuffer
}

func (n *node) URL() string { return "http://" + n.addr }

type nodeOpts struct {
	redis   string
	sandbox string // static sandbox URL; "" with local set
	env     map[string]string
}

// startNode runs a node and waits until it is ready.
func startNode(t testing.TB, id string, o nodeOpts) *node {
	t.Helper()
	n := &node{t: t, id: id, addr: "127.0.0.1:" + strconv.Itoa(redistest.FreePort(t)), log: &lockedBuffer{}}
	env := map[string]string{
		"TANDEM_ADDR":            n.addr,
		"TANDEM_REDIS_URL":       o.redis,
		"TANDEM_NODE_ID":         id,
		"TANDEM_LOCK_TTL":        "3s",
		"TANDEM_HEALTH_INTERVAL": "500ms",
		"TANDEM_LOG_LEVEL":       "debug",
		"TANDEM_SANDBOX_URL":     o.sandbox,
		"GORACE":                 "halt_on_error=1",
	}
	for k, v := range o.env {
		env[k] = v
	}
	for k, v := range env {
		n.env = append(n.env, k+"="+v)
	}
	n.start()
	t.Cleanup(func() {
		n.kill()
		if t.Failed() {
			t.Logf("log of node %s:\n%s", n.id, n.log.tail(6000))
		}
		if strings.Contains(n.log.String(), "WARNING: DATA RACE") {
			t.Errorf("node %s: data race:\n%s", n.id, n.log.tail(6000))
		}
	})
	return n
}

func (n *node) start() {
	n.t.Helper()
	cmd := exec.Command(tandemBinary(n.t), "serve")
	cmd.Env = append(os.Environ(), n.env...)
	cmd.Stdout = n.log
	cmd.Stderr = n.log
	p, err := proc.Start(cmd)
	if err != nil {
		n.t.Fatalf("start node %s: %v", n.id, err)
	}
	n.p = p
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(n.URL() + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case <-n.p.Done():
			n.t.Fatalf("node %s exited:\n%s", n.id, n.log.tail(4000))
		case <-time.After(50 * time.Millisecond):
		}
	}
	n.t.Fatalf("node %s not ready in 20s:\n%s", n.id, n.log.tail(4000))
}

func (n *node) signal(sig syscall.Signal) { n.p.Signal(sig) }

// kill sends SIGKILL and waits for the process.
func (n *node) kill() {
	if n.p == nil {
		return
	}
	n.p.Kill()
}

// term shuts the node down gracefully and waits.
func (n *node) term() {
	if !n.p.Stop(20 * time.Second) {
		n.t.Errorf("node %s did not stop within 20s of SIGTERM", n.id)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *lockedBuffer) tail(n int) string {
	s := l.String()
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// env is one test's peers: Redis (one server, or a cluster with
// newClusterEnv), a Sandbox Agent server (static) with a prompt log.
type env struct {
	t         *testing.T
	redis     *redistest.Server  // nil on a cluster
	cluster   *redistest.Cluster // nil on one server
	redisURL  string             // the nodes' TANDEM_REDIS_URL
	rdb       redis.UniversalClient
	log       *eventlog.Log
	sandbox   *sandboxtest.Server
	promptLog string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t}
	e.redis = redistest.Start(t, redistest.Options{AppendOnly: true})
	e.redisURL = e.redis.URL()
	e.rdb = e.redis.Client(t)
	e.startPeers()
	return e
}

// newClusterEnv is newEnv on a Redis Cluster.
func newClusterEnv(t *testing.T, opts redistest.ClusterOptions) *env {
	t.Helper()
	e := &env{t: t}
	e.cluster = redistest.StartCluster(t, opts)
	e.redisURL = e.cluster.URL()
	e.rdb = e.cluster.Client(t)
	e.startPeers()
	return e
}

func (e *env) startPeers() {
	e.log = eventlog.New(e.rdb, eventlog.Config{})
	e.promptLog = filepath.Join(e.t.TempDir(), "prompts.jsonl")
	e.sandbox = sandboxtest.Start(e.t, sandboxtest.Options{PromptLog: e.promptLog})
}

// forEachRedis runs test as subtests "single" (one server) and "cluster"
// (three masters): the workspace's scripts, lock and doorbell must work
// the same on both.
func forEachRedis(t *testing.T, test func(*testing.T, *env)) {
	t.Run("single", func(t *testing.T) { test(t, newEnv(t)) })
	t.Run("cluster", func(t *testing.T) { test(t, newClusterEnv(t, redistest.ClusterOptions{Masters: 3})) })
}

func (e *env) node(id string, extra map[string]string) *node {
	return startNode(e.t, id, nodeOpts{redis: e.redisURL, sandbox: e.sandbox.URL(), env: extra})
}

// call makes a JSON request and decodes the answer into out (when not nil).
func call(t testing.TB, method, url string, body any, hdr map[string]string, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, url, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

type wsInfo struct {
	Owner *struct {
		Node  string
		Epoch uint64
	}
	Status   string
	Sessions []string
}

func getWS(t testing.TB, n *node, ws string) wsInfo {
	var info wsInfo
	if code := call(t, "GET", n.URL()+"/v1/workspaces/"+ws, nil, nil, &info); code != 200 {
		t.Fatalf("GET workspace %s: %d", ws, code)
	}
	return info
}

// waitOwner waits until a node owns ws (other than not, when given) and
// returns its id.
func waitOwner(t testing.TB, n *node, ws, not string, within time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		var info wsInfo
		if call(t, "GET", n.URL()+"/v1/workspaces/"+ws, nil, nil, &info) == 200 && info.Owner != nil && info.Owner.Node != not {
			return info.Owner.Node
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no owner of %s (other than %q) within %v", ws, not, within)
	return ""
}

type accepted struct{ ID, SessionID string }

func prompt(t testing.TB, n *node, ws, sid, text string, hdr map[string]string) accepted {
	t.Helper()
	var a accepted
	if code := call(t, "POST", n.URL()+"/v1/workspaces/"+ws+"/sessions/"+sid+"/prompt", map[string]string{"text": text}, hdr, &a); code != 202 {
		t.Fatalf("prompt: %d", code)
	}
	return a
}

// collector follows a stream through one node and keeps what it received.
type collector struct {
	mu     sync.Mutex
	events []ssetest.Event
	cancel context.CancelFunc
	done   chan struct{}
}

func follow(t testing.TB, n *node, ws, sid string) *collector {
	return followWith(t, n, ws, sid, nil)
}

func (c *collector) snapshot() []ssetest.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]ssetest.Event(nil), c.events...)
}

// waitFor waits until cond holds for the collected events.
func (c *collector) waitFor(t testing.TB, what string, within time.Duration, cond func([]ssetest.Event) bool) []ssetest.Event {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if evs := c.snapshot(); cond(evs) {
			return evs
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: not within %v", what, within)
	return nil
}

// turnEnded reports whether a turn_ended for promptID is among evs.
func turnEnded(promptID string) func([]ssetest.Event) bool {
	return func(evs []ssetest.Event) bool {
		for _, ev := range evs {
			if ev.Type == "session.status" && strings.Contains(ev.Data, `"status":"turn_ended"`) && strings.Contains(ev.Data, promptID) {
				return true
			}
		}
		return false
	}
}

// streamEntry is a stream entry as Redis holds it, with the fields clients
// do not see.
type streamEntry struct {
	Index  uint64
	Type   string
	Body   map[string]any
	Raw    string
	Source string
	Epoch  uint64
}

func readStream(t testing.TB, rdb redis.UniversalClient, ws, sid string) []streamEntry {
	t.Helper()
	msgs, err := rdb.XRange(context.Background(), eventlog.StreamKey(ws, sid), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]streamEntry, len(msgs))
	for i, m := range msgs {
		idx, _ := strconv.ParseUint(strings.TrimSuffix(m.ID, "-0"), 10, 64)
		ep, _ := strconv.ParseUint(fmt.Sprint(m.Values["ep"]), 10, 64)
		e := streamEntry{Index: idx, Type: fmt.Sprint(m.Values["t"]), Raw: fmt.Sprint(m.Values["d"]), Epoch: ep}
		if s, ok := m.Values["src"].(string); ok {
			e.Source = s
		}
		json.Unmarshal([]byte(e.Raw), &e.Body)
		out[i] = e
	}
	return out
}

// checkStream verifies the invariants every session stream keeps: indices
// 1..n without gap, epochs never decreasing (no stale writer landed after
// a newer one), and each agent connection's messages exactly once, in
// order, without gap (ACP ids 1, 2, 3… per connection).
func checkStream(t testing.TB, entries []streamEntry) {
	t.Helper()
	var lastEp uint64
	acpIDs := map[string][]int{}
	for i, e := range entries {
		if e.Index != uint64(i+1) {
			t.Fatalf("entry %d has eventIndex %d: a gap", i, e.Index)
		}
		if e.Epoch < lastEp {
			t.Fatalf("entry %d (eventIndex %d) was written with epoch %d after epoch %d: a stale writer landed", i, e.Index, e.Epoch, lastEp)
		}
		lastEp = e.Epoch
		if e.Type == "session.event" && e.Body["sender"] == "agent" {
			n, err := strconv.Atoi(e.Source)
			if err != nil {
				t.Fatalf("agent message at eventIndex %d has no ACP event id", e.Index)
			}
			conn := fmt.Sprint(e.Body["connectionId"])
			acpIDs[conn] = append(acpIDs[conn], n)
		}
	}
	for conn, ids := range acpIDs {
		for i := 1; i < len(ids); i++ {
			if ids[i] != ids[i-1]+1 {
				t.Fatalf("connection %s: ACP message ids %d then %d: lost or repeated", conn, ids[i-1], ids[i])
			}
		}
	}
}

// agentReply is the concatenated text of the agent chunks of the turn of
// promptID (from its turn_started to its turn_ended).
func agentReply(entries []streamEntry, promptID string) (string, bool) {
	var b strings.Builder
	in, ended := false, false
	for _, e := range entries {
		if e.Type == "session.status" {
			d, _ := e.Body["detail"].(map[string]any)
			if d != nil && d["promptId"] == promptID {
				switch e.Body["status"] {
				case "turn_started":
					in = true
				case "turn_ended":
					in, ended = false, true
				}
			}
			continue
		}
		if in && e.Type == "session.event" && e.Body["sender"] == "agent" {
			b.WriteString(chunk(e.Body))
		}
	}
	return b.String(), ended
}

func chunk(body map[string]any) string {
	p, _ := body["payload"].(map[string]any)
	if p == nil || p["method"] != "session/update" {
		return ""
	}
	params, _ := p["params"].(map[string]any)
	u, _ := params["update"].(map[string]any)
	if u == nil || u["sessionUpdate"] != "agent_message_chunk" {
		return ""
	}
	c, _ := u["content"].(map[string]any)
	s, _ := c["text"].(string)
	return s
}

// promptsReceived counts, per text, the prompts the agent processes
// received (from the mock agent's prompt log).
func (e *env) promptsReceived(t testing.TB) map[string]int {
	t.Helper()
	f, err := os.Open(e.promptLog)
	if os.IsNotExist(err) {
		return map[string]int{}
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l struct{ Text, Kind string }
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Kind == "" { // kind: a reply the agent logged
			out[l.Text]++
		}
	}
	return out
}

// chatUsers counts chat.user entries per promptId.
func chatUsers(entries []streamEntry) map[string]int {
	out := map[string]int{}
	for _, e := range entries {
		if e.Type == "chat.user" {
			out[fmt.Sprint(e.Body["promptId"])]++
		}
	}
	return out
}
