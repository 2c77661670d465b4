package bench

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// AppendConfig sizes the append scenario.
type AppendConfig struct {
	HotEvents     int // events into one session (default 200,000)
	HotBatch      int // per script call (default 64)
	Sessions      int // concurrent sessions (default 50)
	EventsPerSess int // events per session (default 4,000)
	Size          int // bytes of text per event (default 200)
}

// AppendResult is what the scenario measured.
type AppendResult struct {
	HotEventsPerSecond   float64 // one session, batched
	HotBatch             int
	ManyEventsPerSecond  float64 // Sessions sessions, one event per call
	ManyBatchedPerSecond float64 // Sessions sessions, 16 per call
	// One workspace with Sessions busy sessions: its owner appends one
	// event to each in one script call, as its ingest does.
	RoomCoalescedPerSecond float64
	Sessions               int
	RedisBenchmarkXADD     float64 // redis-benchmark -c Sessions -P 1 XADD, same Redis
	RatioToRedisBenchmark  float64 // ManyEventsPerSecond / RedisBenchmarkXADD
	// RoomCoalescedPerSecond / RedisBenchmarkXADD
	RoomRatioToRedisBenchmark float64
}

func (c *AppendConfig) defaults() {
	if c.HotEvents == 0 {
		c.HotEvents = 200000
	}
	if c.HotBatch == 0 {
		c.HotBatch = 64
	}
	if c.Sessions == 0 {
		c.Sessions = 50
	}
	if c.EventsPerSess == 0 {
		c.EventsPerSess = 4000
	}
	if c.Size == 0 {
		c.Size = 200
	}
}

// Append runs the append scenario.
func Append(ctx context.Context, s *Stack, cfg AppendConfig, logf func(string, ...any)) (AppendResult, error) {
	cfg.defaults()
	if cfg.HotEvents > 5_000_000 || cfg.Sessions > 1000 || cfg.EventsPerSess > 1_000_000 {
		return AppendResult{}, fmt.Errorf("append: sizes too large")
	}
	res := AppendResult{HotBatch: cfg.HotBatch, Sessions: cfg.Sessions}
	if err := createWorkspace(ctx, s.URL, "apphot"); err != nil {
		return res, err
	}
	n, secs, err := benchAppend(ctx, s.URL, "apphot", "default", cfg.HotEvents, cfg.HotBatch, cfg.Size, 0)
	if err != nil {
		return res, err
	}
	res.HotEventsPerSecond = float64(n) / secs
	logf("append: one session, %d per call: %.0f events/s", cfg.HotBatch, res.HotEventsPerSecond)

	many := func(name string, batch int) (float64, error) {
		// One workspace per session: each has its own owner, as sessions
		// of different rooms do.
		for i := 0; i < cfg.Sessions; i++ {
			if err := createWorkspace(ctx, s.URL, name+strconv.Itoa(i)); err != nil {
				return 0, err
			}
			if _, _, err := benchAppend(ctx, s.URL, name+strconv.Itoa(i), "default", 1, 1, cfg.Size, 0); err != nil {
				return 0, err
			}
		}
		var wg sync.WaitGroup
		errs := make(chan error, cfg.Sessions)
		start := time.Now()
		for i := 0; i < cfg.Sessions; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				if _, _, err := benchAppend(ctx, s.URL, name+strconv.Itoa(i), "default", cfg.EventsPerSess, batch, cfg.Size, 0); err != nil {
					errs <- err
				}
			}(i)
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			return 0, err
		}
		return float64(cfg.Sessions*cfg.EventsPerSess) / time.Since(start).Seconds(), nil
	}
	if res.ManyEventsPerSecond, err = many("appmany", 1); err != nil {
		return res, err
	}
	logf("append: %d sessions, 1 per call: %.0f events/s", cfg.Sessions, res.ManyEventsPerSecond)
	if res.ManyBatchedPerSecond, err = many("appbatch", 16); err != nil {
		return res, err
	}
	if err := createWorkspace(ctx, s.URL, "approom"); err != nil {
		return res, err
	}
	room := cfg.Sessions * cfg.EventsPerSess
	n, secs, err = benchAppendSessions(ctx, s.URL, "approom", "s", room, min(cfg.Sessions, 64), cfg.Size, min(cfg.Sessions, 64), 0)
	if err != nil {
		return res, err
	}
	res.RoomCoalescedPerSecond = float64(n) / secs
	logf("append: one room of %d sessions, one event each per call: %.0f events/s", cfg.Sessions, res.RoomCoalescedPerSecond)
	if s.Redis != "" {
		res.RedisBenchmarkXADD, err = redisBenchmarkXADD(ctx, s.Redis, cfg.Sessions, cfg.Sessions*cfg.EventsPerSess)
		if err != nil {
			return res, err
		}
		res.RatioToRedisBenchmark = res.ManyEventsPerSecond / res.RedisBenchmarkXADD
		res.RoomRatioToRedisBenchmark = res.RoomCoalescedPerSecond / res.RedisBenchmarkXADD
	}
	return res, nil
}
