package eventlog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Replication. Redis replicates asynchronously: an append is acknowledged
// by the master before any replica has it, and a failover to a replica
// loses what the replica had not received yet. With Config.WaitReplicas an
// append is followed by WAIT on the same connection, so that it returns
// only once that many replicas acknowledged it (or WaitTimeout passed).
// The owner appends before it acts (sends the prompt to the agent, records
// the ACP position it resumes from), so while the replicas keep up, a
// failover to one of them never loses what the owner acted on. When they
// fall behind by more than WaitTimeout the append returns anyway
// (availability first) and UnderReplicated counts it; Redis's own
// min-replicas-to-write is the way to refuse writes instead.
//
// The doorbell still rings at once: the script's PUBLISH reaches
// subscribers before WAIT returns, so a stream client may see an event a
// failover then loses (it gets a reset when it resumes past the new head).

// defaultWaitTimeout bounds WAIT when Config.WaitTimeout is 0.
const defaultWaitTimeout = time.Second

// UnderReplicated returns how many appends returned before WaitReplicas
// replicas had acknowledged them.
func (l *Log) UnderReplicated() uint64 { return l.underReplicated.Load() }

// runAppend runs the append script, followed by WAIT when the log is
// configured to wait for replicas.
func (l *Log) runAppend(ctx context.Context, keys []string, args []any) ([]any, error) {
	return l.RunScript(ctx, appendScript, keys, args...)
}

// RunScript runs a script of the caller's (the workspace inbox's, say)
// as the append script runs: followed by WAIT when the log is configured
// to wait for replicas, so that what it wrote survives a failover as
// appends do.
func (l *Log) RunScript(ctx context.Context, script *redis.Script, keys []string, args ...any) ([]any, error) {
	if l.cfg.WaitReplicas <= 0 {
		return l.runPiped(ctx, script, keys, args)
	}
	var out []any
	err := l.durably(ctx, keys[0], func(c redis.Cmdable) error {
		var err error
		out, err = script.Run(ctx, c, keys, args...).Slice()
		return err
	})
	return out, err
}

// durably runs fn on one connection to the master of key and then, when
// the log waits for replicas, WAIT on that connection: WAIT waits for the
// writes of its own connection. A shortfall after WaitTimeout is counted
// (UnderReplicated), not returned: availability first. A cluster that
// moved the slot (a failover) is asked for the new master once.
func (l *Log) durably(ctx context.Context, key string, fn func(redis.Cmdable) error) error {
	for attempt := 0; ; attempt++ {
		err := l.onMaster(ctx, key, fn)
		if cc, ok := l.rdb.(*redis.ClusterClient); ok && err != nil && attempt == 0 && redirected(err) {
			cc.ReloadState(ctx)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		return err
	}
}

func (l *Log) onMaster(ctx context.Context, key string, fn func(redis.Cmdable) error) error {
	c, err := l.masterFor(ctx, key)
	if err != nil {
		return err
	}
	timeout := l.cfg.WaitTimeout
	if timeout <= 0 {
		timeout = defaultWaitTimeout
	}
	conn := c.Conn()
	defer conn.Close()
	if err := fn(conn); err != nil {
		return err
	}
	if n, err := conn.Wait(ctx, l.cfg.WaitReplicas, timeout).Result(); err != nil || n < int64(l.cfg.WaitReplicas) {
		l.underReplicated.Add(1)
	}
	return nil
}

// masterFor returns a client whose commands reach the master holding key:
// the client itself, or on a cluster the client of that master.
func (l *Log) masterFor(ctx context.Context, key string) (*redis.Client, error) {
	switch c := l.rdb.(type) {
	case *redis.Client:
		return c, nil
	case *redis.ClusterClient:
		m, err := c.MasterForKey(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("master of %s: %w", key, err)
		}
		return m, nil
	}
	return nil, errors.New("eventlog: WaitReplicas needs a single-server, Sentinel or Cluster client")
}

func redirected(err error) bool {
	msg := err.Error()
	return strings.HasPrefix(msg, "MOVED ") || strings.HasPrefix(msg, "ASK ")
}
