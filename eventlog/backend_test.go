package eventlog_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/tandem-dev/tandem/internal/redistest"
	"github.com/tandem-dev/tandem/redisurl"
)

// backend is a Redis deployment the conformance suite runs against.
type backend struct {
	rdb redis.UniversalClient
	// restart restarts the server that holds key; its data survives
	// (appendonly), its connections do not.
	restart func(t testing.TB, key string)
	// wipe makes Redis lose every key, as a restart without persistence.
	wipe func(t testing.TB)
	seq  atomic.Int64
}

// ws returns a workspace id no other case of the run uses.
func (b *backend) ws(base string) string { return fmt.Sprintf("%s-%d", base, b.seq.Add(1)) }

// numSub is the number of subscribers of ch on every node of the backend.
func (b *backend) numSub(ctx context.Context, ch string) int64 {
	if cc, ok := b.rdb.(*redis.ClusterClient); ok {
		var n atomic.Int64
		_ = cc.ForEachShard(ctx, func(ctx context.Context, c *redis.Client) error {
			m, err := c.PubSubNumSub(ctx, ch).Result()
			n.Add(m[ch])
			return err
		})
		return n.Load()
	}
	m, _ := b.rdb.PubSubNumSub(ctx, ch).Result()
	return m[ch]
}

// backends are the deployments the suite runs against; start's is stopped
// by a cleanup of t.
var backends = []struct {
	name  string
	start func(t *testing.T) *backend
}{
	{"single", func(t *testing.T) *backend {
		srv := redistest.Start(t, redistest.Options{AppendOnly: true})
		return &backend{
			rdb:     srv.Client(t),
			restart: func(t testing.TB, _ string) { srv.Restart(t) },
			wipe: func(t testing.TB) {
				if _, err := srv.Do(context.Background(), "FLUSHALL"); err != nil {
					t.Fatal(err)
				}
			},
		}
	}},
	{"cluster", func(t *testing.T) *backend {
		c := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3, AppendOnly: true})
		return &backend{
			rdb: c.Client(t),
			restart: func(t testing.TB, key string) {
				c.MasterFor(t, key).Restart(t)
				c.WaitHealthy(t)
			},
			wipe: c.FlushAll,
		}
	}},
	{"sentinel", func(t *testing.T) *backend {
		master := redistest.Start(t, redistest.Options{AppendOnly: true})
		redistest.StartReplica(t, master, redistest.Options{AppendOnly: true})
		s := redistest.StartSentinel(t, master, "tandem", 1)
		rdb, err := redisurl.NewClient(s.URL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rdb.Close() })
		return &backend{
			rdb:     rdb,
			restart: func(t testing.TB, _ string) { master.Restart(t) },
			wipe: func(t testing.TB) {
				if err := rdb.FlushAll(context.Background()).Err(); err != nil {
					t.Fatal(err)
				}
			},
		}
	}},
}
