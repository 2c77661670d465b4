package workspace

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/tandem-dev/tandem/acp"
)

// Doorbell is the node's pub/sub subscription (eventlog.Bell); Subscribe
// and Unsubscribe are counted per holder.
type Doorbell interface {
	Subscribe(ctx context.Context, ws string) error
	Unsubscribe(ctx context.Context, ws string) error
}

// Sandboxes restarts Sandbox Agent servers the node manages.
type Sandboxes interface {
	// EnsureServer returns once the sandbox's server answers its health
	// check, restarting it first when the node manages it; it fails when
	// the node cannot (the server is managed elsewhere).
	EnsureServer(ctx context.Context, sb Sandbox) error
}

// Audience is the node's stream clients (fanout.Hub).
type Audience interface {
	// Presence reports them: workspace → user → number of connections.
	Presence() map[string]map[string]int
	// PresenceChanged is signalled when a client connects or leaves.
	PresenceChanged() <-chan struct{}
	// Broadcast sends them a non-persisted event of a workspace.
	Broadcast(ws, event string, data []byte)
}

// Observer receives what the workspace owners of a node do, for metrics.
// Its methods must be fast and must not block.
type Observer interface {
	Owned(delta int)
	TookOver()
	// TakeoverStarted and TakeoverFinished bracket a new owner's restore
	// of what the previous one left (sessions re-attached, the inbox
	// claimed), which must end before the workspace is served; ok is
	// false when it failed and the workspace was let go. An owner that
	// could not even start (its epoch or owner record not written) is
	// reported as both at once, not ok.
	TakeoverStarted()
	TakeoverFinished(ok bool)
	Released(reason string) // idle, handover, lost
	PromptAccepted()
	TurnEnded(stopReason string)
	HealthCheckFailed()
	SandboxRestarted(ok bool)
}

type nopObserver struct{}

func (nopObserver) Owned(int)             {}
func (nopObserver) TookOver()             {}
func (nopObserver) TakeoverStarted()      {}
func (nopObserver) TakeoverFinished(bool) {}
func (nopObserver) Released(string)       {}
func (nopObserver) PromptAccepted()       {}
func (nopObserver) TurnEnded(string)      {}
func (nopObserver) HealthCheckFailed()    {}
func (nopObserver) SandboxRestarted(bool) {}

