package eventlog_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tandem-dev/tandem/eventlog"
	"github.com/tandem-dev/tandem/internal/redistest"
)

// benchRedis is the Redis of the benchmarks: $TANDEM_BENCH_REDIS_ADDR when
// set (scripts/bench-eventlog.sh points it at the server it also runs
// redis-benchmark against), else a fresh server.
func benchRedis(b *testing.B) *redis.Client {
	if addr := os.Getenv("TANDEM_BENCH_REDIS_ADDR"); addr != "" {
		c := redis.NewClient(&redis.Options{Addr: addr, PoolSize: 64})
		b.Cleanup(func() { c.Close() })
		return c
	}
	srv := redistest.Start(b, redistest.Options{})
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), PoolSize: 64})
	b.Cleanup(func() { c.Close() })
	return c
}

var benchBody = json.RawMessage(`{"connectionId":"c1","sender":"agent","payload":{"jsonrpc":"2.0","method":"session/update","params":{"sessionId":"s","update":{"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":"a chunk of the answer"}}}}}`)

func BenchmarkAppend(b *testing.B) {
	ctx := context.Background()
	rdb := benchRedis(b)
	l := eventlog.New(rdb, eventlog.Config{})
	for _, batch := range []int{1, 16, 64, 256} {
		b.Run(fmt.Sprintf("one-session/batch=%d", batch), func(b *testing.B) {
			ws := fmt.Sprintf("bench-%d-%d", batch, time.Now().UnixNano())
			ep, err := l.AcquireEpoch(ctx, ws)
			if err != nil {
				b.Fatal(err)
			}
			recs := make([]eventlog.Record, batch)
			for i := range recs {
				recs[i] = eventlog.Record{Type: "session.event", Body: benchBody, Source: "12345"}
			}
			b.ResetTimer()
			start := time.Now()
			for b.Loop() {
				if _, err := l.Append(ctx, ws, "s", ep, recs...); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/time.Since(start).Seconds(), "events/s")
			rdb.Del(ctx, eventlog.StreamKey(ws, "s"))
		})
	}
	// 50 writers on 50 sessions, one event per call: the same shape as
	// redis-benchmark -c 50 XADD without pipelining.
	b.Run("50-sessions/batch=1", func(b *testing.B) {
		ws := fmt.Sprintf("bench-par-%d", time.Now().UnixNano())
		ep, err := l.AcquireEpoch(ctx, ws)
		if err != nil {
			b.Fatal(err)
		}
		var next atomic.Int64
		var wg sync.WaitGroup
		n := int64(b.N)
		b.ResetTimer()
		start := time.Now()
		for w := 0; w < 50; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sid := fmt.Sprintf("s%d", w)
				for next.Add(1) <= n {
					if _, err := l.Append(ctx, ws, sid, ep, eventlog.Record{Type: "session.event", Body: benchBody}); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
	})
}
