package eventlog

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/tandem-dev/tandem/eventlog/model"
	"github.com/tandem-dev/tandem/internal/retry"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// BellHandler receives what the doorbell hears. Its methods are called from
// the Bell's single receive goroutine, one at a time (except Subscribed,
// see there), and must not block.
type BellHandler interface {
	// Ring is called for each appended event of a subscribed workspace, in
	// append order per workspace.
	Ring(ws string, ev Event, gen string)
	// Subscribed is called each time the workspace's channel is
	// (re)subscribed. Events appended before may have been missed: the
	// handler catches up from the stream. When a holder subscribes to a
	// channel another holder has already subscribed to and Redis confirmed,
	// it is called at once from Subscribe (on the caller's goroutine), so
	// that every holder learns the channel is live.
	Subscribed(ws string)
	// Signal is called for a message published with Signal: a hint that
	// something other than an event changed (a prompt waits in the inbox,
	// presence changed). Signals are lost across reconnects like events.
	Signal(ws, msg string)
}

// SignalPrefix starts every message that is not an appended event; no
// session id can start with it.
const SignalPrefix = "!"

// Bell is a node's one pub/sub connection: it subscribes to the doorbells
// of the workspaces the node has live readers for.
//
// On one server or a Sentinel-managed master, the bell also listens to a
// channel of its own and publishes to it every probeInterval through the
// client's ordinary connections: when nobody hears it, the bell's
// connection is not to the server the client writes to (after a Sentinel
// failover go-redis moves its ordinary connections to the new master but
// leaves pub/sub connections on the old one, which Sentinel turns into a
// replica only many seconds later), and the bell subscribes again. On a
// cluster every node hears every PUBLISH, and a dead node breaks the
// connection.
type Bell struct {
	rdb   redis.UniversalClient
	h     BellHandler
	probe string // the bell's own channel; "" on a cluster

	mu      sync.Mutex
	ps      *redis.PubSub
	closed  bool
	want    map[string]int  // channel name -> number of holders
	live    map[string]bool // channels Redis confirmed on the current connection
	probing atomic.Bool     // the probe channel is confirmed on the current connection
}

// probeInterval is how often a bell checks that its connection is to the
// server its client writes to.
const probeInterval = 2 * time.Second

// NewBell returns a Bell; nothing is subscribed until Run and Subscribe.
func NewBell(rdb redis.UniversalClient, h BellHandler) *Bell {
	b := &Bell{rdb: rdb, h: h, want: make(map[string]int), live: make(map[string]bool)}
	if _, cluster := rdb.(*redis.ClusterClient); !cluster {
		var id [8]byte
		rand.Read(id[:])
		b.probe = "tandem:bell:" + hex.EncodeToString(id[:])
	}
	return b
}

// Subscribe starts listening to ws's doorbell for one more holder (the
// fan-out hub, the workspace owner…); each Subscribe is undone by one
// Unsubscribe. Run reports the subscription through
// BellHandler.Subscribed once Redis confirmed it. When Redis is unreachable
// the subscription is kept and made on reconnect.
func (b *Bell) Subscribe(ctx context.Context, ws string) error {
	ch := NotifyChannel(ws)
	b.mu.Lock()
	b.want[ch]++
	if b.want[ch] > 1 {
		live := b.live[ch]
		b.mu.Unlock()
		if live {
			b.h.Subscribed(ws)
		}
		return nil
	}
	defer b.mu.Unlock()
	if b.ps == nil {
		return nil // Run subscribes to everything wanted when it starts
	}
	if err := b.ps.Subscribe(ctx, ch); err != nil {
		return fmt.Errorf("subscribe %s: %w", ch, err)
	}
	return nil
}

// Unsubscribe releases one holder's subscription; the channel is left when
// the last holder released it.
func (b *Bell) Unsubscribe(ctx context.Context, ws string) error {
	ch := NotifyChannel(ws)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.want[ch] == 0 {
		return nil
	}
	b.want[ch]--
	if b.want[ch] > 0 {
		return nil
	}
	delete(b.want, ch)
	delete(b.live, ch)
	if b.ps == nil {
		return nil
	}
	if err := b.ps.Unsubscribe(ctx, ch); err != nil {
		return fmt.Errorf("unsubscribe %s: %w", ch, err)
	}
	return nil
}

// receiveTimeout is how long the receive loop waits before it pings; a ping
// unanswered for as long again means a half-open connection, replaced.
const receiveTimeout = 10 * time.Second