// Config configures a Manager. Zero values are the defaults given.
type Config struct {
	// NodeID names this node in ownership records (required).
	NodeID string
	// LockTTL is the expiry of a workspace's lock, extended every third of
	// it by its owner (default 8s).
	LockTTL time.Duration
	// IdleTimeout: an owner with no turn, no pending prompt and no
	// subscriber for this long lets the workspace go (default 30s).
	IdleTimeout time.Duration
	// HealthInterval is how often an owner checks its sandbox (default 2s);
	// HealthFailures consecutive failures (default 3) make it ask for a
	// restart.
	HealthInterval time.Duration
	HealthFailures int
	// PurgeWait bounds how long a purge of a workspace whose deletion is
	// not finished waits for its owner to finish and let it go before
	// answering ErrWorkspaceBusy (default 10s).
	PurgeWait time.Duration
	// PollInterval is how often the node looks for workspaces that need an
	// owner and have none (default 250ms).
	PollInterval time.Duration
	// DispatchTimeout: a prompt taken over in flight whose delivery is not
	// known ends as delivery_unknown (it is never sent again) when its
	// session has been silent this long (default 10s).
	DispatchTimeout time.Duration
	// PresenceInterval is how often the node reports its stream clients
	// (default 2s).
	PresenceInterval time.Duration
	// IdempotencyTTL is how long an Idempotency-Key is remembered (default 24h).
	IdempotencyTTL time.Duration
	// PermissionTimeout: a permission request of the agent nobody answers
	// for this long is answered cancelled (default 10m).
	PermissionTimeout time.Duration
	// AgentFailureLimit: after this many failed attempts in a row to
	// start the agent, a session's queued prompts end with stopReason
	// "error" (default 3).
	AgentFailureLimit int
	// MaxPromptBytes bounds a prompt's text (default 32 KiB).
	MaxPromptBytes int
	// PromptRate is how many prompts per second one user may send into
	// one workspace, with bursts of PromptBurst (defaults 2/s and 10);
	// a negative rate disables the limit.
	PromptRate  float64
	PromptBurst int
	// DefaultSandbox and DefaultAgent are used by workspaces created
	// without settings (agent default "mock").
	DefaultSandbox Sandbox
	DefaultAgent   string
	// AgentCwd is the working directory of new agent sessions (default /tmp).
	AgentCwd string
	// MaxEventBytes bounds an agent message as stored: a larger one is
	// stored cut, with a marker and its full size (0: 1 MiB; negative:
	// no bound).
	MaxEventBytes int
	// MaxSessions caps the session records of a workspace, destroyed ones
	// included (each keeps its stream); 0: 1000; negative: no cap.
	MaxSessions int
	// AgentCwdFor, when set, gives a workspace's agent sessions on sandbox
	// sb a working directory of their own (the local provider's, one per
	// workspace); "" means AgentCwd. It runs on the owner's loop: quick.
	AgentCwdFor func(ws string, sb Sandbox) string
	// HistoryEvents and HistoryChars bound the history replayed into a
	// restored session's next prompt (defaults 50 and 12,000).
	HistoryEvents int
	HistoryChars  int
	// SandboxAllowed, when set, decides which sandbox URLs workspaces may
	// use.
	SandboxAllowed func(*url.URL) bool
	// SandboxHTTPClient, when set, makes the requests to Sandbox Agent
	// servers (tests give an in-memory transport); nil: the default.
	SandboxHTTPClient *http.Client
	Logger            *slog.Logger
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.LockTTL, 8*time.Second)
	def(&c.IdleTimeout, 30*time.Second)
	def(&c.PurgeWait, 10*time.Second)
	def(&c.HealthInterval, 2*time.Second)
	def(&c.PollInterval, 250*time.Millisecond)
	def(&c.DispatchTimeout, 10*time.Second)
	def(&c.PresenceInterval, 2*time.Second)
	def(&c.IdempotencyTTL, 24*time.Hour)
	def(&c.PermissionTimeout, 10*time.Minute)
	if c.HealthFailures == 0 {
		c.HealthFailures = 3
	}
	if c.AgentFailureLimit == 0 {
		c.AgentFailureLimit = 3
	}
	if c.MaxPromptBytes == 0 {
		c.MaxPromptBytes = MaxPromptBytes
	}
	if c.PromptRate == 0 {
		c.PromptRate = 2
	}
	if c.PromptBurst == 0 {
		c.PromptBurst = 10
	}
	if c.MaxSessions == 0 {
		c.MaxSessions = 1000
	}
	if c.MaxEventBytes == 0 {
		c.MaxEventBytes = defaultMaxEventBytes
	}
	if c.DefaultAgent == "" {
		c.DefaultAgent = "mock"
	}
	if c.AgentCwd == "" {
		c.AgentCwd = "/tmp"
	}
	if c.HistoryEvents == 0 {
		c.HistoryEvents = 50
	}
	if c.HistoryChars == 0 {
		c.HistoryChars = 12000
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports whether the configuration can be used.
func (c Config) Validate() error {
	if c.NodeID == "" {
		return errors.New("workspace: NodeID is required")
	}
	c = c.withDefaults()
	if c.LockTTL < 300*time.Millisecond {
		return fmt.Errorf("workspace: lock TTL %v is too short", c.LockTTL)
	}
	if c.HealthFailures < 1 || c.MaxPromptBytes < 1 || c.HistoryEvents < 0 || c.HistoryChars < 0 || c.PermissionTimeout < 0 {
		return errors.New("workspace: invalid limits")
	}
	return nil
}

// Manager is a node's part of every workspace: the API any node serves
// (store.go), and the owners of the workspaces this node holds.
type Manager struct {
	store     Store
	bell      Doorbell
	sandboxes Sandboxes
	audience  Audience
	cfg       Config
	logger    *slog.Logger
	obs       Observer

	demand      chan string
	presenceSig chan string // workspaces whose presence changed somewhere
	typingSig   chan string // workspaces where someone on this node started or stopped typing

	typingMu sync.Mutex
	typing   map[string]map[string]typingState // ws → user → state

	mu      sync.Mutex
	owners  map[string]*owner
	stopped bool
	wg      sync.WaitGroup // owners' goroutines
}

// New returns a Manager keeping its state in store (eventlog.Store).
// bell, sandboxes and audience may be nil in tests that only use the
// store.
func New(store Store, bell Doorbell, sandboxes Sandboxes, audience Audience, cfg Config) *Manager {
	cfg = cfg.withDefaults()
	return &Manager{
		store:       store,
		bell:        bell,
		sandboxes:   sandboxes,
		audience:    audience,
		cfg:         cfg,
		logger:      cfg.Logger,
		obs:         nopObserver{},
		demand:      make(chan string, 1024),
		presenceSig: make(chan string, 1024),
		typingSig:   make(chan string, 1024),
		typing:      make(map[string]map[string]typingState),
		owners:      make(map[string]*owner),
	}
}

// sandboxClient returns a client of the sandbox's Sandbox Agent server.
func (m *Manager) sandboxClient(sb Sandbox) (*acp.Client, error) {
	return acp.New(acp.Config{BaseURL: sb.BaseURL, Token: sb.Token, HTTPClient: m.cfg.SandboxHTTPClient})
}

// SetObserver sets the hooks metrics use. Call it before Run.
func (m *Manager) SetObserver(o Observer) { m.obs = o }

// InboxDepth is the number of inbox entries of the workspaces this node
// owns that are not done yet: unread, or read and not acknowledged.
func (m *Manager) InboxDepth(ctx context.Context) (int64, error) {
	var total int64
	for _, ws := range m.Owned() {
		n, err := m.store.InboxDepth(ctx, ws)
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}

// Demand asks the node to own ws now if nobody does. It never blocks.
func (m *Manager) Demand(ws string) {
	select {
	case m.demand <- ws:
	default: // the poller gets to it
	}
}

// Signal implements the doorbell's signal handler for the workspace
// owners of this node.
func (m *Manager) Signal(ws, msg string) {
	if msg == sigPresence {
		select {
		case m.presenceSig <- ws:
		default: // the next tick recomputes every workspace
		}
		return
	}
	m.mu.Lock()
	o := m.owners[ws]
	m.mu.Unlock()
	if o == nil {
		return
	}
	switch msg {
	case sigInbox:
		o.poke(&o.inboxWake)
	case sigMeta:
		o.poke(&o.metaWake)
	}
}

// Subscribed implements the doorbell's handler: after a reconnect, signals
// may have been lost, so every owner reads its inbox.
func (m *Manager) Subscribed(ws string) { m.Signal(ws, sigInbox) }

// Owned returns the workspaces this node owns now.
func (m *Manager) Owned() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.owners))
	for ws := range m.owners {
		out = append(out, ws)
	}
	return out
}

