package workspace

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandem-dev/tandem/acp"
	"github.com/tandem-dev/tandem/eventlog/model"
	"github.com/tandem-dev/tandem/internal/acptest"
)

// The harness runs Managers on a memStore and an acptest.Server inside a
// testing/synctest bubble: timers (lock TTL, health checks, idle
// timeouts) run on the bubble's fake clock, so the tests are fast and do
// not depend on the machine's load.

const testWS = "w"

type harness struct {
	t     *testing.T
	store *memStore // node a's front
	sb    *acptest.Server
	logMu sync.Mutex
	logs  bytes.Buffer
}

// newHarness must be called inside a synctest bubble.
func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{t: t, store: newMemStore(), sb: acptest.New()}
	t.Cleanup(h.sb.Close) // registered first: runs after the nodes stopped
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("TANDEM_TEST_LOGS") != "" {
			h.logMu.Lock()
			t.Logf("stream %s: %v", DefaultSession, describeAll(h.store.events(testWS, DefaultSession)))
			t.Logf("state %v; agent received %q", h.store.state(testWS, DefaultSession), h.promptTexts())
			t.Logf("logs:\n%s", h.logs.String())
			h.logMu.Unlock()
		}
	})
	return h
}

func (h *harness) Write(p []byte) (int, error) {
	h.logMu.Lock()
	defer h.logMu.Unlock()
	return h.logs.Write(p)
}

// testNode is one node: a Manager running on its own store front.
type testNode struct {
	m         *Manager
	store     *memStore
	sandboxes *fakeSandboxes
	stop      func()
}

type nodeOpts struct {
	cfg       func(*Config)
	audience  Audience
	sandboxes *fakeSandboxes
}

// start runs a node named name until the test ends (or stop).
func (h *harness) start(name string, o nodeOpts) *testNode {
	h.t.Helper()
	front := h.store
	if name != "a" {
		front = h.store.peer(name)
	}
	cfg := Config{
		NodeID:            name,
		LockTTL:           600 * time.Millisecond,
		IdleTimeout:       time.Hour,
		HealthInterval:    50 * time.Millisecond,
		PollInterval:      10 * time.Millisecond,
		PresenceInterval:  100 * time.Millisecond,
		PromptRate:        -1,
		DefaultSandbox:    Sandbox{BaseURL: h.sb.URL},
		SandboxHTTPClient: h.sb.Client(),
		Logger:            slog.New(slog.NewTextHandler(h, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", name),
	}
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		h.t.Fatal(err)
	}
	var sbs Sandboxes
	if o.sandboxes != nil {
		sbs = o.sandboxes
	}
	m := New(front, nil, sbs, o.audience, cfg)
	unsub := front.subscribe(m)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = m.Run(ctx)
	}()
	var once sync.Once
	n := &testNode{m: m, store: front, sandboxes: o.sandboxes, stop: func() {
		once.Do(func() {
			cancel()
			<-done
			unsub()
		})
	}}
	h.t.Cleanup(n.stop)
	return n
}

// put creates the test workspace with the node's defaults.
func (n *testNode) put(t *testing.T) {
	t.Helper()
	if _, err := n.m.PutWorkspace(context.Background(), testWS, Settings{}); err != nil {
		t.Fatal(err)
	}
}

func (n *testNode) prompt(t *testing.T, text string) Accepted {
	t.Helper()
	a, err := n.m.Prompt(context.Background(), testWS, DefaultSession, "ann", text, "")
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func (n *testNode) owns() bool {
	for _, ws := range n.m.Owned() {
		if ws == testWS {
			return true
		}
	}
	return false
}

// waitFor waits, on the bubble's clock, until cond holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out (fake clock) waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// describe names an event for comparisons: chat.user, status:<status>,
// <sender>:<method> or <sender>:response.
func describe(ev model.Event) string {
	switch ev.Type {
	case TypeSessionStatus:
		var b struct{ Status string }
		_ = json.Unmarshal(ev.Body, &b)
		return "status:" + b.Status
	case TypeSessionEvent:
		var b sessionEvent
		_ = json.Unmarshal(ev.Body, &b)
		env, _ := acp.ParseEnvelope(b.Payload)
		if _, ok := markedPrompt(env); ok {
			return b.Sender + ":marker"
		}
		if env.Kind() == acp.KindResponse {
			return b.Sender + ":response"
		}
		return b.Sender + ":" + env.Method
	}
	return ev.Type
}

func describeAll(evs []model.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = describe(ev)
	}
	return out
}

// count counts the events described as d.
func count(evs []model.Event, d string) int {
	n := 0
	for _, ev := range evs {
		if describe(ev) == d {
			n++
		}
	}
	return n
}

func (h *harness) events() []model.Event { return h.store.events(testWS, DefaultSession) }