// Run receives until ctx ends, reconnecting with backoff. It returns
// ctx.Err() after the connection is closed.
func (b *Bell) Run(ctx context.Context) error {
	b.open(ctx)
	// A blocked receive does not watch ctx; closing the connection ends it.
	closeConn := func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.closed = true
		if b.ps != nil {
			b.ps.Close()
			b.ps = nil
		}
	}
	stop := context.AfterFunc(ctx, closeConn)
	var probes sync.WaitGroup
	defer func() {
		stop()
		closeConn()
		probes.Wait() // it ends with ctx, the only way out of the loop
	}()
	if b.probe != "" {
		probes.Add(1)
		go func() { defer probes.Done(); b.probeLoop(ctx) }()
	}
	wait := retry.Exponential(50*time.Millisecond, time.Second)
	pinged := false
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		ps := b.current()
		if ps == nil {
			return ctx.Err()
		}
		msg, err := ps.ReceiveTimeout(ctx, receiveTimeout)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if pinged {
					// No pong for a whole timeout: the connection is
					// half-open. Start over; Subscribed catches up.
					b.reopen(ctx)
					pinged = false
					continue
				}
				pinged = true
				_ = ps.Ping(ctx)
				continue
			}
			// The connection broke (or the probe replaced it); go-redis
			// redials and resubscribes on the next receive, reported as
			// Subscribed.
			b.setLive("", false)
			b.probing.Store(false)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait.NextBackOff()):
			}
			continue
		}
		wait.Reset()
		pinged = false
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				if ws, ok := workspaceOfChannel(m.Channel); ok {
					b.setLive(m.Channel, true)
					b.h.Subscribed(ws)
				} else if m.Channel == b.probe && ps == b.current() {
					b.probing.Store(true)
				}
			}
		case *redis.Message:
			ws, ok := workspaceOfChannel(m.Channel)
			if !ok {
				continue
			}
			if strings.HasPrefix(m.Payload, SignalPrefix) {
				b.h.Signal(ws, m.Payload[len(SignalPrefix):])
				continue
			}
			ev, gen, err := DecodeNotice(m.Payload)
			if err != nil {
				continue // not ours; the stream stays the truth
			}
			b.h.Ring(ws, ev, gen)
		}
	}
}

func (b *Bell) open(ctx context.Context) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ps = b.rdb.Subscribe(ctx, b.channelsLocked()...)
}

func (b *Bell) current() *redis.PubSub {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ps
}

// setLive records a confirmed channel, or with "" forgets them all (the
// connection broke).
func (b *Bell) setLive(ch string, live bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if ch == "" {
		clear(b.live)
		return
	}
	if _, wanted := b.want[ch]; wanted && live {
		b.live[ch] = true
	}
}

// reopen replaces the connection with a new one subscribed to everything
// wanted; closing the old one ends a receive blocked on it.
func (b *Bell) reopen(ctx context.Context) {
	b.mu.Lock()
	clear(b.live)
	b.probing.Store(false)
	if b.closed {
		b.mu.Unlock()
		return
	}
	old := b.ps
	b.ps = b.rdb.Subscribe(ctx, b.channelsLocked()...)
	b.mu.Unlock()
	old.Close()
}

func (b *Bell) channelsLocked() []string {
	chs := make([]string, 0, len(b.want)+1)
	for ch := range b.want {
		chs = append(chs, ch)
	}
	if b.probe != "" {
		chs = append(chs, b.probe)
	}
	return chs
}

// probeLoop publishes to the bell's own channel every probeInterval and
// starts over when nobody heard it where the client publishes.
func (b *Bell) probeLoop(ctx context.Context) {
	t := time.NewTicker(probeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !b.probing.Load() {
			continue // not (yet) subscribed on this connection
		}
		n, err := b.rdb.Publish(ctx, b.probe, "probe").Result()
		if err != nil || n > 0 || !b.probing.Load() {
			continue
		}
		b.reopen(ctx)
	}
}

// DecodeNotice parses a doorbell message written by the append script:
// session id, eventIndex, generation, createdAt, type, epoch, source, the
// entry's tag and body, separated by newlines (the body is compact JSON and
// comes last). A message without the tag (from a script before tags) is
// read too.
func DecodeNotice(p string) (Event, string, error) {
	var f [7]string
	for i := range f {
		j := strings.IndexByte(p, '\n')
		if j < 0 {
			return Event{}, "", errors.New("notice: too few fields")
		}
		f[i], p = p[:j], p[j+1:]
	}
	idx, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil || idx == 0 || !model.ValidGen(f[2]) {
		return Event{}, "", errors.New("notice: bad position")
	}
	ts, err := strconv.ParseInt(f[3], 10, 64)
	if err != nil {
		return Event{}, "", errors.New("notice: bad time")
	}
	ep, err := strconv.ParseUint(f[5], 10, 64)
	if err != nil {
		return Event{}, "", errors.New("notice: bad epoch")
	}
	var tag string
	if j := strings.IndexByte(p, '\n'); j >= 0 {
		if !model.ValidTag(p[:j]) {
			return Event{}, "", errors.New("notice: bad tag")
		}
		tag, p = p[:j], p[j+1:]
	}
	ev := Event{
		ID:        string(Cursor{Gen: f[2], Index: idx, Tag: tag}.AppendText(nil)),
		Tag:       tag,
		Index:     idx,
		SessionID: f[0],
		CreatedAt: ts,
		Type:      f[4],
		Epoch:     ep,
		Source:    f[6],
		Body:      []byte(p),
	}
	return ev, f[2], nil
}

// Signal publishes msg on ws's doorbell as a signal.
func Signal(ctx context.Context, rdb redis.UniversalClient, ws, msg string) error {
	if err := rdb.Publish(ctx, NotifyChannel(ws), SignalPrefix+msg).Err(); err != nil {
		return redisErr("signal "+ws, err)
	}
	return nil
}
