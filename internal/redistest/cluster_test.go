package redistest_test

import (
	"context"
	"testing"
	"time"

	"github.com/tandem-dev/tandem/internal/redistest"
)

// The helper's own contract: a cluster that serves keys, a graceful
// failover and a promotion after a master is killed, each ending healthy.
func TestCluster(t *testing.T) {
	ctx := context.Background()
	start := time.Now()
	c := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3, ReplicasPerMaster: 1})
	t.Logf("cluster of %d nodes healthy after %v", len(c.Nodes), time.Since(start).Round(time.Millisecond))
	rdb := c.Client(t)
	const key = "{ws:a}:k"
	if err := rdb.Set(ctx, key, "v1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	old := c.MasterFor(t, key)
	if reps := c.ReplicasOf(t, old); len(reps) != 1 {
		t.Fatalf("master %s has %d replicas, want 1", old.Addr(), len(reps))
	}

	t.Run("OK graceful failover", func(t *testing.T) {
		now := c.Failover(t, key)
		if now == old || c.MasterFor(t, key) != now {
			t.Fatalf("master of the key is %s after the failover from %s", c.MasterFor(t, key).Addr(), old.Addr())
		}
		if v, err := rdb.Get(ctx, key).Result(); err != nil || v != "v1" {
			t.Fatalf("GET after failover = %q, %v", v, err)
		}
	})
	t.Run("OK promotion after a kill", func(t *testing.T) {
		m := c.MasterFor(t, key)
		rep := c.ReplicasOf(t, m)[0]
		m.Kill()
		start := time.Now()
		c.WaitHealthy(t)
		t.Logf("replica promoted and cluster healthy %v after the kill", time.Since(start).Round(time.Millisecond))
		if c.MasterFor(t, key) != rep {
			t.Fatalf("master of the key is %s, want the replica %s", c.MasterFor(t, key).Addr(), rep.Addr())
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			v, err := rdb.Get(ctx, key).Result()
			if err == nil && v == "v1" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET after the promotion = %q, %v", v, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}
