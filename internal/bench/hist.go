package bench

import (
	"sort"
	"time"
)

// hist is a latency histogram with 10 µs buckets up to 10 s (and one
// overflow bucket): fixed memory, mergeable, exact enough for p99.9.
type hist struct {
	counts []uint32
	n      uint64
	max    time.Duration
}

const histStep = 10 * time.Microsecond
const histBuckets = int(10 * time.Second / histStep)

func newHist() *hist { return &hist{counts: make([]uint32, histBuckets+1)} }

func (h *hist) add(d time.Duration) {
	if d < 0 {
		d = 0
	}
	i := int(d / histStep)
	if i > histBuckets {
		i = histBuckets
	}
	h.counts[i]++
	h.n++
	if d > h.max {
		h.max = d
	}
}

func (h *hist) merge(o *hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	if o.max > h.max {
		h.max = o.max
	}
}

// quantile returns the upper bound of the bucket holding quantile q.
func (h *hist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	target := uint64(q * float64(h.n))
	if target >= h.n {
		target = h.n - 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += uint64(c)
		if seen > target {
			return time.Duration(i+1) * histStep
		}
	}
	return h.max
}

// durations summarises a small sample exactly.
type durations []time.Duration

func (d durations) q(p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append(durations(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(p*float64(len(s))))]
}