func (h *harness) count(d string) int { return count(h.events(), d) }

// waitCount waits until the default session's stream holds n events
// described as d.
func (h *harness) waitCount(d string, n int) {
	h.t.Helper()
	waitFor(h.t, fmt.Sprintf("%d %s", n, d), func() bool { return h.count(d) >= n })
}

// statusDetail returns the details of the status events of this status,
// in order.
func statusDetails(evs []model.Event, status string) []map[string]any {
	var out []map[string]any
	for _, ev := range evs {
		if describe(ev) == "status:"+status {
			var b struct{ Detail map[string]any }
			_ = json.Unmarshal(ev.Body, &b)
			out = append(out, b.Detail)
		}
	}
	return out
}

// chatUsers returns the promptIds of the chat.user events, in order.
func chatUsers(evs []model.Event) []string {
	var out []string
	for _, ev := range evs {
		if ev.Type == TypeChatUser {
			var b struct{ PromptID string }
			_ = json.Unmarshal(ev.Body, &b)
			out = append(out, b.PromptID)
		}
	}
	return out
}

// stopReasons returns the stopReasons of the turn_ended statuses, in order.
func stopReasons(evs []model.Event) []string {
	var out []string
	for _, ev := range evs {
		if ev.Type != TypeSessionStatus {
			continue
		}
		var b struct {
			Status string
			Detail struct{ StopReason string }
		}
		if json.Unmarshal(ev.Body, &b) == nil && b.Status == StatusTurnEnded {
			out = append(out, b.Detail.StopReason)
		}
	}
	return out
}

// promptTexts returns the texts (last block: the user's) of the prompts
// the agent received, in order.
func (h *harness) promptTexts() []string {
	var out []string
	for _, p := range h.sb.Prompts() {
		out = append(out, p.Blocks[len(p.Blocks)-1])
	}
	return out
}

// checkAgentIDs checks that the agent messages of the stream carry, per
// connection, the SSE ids 1, 2, 3… with none missing or repeated.
func checkAgentIDs(t *testing.T, evs []model.Event) {
	t.Helper()
	next := map[string]int{}
	for _, ev := range evs {
		if ev.Type != TypeSessionEvent || ev.Source == "" {
			continue
		}
		var b sessionEvent
		_ = json.Unmarshal(ev.Body, &b)
		want := next[b.ConnectionID] + 1
		if ev.Source != fmt.Sprint(want) {
			t.Fatalf("connection %s: ACP id %s at eventIndex %d where %d was due", b.ConnectionID, ev.Source, ev.Index, want)
		}
		next[b.ConnectionID] = want
	}
}

// checkIndexes checks eventIndex 1..n.
func checkIndexes(t *testing.T, evs []model.Event) {
	t.Helper()
	for i, ev := range evs {
		if ev.Index != uint64(i+1) {
			t.Fatalf("event %d has eventIndex %d", i, ev.Index)
		}
	}
}

// fakeSandboxes is a Sandboxes whose EnsureServer runs fn.
type fakeSandboxes struct {
	mu    sync.Mutex
	calls []Sandbox
	fn    func(ctx context.Context) error
}

func (f *fakeSandboxes) EnsureServer(ctx context.Context, sb Sandbox) error {
	f.mu.Lock()
	f.calls = append(f.calls, sb)
	fn := f.fn
	f.mu.Unlock()
	if fn == nil {
		return nil
	}
	return fn(ctx)
}

func (f *fakeSandboxes) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

// fakeAudience is an Audience of stream clients set by the test.
type fakeAudience struct {
	mu        sync.Mutex
	users     map[string]map[string]int
	changed   chan struct{}
	broadcast []string // "ws event data"
}

func newFakeAudience() *fakeAudience {
	return &fakeAudience{users: map[string]map[string]int{}, changed: make(chan struct{}, 1)}
}

func (f *fakeAudience) set(ws string, users map[string]int) {
	f.mu.Lock()
	if users == nil {
		delete(f.users, ws)
	} else {
		f.users[ws] = maps.Clone(users)
	}
	f.mu.Unlock()
	select {
	case f.changed <- struct{}{}:
	default:
	}
}

func (f *fakeAudience) Presence() map[string]map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]map[string]int{}
	for ws, u := range f.users {
		out[ws] = maps.Clone(u)
	}
	return out
}

func (f *fakeAudience) PresenceChanged() <-chan struct{} { return f.changed }

func (f *fakeAudience) Broadcast(ws, event string, data []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.broadcast = append(f.broadcast, ws+" "+event+" "+string(data))
}

func (f *fakeAudience) broadcasts() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.broadcast, "\n")
}

// eventOf is the event a record would make, for describe.
func eventOf(r model.Record) model.Event { return model.Event{Type: r.Type, Body: r.Body} }