// Run takes and serves workspaces until ctx ends; then every owner hands
// its workspace over (its lock is released, its ACP connections kept for
// the next owner) and Run returns after all of them have exited.
func (m *Manager) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); m.presenceLoop(ctx) }()
	t := time.NewTicker(m.cfg.PollInterval)
	defer t.Stop()
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case ws := <-m.demand:
			m.tryTake(ctx, ws)
		case <-t.C:
			m.poll(ctx)
		}
	}
	m.mu.Lock()
	m.stopped = true
	m.mu.Unlock()
	m.wg.Wait()
	wg.Wait()
	return nil
}

// tryTake becomes the owner of ws when its lock is free.
func (m *Manager) tryTake(ctx context.Context, ws string) {
	m.mu.Lock()
	if m.stopped || m.owners[ws] != nil {
		m.mu.Unlock()
		return
	}
	m.mu.Unlock()
	v, found, err := m.store.WorkspaceMeta(ctx, ws)
	if err != nil {
		return
	}
	if !found {
		_ = m.store.UnmarkActive(ctx, ws) // never created, or deleted and cleaned up
		return
	}
	// A workspace marked deleted is still taken, to carry the deletion out.
	md := metaOf(v)
	mu, err := m.store.NewLock(ws, m.cfg.LockTTL)
	if err != nil {
		return
	}
	if err := mu.TryLock(ctx); err != nil {
		return // owned elsewhere, or Redis is away
	}
	o, err := newOwner(ctx, m, ws, mu, md)
	if err != nil {
		m.takeoverFailed(ctx)
		m.logger.Warn("taking workspace failed", slog.String("ws", ws), slog.Any("err", err))
		_ = mu.Unlock(context.WithoutCancel(ctx))
		return
	}
	m.mu.Lock()
	if m.stopped {
		m.mu.Unlock()
		_ = mu.Unlock(context.WithoutCancel(ctx))
		return
	}
	m.owners[ws] = o
	m.wg.Add(1)
	m.mu.Unlock()
	m.obs.Owned(1)
	m.obs.TookOver()
	_ = m.store.LeaseActive(ctx, ws, m.cfg.LockTTL) // other pollers need not look at it
	go func() {
		defer m.wg.Done()
		for {
			o.run(ctx)
			if !o.restart || ctx.Err() != nil {
				break
			}
			// Redis lost writes this owner had seen acknowledged: a new
			// owner, still under the lock, starts from what Redis holds.
			next, err := m.restartOwner(ctx, o)
			if err != nil {
				m.logger.Warn("starting the workspace again after a rewind failed", slog.String("ws", ws), slog.Any("err", err))
				_ = o.mutex.Unlock(context.WithoutCancel(ctx))
				break
			}
			o = next
		}
		m.mu.Lock()
		delete(m.owners, ws)
		m.mu.Unlock()
		m.obs.Owned(-1)
	}()
}

// takeoverFailed reports a takeover that failed before its owner ran,
// unless the node is shutting down (ctx ended), which is no failure.
func (m *Manager) takeoverFailed(ctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	m.obs.TakeoverStarted()
	m.obs.TakeoverFinished(false)
}

// restartOwner replaces prev, stopped because Redis lost writes it had
// seen acknowledged, by a new owner under the same lock (a new epoch),
// which records the rewinds and keeps what prev knew it dispatched.
func (m *Manager) restartOwner(ctx context.Context, prev *owner) (*owner, error) {
	md, err := m.loadMeta(ctx, prev.ws)
	if err != nil {
		m.takeoverFailed(ctx)
		return nil, err
	}
	o, err := newOwner(ctx, m, prev.ws, prev.mutex, md)
	if err != nil {
		m.takeoverFailed(ctx)
		return nil, err
	}
	o.rewinds = prev.rewinds
	o.dispatchedIDs = prev.dispatchedIDs
	o.sentElsewhere = prev.sentElsewhere
	o.recentSent = prev.recentSent
	o.inherited = true
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return nil, ErrNotOwner
	}
	m.owners[prev.ws] = o
	return o, nil
}
