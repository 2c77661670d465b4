package redistest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// StartReplica starts a server that replicates master (REPLICAOF) and
// waits until it is in sync.
func StartReplica(tb testing.TB, master *Server, opts Options) *Server {
	tb.Helper()
	opts.Args = append(opts.Args, "--replicaof", "127.0.0.1", strconv.Itoa(master.port))
	r := Start(tb, opts)
	r.WaitInSync(tb)
	master.WaitReplicated(tb, "redistest:sync")
	return r
}

// WaitReplicated writes key on the master and waits until every replica
// connected to it acknowledged the write. After a diskless full sync the
// master streams nothing to a new replica until the replica's first
// REPLCONF ACK, up to a second later, although both already report the
// link up: a failover in that window promotes a replica without the
// writes made meanwhile.
func (s *Server) WaitReplicated(tb testing.TB, key string) {
	tb.Helper()
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1})
	defer c.Close()
	conn := c.Conn()
	defer conn.Close()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		info, err := conn.Info(ctx, "replication").Result()
		if err != nil {
			tb.Fatalf("INFO on %s: %v", s.Addr(), err)
		}
		n := 0
		for _, l := range strings.Split(info, "\n") {
			if strings.HasPrefix(l, "connected_slaves:") {
				n, _ = strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(l, "connected_slaves:")))
			}
		}
		if err := conn.Set(ctx, key, time.Now().UnixNano(), 0).Err(); err != nil {
			tb.Fatalf("SET on %s: %v", s.Addr(), err)
		}
		if got, err := conn.Wait(ctx, n, time.Second).Result(); err == nil && got >= int64(n) {
			return
		}
	}
	tb.Fatalf("the replicas of %s did not acknowledge a write within 20s", s.Addr())
}

// WaitInSync waits until the replica's link to its master is up and no
// sync is in progress.
func (s *Server) WaitInSync(tb testing.TB) {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		v, err := s.Do(context.Background(), "INFO", "replication")
		info := fmt.Sprint(v)
		if err == nil && strings.Contains(info, "master_link_status:up") && !strings.Contains(info, "master_sync_in_progress:1") {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	tb.Fatalf("replica %s not in sync within 20s", s.Addr())
}

// Pause stops the server with SIGSTOP: it keeps its connections but
// answers nothing (a replica stops acknowledging) until Resume.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume continues a paused server (SIGCONT).
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

// Sentinel is a redis-server in sentinel mode watching one master.
type Sentinel struct {
	*Server
	Name string
}

// StartSentinel starts a sentinel (quorum 1) that watches master under
// name, declares it down after 1s without an answer, and waits until the
// sentinel knows want replicas of it.
func StartSentinel(tb testing.TB, master *Server, name string, want int) *Sentinel {
	tb.Helper()
	conf := fmt.Sprintf("sentinel monitor %[1]s 127.0.0.1 %[2]d 1\n"+
		"sentinel down-after-milliseconds %[1]s 1000\n"+
		"sentinel failover-timeout %[1]s 5000\n", name, master.port)
	s := &Sentinel{Server: Start(tb, Options{Config: conf, Args: []string{"--sentinel"}}), Name: name}
	s.WaitReplicas(tb, want)
	return s
}

// WaitReplicas waits until the sentinel knows want replicas of its master
// fit to be promoted: connected, in sync, and described by an INFO reply
// (until then SENTINEL FAILOVER answers NOGOODSLAVE).
func (s *Sentinel) WaitReplicas(tb testing.TB, want int) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var seen []map[string]string
	for time.Now().Before(deadline) {
		v, err := s.Do(context.Background(), "SENTINEL", "REPLICAS", s.Name)
		good := 0
		seen = nil
		if list, ok := v.([]any); err == nil && ok {
			for _, r := range list {
				m := map[string]string{}
				switch f := r.(type) {
				case map[any]any: // RESP3
					for k, v := range f {
						m[fmt.Sprint(k)] = fmt.Sprint(v)
					}
				case []any:
					for i := 0; i+1 < len(f); i += 2 {
						m[fmt.Sprint(f[i])] = fmt.Sprint(f[i+1])
					}
				}
				seen = append(seen, m)
				if m["flags"] == "slave" && m["master-link-status"] == "ok" && m["info-refresh"] != "" && m["info-refresh"] != "0" {
					good++
				}
			}
		}
		if good >= want {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	tb.Fatalf("sentinel %s does not know %d good replicas of %s within 30s: %v", s.Addr(), want, s.Name, seen)
}

// URL is the master as a node's TANDEM_REDIS_URL.
func (s *Sentinel) URL() string {
	return "redis+sentinel://" + s.Addr() + "/0?master_name=" + s.Name
}

// MasterAddr is the master's address as the sentinel knows it.
func (s *Sentinel) MasterAddr(tb testing.TB) string {
	tb.Helper()
	v, err := s.Do(context.Background(), "SENTINEL", "GET-MASTER-ADDR-BY-NAME", s.Name)
	r, ok := v.([]any)
	if err != nil || !ok || len(r) != 2 {
		tb.Fatalf("SENTINEL GET-MASTER-ADDR-BY-NAME: %v %v", v, err)
	}
	return fmt.Sprint(r[0]) + ":" + fmt.Sprint(r[1])
}

// WaitMaster waits until the sentinel names a master other than not
// and that server answers as a master; it returns its address.
func (s *Sentinel) WaitMaster(tb testing.TB, not string) string {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if addr := s.MasterAddr(tb); addr != not {
			c := &Server{port: portOf(addr)}
			if role, err := c.role(context.Background()); err == nil && role == "master" {
				return addr
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	tb.Fatalf("no new master within 30s")
	return ""
}

func portOf(addr string) int {
	i := strings.LastIndexByte(addr, ':')
	p, _ := strconv.Atoi(addr[i+1:])
	return p
}
