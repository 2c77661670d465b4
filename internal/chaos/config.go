package chaos

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Config configures a campaign. Zero values are the defaults given.
type Config struct {
	// Seed chooses the faults, their targets and timings, and the load.
	// The same seed replays the same choices (the timing of the processes
	// themselves is not deterministic). 0: one from the clock, printed.
	Seed int64
	// Duration bounds the fault phase (default 3m); Faults ends it earlier
	// after that many faults (0: no count limit).
	Duration time.Duration
	Faults   int
	// Workspaces under load (default 4); each has GoClients r3labs/sse
	// subscribers, NodeClients WHATWG EventSource subscribers (defaults 2
	// and 2) and one writer; every other one has a second session with a
	// subscriber of its own, which the writer prompts too.
	Workspaces int
	// IdleWorkspaces have a writer that sends bursts of prompts with long
	// pauses and no subscriber at all, so that their owners go idle and
	// release them (default 2; -1 for none).
	IdleWorkspaces int
	// NoSilent leaves out the workload's silent turns (>10 s without a
	// word from the agent) and cancels.
	NoSilent    bool
	GoClients   int
	NodeClients int
	// LockTTL is the nodes' TANDEM_LOCK_TTL (default 3s).
	LockTTL time.Duration
	// Gap is the pause between two faults, chosen in [Gap/2, Gap*3/2]
	// (default 2s).
	Gap time.Duration
	// Dir keeps every process's data and logs (required).
	Dir string
	// Binaries and scripts.
	TandemBin    string // cmd/tandem
	MockAgentBin string // cmd/tandem-mockagent
	SandboxBin   string // the pinned sandbox-agent
	NginxBin     string // default "nginx"
	RedisBin     string // default "redis-server"
	NodeBin      string // default "node"
	NodeClient   string // internal/chaos/node/client.mjs, with its node_modules
	// Kinds restricts the faults to these kinds (default: all of
	// FaultKinds), to replay or study one kind.
	Kinds []string
	// Break deliberately breaks a guarantee on the client side, to show
	// that the checker fails: "client-gap" makes the Go subscribers drop
	// the first event after every reconnect, as a client that skips gap
	// filling would. "" (the default) breaks nothing.
	Break string
	// Logf receives progress lines (default: none).
	Logf func(format string, args ...any)
}

// Fault kinds.
const (
	FaultKill    = "kill"    // SIGKILL of a node, started again after a moment
	FaultStop    = "stop"    // SIGSTOP of an owner for longer than the lock TTL, then SIGCONT
	FaultDeploy  = "deploy"  // rolling restart (SIGTERM, start) of every node
	FaultRedis   = "redis"   // SIGKILL of redis-server, started again (appendonly)
	FaultSandbox = "sandbox" // SIGKILL of the Sandbox Agent server, started again
	FaultDrop    = "drop"    // reset of one subscriber's TCP connection
	// Redis restarted from a snapshot taken a moment before it was killed:
	// the writes it acknowledged since are lost (issue 13's lossy restart;
	// half of them while a killed owner's workspace is being taken over,
	// so that the fence increment is among the lost writes).
	FaultLossy = "lossy"
	// SIGSTOP of redis-server for longer than the clients' 3 s read
	// timeout, then SIGCONT.
	FaultRedisStop = "rstop"
	// The proxied node (see cluster.proxy) cut off from Redis for a few
	// seconds: its connections reset and refused (drop), or held and then
	// delivered late (hold).
	FaultPartition = "partition"
	// A latency spike between the proxied node and Redis.
	FaultLatency = "latency"
	// SIGSTOP of an owner for just past the lock TTL (+50–400 ms), then
	// SIGCONT: it wakes as its lock expires.
	FaultTTLPause = "ttlpause"
	// A replica promoted with its replication cut (Sentinel): the
	// replica is cut off its master, the load writes 0.5–2 s more, the
	// master is SIGSTOPped until the Sentinel promotes the replica, then
	// resumed and made a replica of the new master, dropping the writes
	// the new one lacks. With this kind the campaign runs a replica and a
	// Sentinel (see cluster).
	FaultFailover = "failover"
)

// FaultKinds lists the kinds in table order.
var FaultKinds = []string{FaultKill, FaultStop, FaultDeploy, FaultRedis, FaultSandbox, FaultDrop,
	FaultLossy, FaultRedisStop, FaultPartition, FaultLatency, FaultTTLPause, FaultFailover}

// lossyKind reports whether a fault of kind can lose acknowledged writes,
// so that a client may see one reset after it.
func lossyKind(kind string) bool { return kind == FaultLossy || kind == FaultFailover }

// BreakClientGap is the Break value that makes Go subscribers skip an
// event after each reconnect.
const BreakClientGap = "client-gap"

func (c Config) withDefaults() Config {
	if c.Seed == 0 {
		c.Seed = time.Now().UnixNano() % 1_000_000_007
	}
	if c.Duration == 0 {
		c.Duration = 3 * time.Minute
	}
	if c.Workspaces == 0 {
		c.Workspaces = 4
	}
	if c.IdleWorkspaces == 0 {
		c.IdleWorkspaces = 2
	}
	if c.IdleWorkspaces < 0 {
		c.IdleWorkspaces = 0
	}
	if c.GoClients == 0 {
		c.GoClients = 2
	}
	if c.NodeClients == 0 {
		c.NodeClients = 2
	}
	if c.LockTTL == 0 {
		c.LockTTL = 3 * time.Second
	}
	if c.Gap == 0 {
		c.Gap = 2 * time.Second
	}
	if c.NginxBin == "" {
		c.NginxBin = "nginx"
	}
	if c.RedisBin == "" {
		c.RedisBin = "redis-server"
	}
	if c.NodeBin == "" {
		c.NodeBin = "node"
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	return c
}

// Validate reports whether the configuration can be used.
func (c Config) Validate() error {
	var errs []error
	if c.Dir == "" {
		errs = append(errs, errors.New("chaos: Dir is required"))
	}
	if c.TandemBin == "" || c.MockAgentBin == "" || c.SandboxBin == "" || c.NodeClient == "" {
		errs = append(errs, errors.New("chaos: the tandem, mock agent and sandbox-agent binaries and the Node client are required"))
	}
	if c.Duration < 0 || c.Faults < 0 || c.Workspaces < 0 || c.GoClients < 0 || c.NodeClients < 0 || c.Gap < 0 {
		errs = append(errs, errors.New("chaos: negative limit"))
	}
	if c.LockTTL != 0 && c.LockTTL < time.Second {
		errs = append(errs, fmt.Errorf("chaos: lock TTL %v is shorter than 1s", c.LockTTL))
	}
	if c.Duration > 4*time.Hour {
		errs = append(errs, errors.New("chaos: a campaign is bounded to 4h"))
	}
	for _, k := range c.Kinds {
		if !slices.Contains(FaultKinds, k) {
			errs = append(errs, fmt.Errorf("chaos: unknown fault kind %q", k))
		}
	}
	if c.Break != "" && c.Break != BreakClientGap {
		errs = append(errs, fmt.Errorf("chaos: unknown Break %q", c.Break))
	}
	return errors.Join(errs...)
}
