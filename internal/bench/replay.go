package bench

import (
	"context"
	"fmt"
	"time"
)

// ReplayConfig sizes the replay scenario.
type ReplayConfig struct {
	Events int // events behind (default 10,000)
	Runs   int // resumes measured (default 7)
	Size   int // bytes of text per event (default 200)
}

// ReplayResult is what the scenario measured: the time from opening the
// stream with Last-Event-ID to receiving the last event.
type ReplayResult struct {
	Events                  int
	Runs                    int
	MinMs, MedianMs, MaxMs  float64
	EventsPerSecondAtMedian float64
}

// Replay runs the replay scenario.
func Replay(ctx context.Context, s *Stack, cfg ReplayConfig, logf func(string, ...any)) (ReplayResult, error) {
	if cfg.Events == 0 {
		cfg.Events = 10000
	}
	if cfg.Runs == 0 {
		cfg.Runs = 7
	}
	if cfg.Size == 0 {
		cfg.Size = 200
	}
	if cfg.Events > 1_000_000 || cfg.Runs > 100 {
		return ReplayResult{}, fmt.Errorf("replay: sizes too large")
	}
	res := ReplayResult{Events: cfg.Events, Runs: cfg.Runs}
	if err := createWorkspace(ctx, s.URL, "replay"); err != nil {
		return res, err
	}
	if _, _, err := benchAppend(ctx, s.URL, "replay", "default", cfg.Events+1, 256, cfg.Size, 0); err != nil {
		return res, err
	}
	var page struct{ Items []struct{ ID string } }
	if err := call(ctx, "GET", s.URL+"/v1/workspaces/replay/sessions/default/events?limit=1", nil, &page); err != nil || len(page.Items) == 0 {
		return res, fmt.Errorf("first event: %v", err)
	}
	first := page.Items[0].ID
	var ds durations
	for r := 0; r < cfg.Runs; r++ {
		start := time.Now()
		c, err := dialSSE(ctx, s.URL, "replay", "default", first)
		if err != nil {
			return res, err
		}
		n := 0
		for n < cfg.Events {
			if _, err := c.next(); err != nil {
				c.close()
				return res, fmt.Errorf("replay run %d after %d events: %w", r, n, err)
			}
			n++
		}
		ds = append(ds, time.Since(start))
		c.close()
	}
	res.MinMs, res.MedianMs, res.MaxMs = ms(ds.q(0)), ms(ds.q(.5)), ms(ds.q(1))
	res.EventsPerSecondAtMedian = float64(cfg.Events) / (res.MedianMs / 1000)
	logf("replay: %d events in %.1f ms (median of %d)", cfg.Events, res.MedianMs, cfg.Runs)
	return res, nil
}
