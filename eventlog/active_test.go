package eventlog_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tandem-dev/tandem/eventlog"
)

// seedActive adds n workspaces "<prefix>-<i>" to the active index, scored
// at score(i), each with a lock held for lockTTL (0: none), in pipelines.
func seedActive(t testing.TB, rdb redis.UniversalClient, prefix string, n int, score func(i int) float64, lockTTL time.Duration) {
	t.Helper()
	ctx := context.Background()
	for lo := 0; lo < n; lo += 5000 {
		_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			zs := make([]redis.Z, 0, 5000)
			for i := lo; i < min(lo+5000, n); i++ {
				ws := fmt.Sprintf("%s-%d", prefix, i)
				zs = append(zs, redis.Z{Score: score(i), Member: ws})
				if lockTTL > 0 {
					p.Set(ctx, eventlog.LockKey(ws), "held", lockTTL)
				}
			}
			p.ZAdd(ctx, eventlog.ActiveKey, zs...)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// With 100,000 workspaces in the active index, all of them owned (their
// owners' leases keep them in the future), the one whose owner died is
// the first and only one a poll returns, and the poll reads one page.
// Before, pollers read the first 10,000 members by score and checked
// each one's lock: a workspace ranked beyond them was never taken.
func TestDueActiveFindsADeadOwnerAtAnyRank(t *testing.T) {
	ctx := context.Background()
	st, rdb := newStore(t)
	now := time.Now()
	ms := func(t time.Time) float64 { return float64(t.UnixMilli()) }
	// Marked long ago, in order, so that by score the dead owner's
	// workspace would rank last; its owner extends no longer.
	seedActive(t, rdb, "live", 100_000, func(int) float64 { return ms(now.Add(time.Hour)) }, time.Hour)
	if err := rdb.ZAdd(ctx, eventlog.ActiveKey, redis.Z{Score: ms(now.Add(-time.Second)), Member: "dead"}).Err(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	free, full, err := st.DueActive(ctx, 500, time.Second)
	took := time.Since(start)
	if err != nil || !slices.Equal(free, []string{"dead"}) || full {
		t.Fatalf("due: %v %v full %v", free, err, full)
	}
	t.Logf("one poll over 100,000 leased workspaces: %v", took)

	// A backlog: 100,000 due workspaces, all locked (owners whose lease
	// was not recorded yet), ranked before one whose lock is free. Every
	// poll moves its page on, so the free one is reached after
	// 100,000/500 polls, each reading one page.
	rdb.Del(ctx, eventlog.ActiveKey)
	seedActive(t, rdb, "busy", 100_000, func(i int) float64 { return ms(now.Add(-time.Hour)) + float64(i) }, time.Hour)
	rdb.ZAdd(ctx, eventlog.ActiveKey, redis.Z{Score: ms(now.Add(-time.Millisecond)), Member: "orphan"})
	if r, _ := rdb.ZRank(ctx, eventlog.ActiveKey, "orphan").Result(); r != 100_000 {
		t.Fatalf("orphan ranked %d", r)
	}
	start = time.Now()
	var slowest time.Duration
	polls := 0
	for {
		t0 := time.Now()
		free, full, err := st.DueActive(ctx, 500, time.Second)
		slowest = max(slowest, time.Since(t0))
		polls++
		if err != nil {
			t.Fatal(err)
		}
		if len(free) > 0 {
			if !slices.Equal(free, []string{"orphan"}) {
				t.Fatalf("free %v", free)
			}
			break
		}
		if !full || polls > 300 {
			t.Fatalf("poll %d: the orphan was not reached (full %v)", polls, full)
		}
	}
	t.Logf("the orphan ranked 100,000th was reached after %d polls of 500 in %v (slowest poll %v)", polls, time.Since(start).Round(time.Millisecond), slowest)
	if polls != 201 {
		t.Fatalf("%d polls, want 201", polls)
	}
	// The locked ones were moved to their locks' expiry: none is due.
	if n, _ := rdb.ZCount(ctx, eventlog.ActiveKey, "-inf", fmt.Sprint(time.Now().UnixMilli())).Result(); n != 0 {
		t.Fatalf("%d still due", n)
	}
	if sc, _ := rdb.ZScore(ctx, eventlog.ActiveKey, "busy-7").Result(); sc < ms(now.Add(59*time.Minute)) {
		t.Fatalf("busy-7 moved to %v, want its lock's expiry", time.UnixMilli(int64(sc)))
	}
}

// Ids no key can be built from are dropped from the index rather than
// read by every poll.
func TestDueActiveDropsInvalidIDs(t *testing.T) {
	ctx := context.Background()
	st, rdb := newStore(t)
	rdb.ZAdd(ctx, eventlog.ActiveKey, redis.Z{Score: 1, Member: "bad:id"}, redis.Z{Score: 2, Member: "ok"})
	free, _, err := st.DueActive(ctx, 10, time.Second)
	if err != nil || !slices.Equal(free, []string{"ok"}) {
		t.Fatalf("free %v %v", free, err)
	}
	if n, _ := rdb.ZCard(ctx, eventlog.ActiveKey).Result(); n != 1 {
		t.Fatalf("%d members, want the valid one", n)
	}
}
