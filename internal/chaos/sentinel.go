package chaos

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tandem-dev/tandem/internal/redistest"
)

// Sentinel mode (see cluster): the failover fault's deployment.
const (
	// masterName is the name the Sentinel monitors the master under.
	masterName = "tandem"
	// downAfterIdle is the Sentinel's down-after-milliseconds between
	// failover faults: far past every other Redis fault (a kill of up to
	// 1.5 s and its restart, a SIGSTOP of up to 5.5 s, a lossy restart),
	// so that those stay what they are without sentinel mode and Sentinel
	// fails over only when the failover fault wants it.
	downAfterIdle = 60 * time.Second
	// downAfterFailover is down-after-milliseconds during a failover
	// fault.
	downAfterFailover = time.Second
	// failoverTimeout is the Sentinel's failover-timeout: it also waits
	// that long before turning a resumed old master into a replica.
	failoverTimeout = 3 * time.Second
	// cutUser is the replica's masteruser while its replication is cut:
	// no such user on the master, so every AUTH of the replica fails and
	// it cannot reconnect, while the master's other clients are untouched.
	cutUser = "tandem-chaos-cut"
)

func (c *cluster) openLog(name string) (*os.File, error) {
	return os.OpenFile(filepath.Join(c.cfg.Dir, "logs", name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
}

// startSentinel starts the replica of the master (started by startRedis)
// and the Sentinel, and waits until the Sentinel knows the replica fit to
// be promoted. The replica gets REPLICAOF at run time, not as an
// argument, so that a server relaunched later starts as a master whatever
// it was first.
func (c *cluster) startSentinel(ctx context.Context) (err error) {
	for _, d := range []string{"redis-replica", "redis-sentinel"} {
		if err := os.MkdirAll(filepath.Join(c.cfg.Dir, d), 0o755); err != nil {
			return err
		}
	}
	if c.replicaLog, err = c.openLog("redis-replica.log"); err != nil {
		return err
	}
	c.replica, err = redistest.Launch(redistest.Options{
		AppendOnly: true, Dir: filepath.Join(c.cfg.Dir, "redis-replica"), Bin: c.cfg.RedisBin,
		Output: c.replicaLog, StartTimeout: 15 * time.Second,
	})
	if err != nil {
		return err
	}
	if err := c.replicate(ctx, c.replica); err != nil {
		return err
	}
	if c.sentinelLog, err = c.openLog("sentinel.log"); err != nil {
		return err
	}
	conf := fmt.Sprintf("sentinel monitor %[1]s 127.0.0.1 %[2]d 1\n"+
		"sentinel down-after-milliseconds %[1]s %[3]d\n"+
		"sentinel failover-timeout %[1]s %[4]d\n", masterName, c.redis.Port(), downAfterIdle.Milliseconds(), failoverTimeout.Milliseconds())
	c.sentinel, err = redistest.Launch(redistest.Options{
		Dir: filepath.Join(c.cfg.Dir, "redis-sentinel"), Bin: c.cfg.RedisBin, Config: conf,
		Args: []string{"--sentinel", "--loglevel", "notice"}, Output: c.sentinelLog, StartTimeout: 15 * time.Second,
	})
	if err != nil {
		return err
	}
	return c.waitReplicaReady(ctx, 30*time.Second)
}

// replicate makes srv a replica of the current master.
func (c *cluster) replicate(ctx context.Context, srv *redistest.Server) error {
	qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err := srv.Do(qctx, "REPLICAOF", "127.0.0.1", strconv.Itoa(c.redis.Port()))
	return err
}

func (c *cluster) sentinelURL() string {
	return "redis+sentinel://" + c.sentinel.Addr() + "/0?master_name=" + masterName
}

// sentinelMaster is the master's address as the Sentinel names it
// (SENTINEL GET-MASTER-ADDR-BY-NAME).
func (c *cluster) sentinelMaster(ctx context.Context) (string, error) {
	qctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	v, err := c.sentinel.Do(qctx, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", masterName)
	r, ok := v.([]any)
	if err != nil || !ok || len(r) != 2 {
		return "", fmt.Errorf("chaos: SENTINEL GET-MASTER-ADDR-BY-NAME: %v %v", v, err)
	}
	return fmt.Sprint(r[0]) + ":" + fmt.Sprint(r[1]), nil
}

func (c *cluster) setDownAfter(ctx context.Context, d time.Duration) error {
	qctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, err := c.sentinel.Do(qctx, "SENTINEL", "SET", masterName, "down-after-milliseconds", strconv.FormatInt(d.Milliseconds(), 10))
	return err
}

// info returns the fields of INFO section of srv.
func info(ctx context.Context, srv *redistest.Server, section string) (map[string]string, error) {
	qctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	v, err := srv.Do(qctx, "INFO", section)
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, l := range strings.Split(fmt.Sprint(v), "\n") {
		if k, val, ok := strings.Cut(strings.TrimSpace(l), ":"); ok {
			m[k] = val
		}
	}
	return m, nil
}

// waitReplicaReady waits until the replica is in sync with the master (its
// link up, no sync in progress, and a write on the master acknowledged by
// it: WAIT) and the Sentinel knows it fit to be promoted.
func (c *cluster) waitReplicaReady(ctx context.Context, within time.Duration) error {
	return waitUntil(ctx, within, "the replica to be in sync and known to the Sentinel", func() bool {
		m, err := info(ctx, c.replica, "replication")
		if err != nil || m["role"] != "slave" || m["master_port"] != strconv.Itoa(c.redis.Port()) ||
			m["master_link_status"] != "up" || m["master_sync_in_progress"] != "0" {
			return false
		}
		qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if err := c.db().Set(qctx, "chaos:replicated", time.Now().UnixNano(), 0).Err(); err != nil {
			return false
		}
		if n, err := c.db().Wait(qctx, 1, 500*time.Millisecond).Result(); err != nil || n < 1 {
			return false
		}
		v, err := c.sentinel.Do(qctx, "SENTINEL", "REPLICAS", masterName)
		list, ok := v.([]any)
		if err != nil || !ok {
			return false
		}
		for _, r := range list {
			f := map[string]string{}
			switch x := r.(type) {
			case map[any]any:
				for k, v := range x {
					f[fmt.Sprint(k)] = fmt.Sprint(v)
				}
			case []any:
				for i := 0; i+1 < len(x); i += 2 {
					f[fmt.Sprint(x[i])] = fmt.Sprint(x[i+1])
				}
			}
			if f["port"] == strconv.Itoa(c.replica.Port()) && f["flags"] == "slave" && f["master-link-status"] == "ok" &&
				f["info-refresh"] != "" && f["info-refresh"] != "0" {
				return true
			}
		}
		return false
	})
}

// cutReplication cuts the replica off its master: its masteruser becomes
// one the master does not know and its link is killed, so that its
// reconnects fail at AUTH and it misses every write from now on.
func (c *cluster) cutReplication(ctx context.Context) error {
	qctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if _, err := c.replica.Do(qctx, "CONFIG", "SET", "masteruser", cutUser, "masterauth", "cut"); err != nil {
		return err
	}
	_, err := c.replica.Do(qctx, "CLIENT", "KILL", "TYPE", "master")
	return err
}

// restoreReplication clears what cutReplication set on srv.
func restoreReplication(ctx context.Context, srv *redistest.Server) error {
	qctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, err := srv.Do(qctx, "CONFIG", "SET", "masteruser", "", "masterauth", "")
	return err
}

// switchMaster makes the replica the current master in the campaign's view:
// its client, the fault proxy's target (n3's connections are reset and
// redialled to it).
func (c *cluster) switchMaster() {
	c.redis, c.replica = c.replica, c.redis
	c.redisPort = c.redis.Port()
	old := c.rdbP.Swap(newClient(c.redis.Addr()))
	c.proxy.SetTarget(c.redis.Addr())
	// Callers that still hold the old client fail once and ask db again.
	go func() { time.Sleep(3 * time.Second); old.Close() }()
}

// syncMaster follows the Sentinel if it names the other server.
func (c *cluster) syncMaster(ctx context.Context) error {
	addr, err := c.sentinelMaster(ctx)
	if err != nil {
		return err
	}
	if addr == c.replica.Addr() {
		c.switchMaster()
	}
	return nil
}

// ensureSentinelUp brings the replica and the Sentinel back and the
// replication whole after a failed fault.
func (c *cluster) ensureSentinelUp(ctx context.Context) error {
	var errs []error
	if !c.sentinel.Running() {
		errs = append(errs, c.sentinel.Relaunch())
	}
	errs = append(errs, c.setDownAfter(ctx, downAfterIdle), c.syncMaster(ctx))
	if !c.replica.Running() {
		if err := c.replica.Relaunch(); err != nil {
			return errors.Join(append(errs, err)...)
		}
	}
	errs = append(errs, restoreReplication(ctx, c.replica), restoreReplication(ctx, c.redis))
	if m, err := info(ctx, c.replica, "replication"); err != nil || m["role"] != "slave" {
		errs = append(errs, c.replicate(ctx, c.replica))
	}
	errs = append(errs, c.waitReplicaReady(ctx, 30*time.Second))
	return errors.Join(errs...)
}

// failover promotes the replica with its replication cut: the replica is
// cut off, the load writes on for 0.5–2 s more, the master is SIGSTOPped
// until the Sentinel (down-after 1 s) promotes the replica, which lacks
// those writes; then the old master is resumed, and the Sentinel turns it
// into a replica of the new one, which drops what only it had. The writes
// acknowledged from the cut until then may be lost (snapAt..end).
func (in *injector) failover(ctx context.Context, f *fault) {
	c := in.c
	window := in.between(500*time.Millisecond, 2*time.Second)
	f.lost = -1
	f.at = time.Now()
	if !c.sentinelMode {
		f.err = errors.New("chaos: failover without sentinel mode")
		return
	}
	old, promoted := c.redis, c.replica
	f.target = fmt.Sprintf("%s to %s, cut %v", old.Addr(), promoted.Addr(), window.Round(time.Millisecond))
	if f.err = c.waitReplicaReady(ctx, 30*time.Second); f.err != nil {
		return
	}
	if f.err = c.cutReplication(ctx); f.err != nil {
		return
	}
	f.snapAt = time.Now()
	in.sleep(ctx, window)
	if f.err = c.setDownAfter(ctx, downAfterFailover); f.err != nil {
		return
	}
	before := in.entries(ctx)
	if f.err = c.stopRedis(ctx); f.err != nil {
		return
	}
	stopped := time.Now()
	rc := newClient(promoted.Addr())
	defer rc.Close()
	kept := in.entriesOn(ctx, rc)
	err := waitUntil(ctx, 30*time.Second, "the Sentinel to promote "+promoted.Addr(), func() bool {
		addr, err := c.sentinelMaster(ctx)
		if err != nil || addr != promoted.Addr() {
			return false
		}
		m, err := info(ctx, promoted, "replication")
		return err == nil && m["role"] == "master"
	})
	f.err = errors.Join(err, c.setDownAfter(ctx, downAfterIdle))
	if err != nil {
		c.contRedis()
		return
	}
	promotedIn := time.Since(stopped)
	c.switchMaster()
	f.err = errors.Join(f.err, restoreReplication(ctx, promoted))
	if before >= 0 && kept >= 0 {
		f.lost = before - kept
	}
	// Until the nodes write on the new master (bounded; a quiet moment is
	// not an error).
	_ = waitUntil(ctx, 10*time.Second, "a write on the new master", func() bool {
		return in.entriesOn(ctx, rc) > kept
	})
	c.contRedis()
	err = waitUntil(ctx, 30*time.Second, "the old master to replicate the new one", func() bool {
		m, err := info(ctx, old, "replication")
		return err == nil && m["role"] == "slave" && m["master_port"] == strconv.Itoa(promoted.Port()) &&
			m["master_link_status"] == "up" && m["master_sync_in_progress"] == "0"
	})
	f.err = errors.Join(f.err, err)
	f.target += fmt.Sprintf(", promoted %v after SIGSTOP", promotedIn.Round(time.Millisecond))
}
