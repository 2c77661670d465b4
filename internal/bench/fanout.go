package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// FanoutConfig sizes the fanout scenario.
type FanoutConfig struct {
	Conns      int           // SSE connections (default 10,000)
	Workspaces int           // spread over this many workspaces (default 100)
	Rate       float64       // events appended per second in all (default 500)
	Duration   time.Duration // measured window (default 30s)
	Warmup     time.Duration // appends before the window (default 5s)
	Size       int           // bytes of text per event (default 200)
	DialRate   int           // connections opened per second (default 2000)
}

// FanoutResult is what the scenario measured.
type FanoutResult struct {
	Conns, Workspaces           int
	Rate                        float64
	Seconds                     float64
	Appended                    int64   // events appended in the window
	Expected, Delivered         int64   // deliveries due and made in the window
	DeliveredPerSecond          float64 `json:"deliveredPerSecond"`
	P50Ms, P99Ms, P999Ms, MaxMs float64
	NodeCPUSeconds              float64
	DeliveriesPerCPUSecond      float64
	CPUSecondsPerMillion        float64
	RSSBaseMiB                  float64
	RSSIdleMiB, RSSActiveMiB    float64
	IdleBytesPerConn            float64
	ActiveBytesPerConn          float64
	Errors, Gaps, Reconnects    int64
}

func (c *FanoutConfig) defaults() {
	if c.Conns == 0 {
		c.Conns = 10000
	}
	if c.Workspaces == 0 {
		c.Workspaces = 100
	}
	if c.Rate == 0 {
		c.Rate = 500
	}
	if c.Duration == 0 {
		c.Duration = 30 * time.Second
	}
	if c.Warmup == 0 {
		c.Warmup = 5 * time.Second
	}
	if c.Size == 0 {
		c.Size = 200
	}
	if c.DialRate == 0 {
		c.DialRate = 2000
	}
}

