package eventlog

import (
	"context"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Appends from many owners of a node are written to Redis together: while
// one batch of script calls is on the wire, the calls that arrive queue,
// and go out as the next batch in one pipeline. Under load this trades a
// write and a read per call, on the node and in Redis, for one per batch;
// alone, a call goes out at once.

// maxPipeline bounds the calls of one batch.
const maxPipeline = 128

// pipeCall is one script call waiting for the pipeline.
type pipeCall struct {
	ctx    context.Context
	script *redis.Script
	keys   []string
	args   []any
	res    []any
	err    error
	done   chan struct{}
}

// pipeline is the state of RunPipeline.
type pipeline struct {
	running atomic.Bool
	calls   chan *pipeCall
	stopped chan struct{} // closed when RunPipeline has returned
}

// RunPipeline writes the node's appends in batches until ctx ends. Without
// it every call goes out on its own. It returns after its goroutine is
// done; calls queued then are answered with ctx's error.
func (l *Log) RunPipeline(ctx context.Context) error {
	if !l.pipe.running.CompareAndSwap(false, true) {
		return nil
	}
	defer close(l.pipe.stopped)
	batch := make([]*pipeCall, 0, maxPipeline)
	var carry, next []*pipeCall
	seen := make(map[string]bool)
	for {
		batch = batch[:0]
		clear(seen)
		next = next[:0]
		// Calls held back from the last batch go first, in order.
		for _, c := range carry {
			if k := c.stream(); seen[k] {
				next = append(next, c)
			} else {
				seen[k] = true
				batch = append(batch, c)
			}
		}
		carry, next = next, carry
		if len(batch) == 0 {
			select {
			case <-ctx.Done():
				for _, c := range carry {
					c.err = ctx.Err()
					close(c.done)
				}
				for {
					select {
					case c := <-l.pipe.calls:
						c.err = ctx.Err()
						close(c.done)
					default:
						return ctx.Err()
					}
				}
			case c := <-l.pipe.calls:
				seen[c.stream()] = true
				batch = append(batch, c)
			}
		}
	drain:
		for len(batch) < maxPipeline {
			select {
			case c := <-l.pipe.calls:
				// Two calls on one stream never share a batch: a batch
				// sent again as a whole (its reply lost) relies on each
				// stream's receipt naming the batch's only call on it.
				if k := c.stream(); seen[k] {
					carry = append(carry, c)
				} else {
					seen[k] = true
					batch = append(batch, c)
				}
			default:
				break drain
			}
		}
		l.sendBatch(batch)
	}
}

// stream is the key a call's receipt lives by: the first stream of an
// append call (its second key), else its first key.
func (c *pipeCall) stream() string {
	if len(c.keys) > 1 {
		return c.keys[1]
	}
	if len(c.keys) == 1 {
		return c.keys[0]
	}
	return ""
}

// sendBatch runs the calls of a batch: one alone directly, several in one
// pipeline. A call whose caller gave up before it went out is not sent.
func (l *Log) sendBatch(batch []*pipeCall) {
	live := batch[:0]
	for _, c := range batch {
		if err := c.ctx.Err(); err != nil {
			c.err = err
			close(c.done)
			continue
		}
		live = append(live, c)
	}
	switch len(live) {
	case 0:
		return
	case 1:
		c := live[0]
		c.res, c.err = c.script.Run(c.ctx, l.rdb, c.keys, c.args...).Slice()
		close(c.done)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmds := make([]*redis.Cmd, len(live))
	_, _ = l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, c := range live {
			cmds[i] = c.script.EvalSha(ctx, p, c.keys, c.args...)
		}
		return nil
	})
	for i, c := range live {
		c.res, c.err = cmds[i].Slice()
		if c.err != nil && strings.HasPrefix(c.err.Error(), "NOSCRIPT") {
			// The script is not loaded (a restarted Redis): Run loads it.
			c.res, c.err = c.script.Run(c.ctx, l.rdb, c.keys, c.args...).Slice()
		}
		close(c.done)
	}
}

// runPiped runs a script call through the pipeline when it runs, else at
// once.
func (l *Log) runPiped(ctx context.Context, script *redis.Script, keys []string, args []any) ([]any, error) {
	if !l.pipe.running.Load() {
		return script.Run(ctx, l.rdb, keys, args...).Slice()
	}
	c := &pipeCall{ctx: ctx, script: script, keys: keys, args: args, done: make(chan struct{})}
	select {
	case l.pipe.calls <- c:
	case <-l.pipe.stopped:
		return script.Run(ctx, l.rdb, keys, args...).Slice()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case <-c.done: // answered even when ctx ends: a sent call's outcome is known
		return c.res, c.err
	case <-l.pipe.stopped:
		select {
		case <-c.done:
			return c.res, c.err
		default:
			// Queued after the pipeline's last drain: it never went out.
			return script.Run(ctx, l.rdb, keys, args...).Slice()
		}
	}
}
