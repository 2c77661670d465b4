package fanout

import (
	"context"
	"sync"
)

// workQueue is a FIFO of feeds with one kind of work waiting, taken by a
// pool of goroutines: the hub has one for deliveries to attached clients
// and one for catch-ups from Redis. A feed is in a queue at most once:
// queued returns the feed's flag for this queue, which the queue's mu
// guards, so work asked for again while it waits is done once.
type workQueue struct {
	mu     sync.Mutex
	cond   sync.Cond
	feeds  []*feed
	queued func(*feed) *bool
}

func (q *workQueue) init(queued func(*feed) *bool) {
	q.cond.L = &q.mu
	q.queued = queued
}

// push queues f unless it is waiting already.
func (q *workQueue) push(f *feed) {
	q.mu.Lock()
	if in := q.queued(f); !*in {
		*in = true
		q.feeds = append(q.feeds, f)
		q.cond.Signal()
	}
	q.mu.Unlock()
}

// pop waits for a feed and takes it off the queue. It returns nil once ctx
// is done and wakeAll was called after that.
func (q *workQueue) pop(ctx context.Context) *feed {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.feeds) == 0 && ctx.Err() == nil {
		q.cond.Wait()
	}
	if ctx.Err() != nil {
		return nil
	}
	f := q.feeds[0]
	q.feeds[0] = nil
	q.feeds = q.feeds[1:]
	if len(q.feeds) == 0 {
		q.feeds = nil // let the backing array go
	}
	*q.queued(f) = false
	return f
}

// wakeAll wakes every goroutine waiting in pop, so that it sees its
// context done. The context is checked under mu, so a pop that has not
// begun to wait when wakeAll runs sees it done.
func (q *workQueue) wakeAll() {
	q.mu.Lock()
	q.cond.Broadcast()
	q.mu.Unlock()
}