// Fanout runs the fanout scenario.
func Fanout(ctx context.Context, s *Stack, cfg FanoutConfig, logf func(string, ...any)) (FanoutResult, error) {
	cfg.defaults()
	if cfg.Conns > 50000 || cfg.Workspaces > cfg.Conns || cfg.Duration > 10*time.Minute {
		return FanoutResult{}, errors.New("fanout: at most 50,000 connections, no more workspaces than connections, at most 10 minutes")
	}
	res := FanoutResult{Conns: cfg.Conns, Workspaces: cfg.Workspaces, Rate: cfg.Rate, Seconds: cfg.Duration.Seconds()}
	ws := func(i int) string { return "fan" + strconv.Itoa(i) }
	// Each workspace exists, is owned by the node, and has one event to
	// start after.
	heads := make([]string, cfg.Workspaces)
	for i := range heads {
		if err := createWorkspace(ctx, s.URL, ws(i)); err != nil {
			return res, err
		}
		if _, _, err := benchAppend(ctx, s.URL, ws(i), "default", 1, 1, cfg.Size, 0); err != nil {
			return res, err
		}
	}
	for i := range heads {
		var page struct{ Items []struct{ ID string } }
		if err := call(ctx, "GET", s.URL+"/v1/workspaces/"+ws(i)+"/sessions/default/events?limit=1", nil, &page); err != nil || len(page.Items) == 0 {
			return res, fmt.Errorf("head of %s: %v", ws(i), err)
		}
		heads[i] = page.Items[0].ID
	}
	time.Sleep(time.Second)
	base, _ := rssBytes(s.NodePid)
	res.RSSBaseMiB = float64(base) / (1 << 20)

	// Connect, paced.
	// createdAt ms bounds of the measured window; 0: not yet.
	var winFrom, winTo atomic.Int64
	var delivered, errs, gaps atomic.Int64
	hists := make([]*hist, runtime.GOMAXPROCS(0)*4)
	for i := range hists {
		hists[i] = newHist()
	}
	var histMu = make([]sync.Mutex, len(hists))
	conns := make([]*sseConn, 0, cfg.Conns)
	var wg sync.WaitGroup
	pace := time.NewTicker(time.Second / time.Duration(cfg.DialRate))
	for i := 0; i < cfg.Conns; i++ {
		<-pace.C
		c, err := dialSSE(ctx, s.URL, ws(i%cfg.Workspaces), "default", heads[i%cfg.Workspaces])
		if err != nil {
			pace.Stop()
			for _, c := range conns {
				c.close()
			}
			return res, fmt.Errorf("connection %d: %w", i, err)
		}
		conns = append(conns, c)
		wg.Add(1)
		go func(c *sseConn, h *hist, mu *sync.Mutex) {
			defer wg.Done()
			last := uint64(1)
			local := newSmallCounts()
			for {
				ev, err := c.next()
				if err != nil {
					if !errors.Is(err, io.EOF) && !isClosed(err) {
						errs.Add(1)
					}
					mu.Lock()
					local.flush(h)
					mu.Unlock()
					return
				}
				if ev.index != last+1 {
					gaps.Add(1)
				}
				last = ev.index
				from, to := winFrom.Load(), winTo.Load()
				if from > 0 && ev.createdAt >= from && (to == 0 || ev.createdAt < to) {
					delivered.Add(1)
					local.add(time.Since(time.UnixMilli(ev.createdAt)))
					if local.n >= 256 {
						mu.Lock()
						local.flush(h)
						mu.Unlock()
					}
				}
			}
		}(c, hists[i%len(hists)], &histMu[i%len(hists)])
	}
	pace.Stop()
	logf("fanout: %d connections open", len(conns))
	time.Sleep(3 * time.Second)
	idle, _ := rssBytes(s.NodePid)
	res.IdleBytesPerConn = float64(idle-base) / float64(cfg.Conns)
	res.RSSIdleMiB = float64(idle) / (1 << 20)

	// Append, paced on the node, for warmup + window.
	perWS := cfg.Rate / float64(cfg.Workspaces)
	total := cfg.Warmup + cfg.Duration
	count := int(perWS * total.Seconds())
	var appendErr atomic.Value
	var awg sync.WaitGroup
	for i := 0; i < cfg.Workspaces; i++ {
		awg.Add(1)
		go func(i int) {
			defer awg.Done()
			// Spread the workspaces' schedules over one interval.
			time.Sleep(time.Duration(float64(time.Second) / cfg.Rate * float64(i)))
			if _, _, err := benchAppend(ctx, s.URL, ws(i), "default", count, 1, cfg.Size, perWS); err != nil {
				appendErr.Store(err)
			}
		}(i)
	}
	time.Sleep(cfg.Warmup)
	cpu0, _ := cpuSeconds(s.NodePid)
	t0 := time.Now()
	winFrom.Store(t0.UnixMilli())
	time.Sleep(cfg.Duration / 2)
	active, _ := rssBytes(s.NodePid)
	time.Sleep(cfg.Duration - time.Since(t0))
	cpu1, _ := cpuSeconds(s.NodePid)
	t1 := time.Now()
	winTo.Store(t1.UnixMilli())
	awg.Wait()
	if err, _ := appendErr.Load().(error); err != nil {
		return res, fmt.Errorf("appending: %w", err)
	}
	time.Sleep(2 * time.Second) // let the last deliveries arrive
	for _, c := range conns {
		c.close()
	}
	wg.Wait()

	// What was due: every event of the window, to every subscriber of its
	// workspace.
	for i := 0; i < cfg.Workspaces; i++ {
		n, err := countCreated(ctx, s.URL, ws(i), t0.UnixMilli(), t1.UnixMilli())
		if err != nil {
			return res, err
		}
		subs := cfg.Conns / cfg.Workspaces
		if i < cfg.Conns%cfg.Workspaces {
			subs++
		}
		res.Appended += int64(n)
		res.Expected += int64(n * subs)
	}
	h := newHist()
	for _, x := range hists {
		h.merge(x)
	}
	secs := t1.Sub(t0).Seconds()
	res.Delivered = delivered.Load()
	res.DeliveredPerSecond = float64(res.Delivered) / secs
	res.P50Ms, res.P99Ms, res.P999Ms = ms(h.quantile(.5)), ms(h.quantile(.99)), ms(h.quantile(.999))
	res.MaxMs = ms(h.max)
	res.NodeCPUSeconds = cpu1 - cpu0
	if res.NodeCPUSeconds > 0 {
		res.DeliveriesPerCPUSecond = float64(res.Delivered) / res.NodeCPUSeconds
		res.CPUSecondsPerMillion = res.NodeCPUSeconds / float64(res.Delivered) * 1e6
	}
	res.ActiveBytesPerConn = float64(active-base) / float64(cfg.Conns)
	res.RSSActiveMiB = float64(active) / (1 << 20)
	res.Errors, res.Gaps = errs.Load(), gaps.Load()
	return res, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func isClosed(err error) bool {
	return err != nil && (errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		strings.Contains(err.Error(), "connection reset"))
}

// countCreated counts a session's events with createdAt in [from, to).
func countCreated(ctx context.Context, base, ws string, from, to int64) (int, error) {
	n, cursor := 0, ""
	for pages := 0; pages < 10000; pages++ {
		var page struct {
			Items []struct {
				CreatedAt int64 `json:"createdAt"`
			}
			NextCursor string
		}
		if err := call(ctx, "GET", base+"/v1/workspaces/"+ws+"/sessions/default/events?limit=1000&cursor="+cursor, nil, &page); err != nil {
			return 0, err
		}
		for _, it := range page.Items {
			if it.CreatedAt >= from && it.CreatedAt < to {
				n++
			}
		}
		if page.NextCursor == "" {
			return n, nil
		}
		cursor = page.NextCursor
	}
	return n, errors.New("too many pages")
}

// smallCounts batches a reader's latencies before they go into the shared
// histogram.
type smallCounts struct {
	d []time.Duration
	n int
}

func newSmallCounts() *smallCounts { return &smallCounts{d: make([]time.Duration, 0, 256)} }
func (s *smallCounts) add(d time.Duration) {
	s.d = append(s.d, d)
	s.n++
}
func (s *smallCounts) flush(h *hist) {
	for _, d := range s.d {
		h.add(d)
	}
	s.d = s.d[:0]
	s.n = 0
}
