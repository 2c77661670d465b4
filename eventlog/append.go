package eventlog

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tandem-dev/tandem/eventlog/model"
)

// Config configures a Log. The zero value is valid.
type Config struct {
	// MaxLen trims each session stream to about this many entries (XADD
	// MAXLEN ~). 0, the default, keeps every entry: the stream is the
	// conversation's history.
	MaxLen int64
	// WaitReplicas, when above 0, makes every append wait until that many
	// replicas of the workspace's master have it (Redis WAIT), for at most
	// WaitTimeout (default 1s); after that the append returns anyway (see
	// wait.go). 0, the default, does not wait: replication is
	// asynchronous.
	WaitReplicas int
	WaitTimeout  time.Duration
	// WorkspaceMaxLen trims each workspace stream to about this many
	// entries (0: model.DefaultWorkspaceMaxLen); it is always bounded.
	WorkspaceMaxLen int64
}

// workspaceMaxLen is the bound of workspace streams.
func (c Config) workspaceMaxLen() int64 {
	if c.WorkspaceMaxLen > 0 {
		return c.WorkspaceMaxLen
	}
	return model.DefaultWorkspaceMaxLen
}

// Validate reports whether the configuration can be used.
func (c Config) Validate() error {
	if c.MaxLen < 0 || c.WorkspaceMaxLen < 0 {
		return fmt.Errorf("eventlog: MaxLen %d is negative", c.MaxLen)
	}
	if c.WaitReplicas < 0 || c.WaitTimeout < 0 {
		return fmt.Errorf("eventlog: WaitReplicas %d and WaitTimeout %v must not be negative", c.WaitReplicas, c.WaitTimeout)
	}
	return nil
}

// Log reads and writes session streams in Redis.
type Log struct {
	rdb redis.UniversalClient
	cfg Config
	obs func(records int, stale bool, err error)

	underReplicated atomic.Uint64 // appends that returned before WaitReplicas had them
	pipe            pipeline
}

// SetObserver sets a hook called after every append call with its number
// of records and outcome (for metrics). Call it before the Log is used.
func (l *Log) SetObserver(fn func(records int, stale bool, err error)) { l.obs = fn }

// New returns a Log on rdb, which may be a single node, a Sentinel-managed
// or a Cluster client.
func New(rdb redis.UniversalClient, cfg Config) *Log {
	l := &Log{rdb: rdb, cfg: cfg}
	l.pipe.calls = make(chan *pipeCall, 4*maxPipeline)
	l.pipe.stopped = make(chan struct{})
	return l
}

// Client returns the Redis client the log uses.
func (l *Log) Client() redis.UniversalClient { return l.rdb }

// AcquireEpoch makes the caller the workspace's writer: it sets the fence
// to a new epoch and returns it. Every append with an older epoch fails
// from now on with ErrStaleWriter. Call it only while holding the
// workspace's lock.
//
// Epochs are unique, not only increasing (lua/acquire_epoch.lua): an
// acquisition that a failover or a lossy restart lost is never handed out
// again, so two writers never pass the same fence check.
func (l *Log) AcquireEpoch(ctx context.Context, ws string) (uint64, error) {
	if err := checkIDs(ws); err != nil {
		return 0, err
	}
	var b [2]byte
	_, _ = rand.Read(b[:])
	r := int(b[0])<<3 | int(b[1]&7) // 0..2047
	// With WaitReplicas the new epoch is replicated before it is used.
	var n uint64
	err := l.durablyIf(ctx, FenceKey(ws), func(c redis.Cmdable) error {
		var err error
		n, err = acquireEpochScript.Run(ctx, c, []string{FenceKey(ws)}, r).Uint64()
		return err
	})
	if err != nil {
		return 0, redisErr(fmt.Sprintf("acquire epoch %s", ws), err)
	}
	return n, nil
}

// durablyIf is durably when the log waits for replicas, else a plain call.
func (l *Log) durablyIf(ctx context.Context, key string, fn func(redis.Cmdable) error) error {
	if l.cfg.WaitReplicas <= 0 {
		return fn(l.rdb)
	}
	return l.durably(ctx, key, fn)
}

// CurrentEpoch returns the workspace's fencing epoch, 0 when none was ever
// acquired.
func (l *Log) CurrentEpoch(ctx context.Context, ws string) (uint64, error) {
	if err := checkIDs(ws); err != nil {
		return 0, err
	}
	n, err := l.rdb.Get(ctx, FenceKey(ws)).Uint64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("epoch %s: %w", ws, err)
	}
	return n, nil
}

// appendScript (lua/append.lua) is the only writer of session streams. One call appends to
// one or more streams (parts) of one workspace.
//
// KEYS[1] fence, then per part: stream, stream state.
// ARGV[1] epoch, ARGV[2] notify channel, ARGV[3] maxlen (0: no trim),
// ARGV[4] the call's token, then per part: session id, the head its writer
// saw acknowledged ("" for none), the inbox id it dispatches (""), number
// of state fields, the state fields as name, value pairs, number of
// records, then per record: type, body, source.
//
// It returns {createdAt ms, then per part: gen, first eventIndex, records
// skipped}. Nothing is written unless the fence matches, every part's head
// is at most the stream's (else TANDEMREWOUND: Redis lost acknowledged
// writes) and no part dispatches a prompt dispatched already (TANDEMDUP).
// The "#!lua" shebang (Redis 7) makes Redis check for out-of-memory before
// the script starts rather than at its first write, and the ids of a part
// strictly increase from its stored head, so only a part's first XADD can
// fail (a key of the wrong type, or a stream that something other than
// this script wrote): with one part, the call lands whole or not at all.
//
// Appends are idempotent by content, whatever the order in which calls
// reach Redis (one pipeline, or WAIT mode's connection per call, or bytes
// held back on one connection while a retry went on another):
//   - records with an ACP source position (SSE ids 1, 2, 3… per
//     connection, the state's conn) at or below the stored one are in the
//     stream already: they are skipped, with the records without a position
//     right after them (what the ingest derived from them), and reported
//     as skipped; a part all of whose records were skipped leaves the
//     state as it is;
//   - a part that dispatches a prompt (Part.Dispatch) the state names as
//     dispatched (its last_inbox, or one of the latest 64) is refused.
//
// A call that landed also leaves its token and reply in its first part's
// state (fields tok and rcpt): the same call run again (go-redis resends a
// command whose reply was lost) returns that reply and appends nothing.
//
// Each entry keeps the first 6 characters of its call's token (field tk),
// which its cursor carries (Cursor.Tag): see read.go.
// The script itself is lua/append.lua.

// maxBatch bounds the records of one Append: the script's argument list
// and the time it holds Redis stay small.
const maxBatch = 512

// Append appends recs, in order, to the session stream as writer epoch, and
// rings the workspace's doorbell once per entry. It returns the appended
// events. It fails with ErrStaleWriter when epoch is not the current fence,
// and with ErrInvalidRecord for a record it refuses; in both cases nothing
// was appended.
func (l *Log) Append(ctx context.Context, ws, sid string, epoch uint64, recs ...Record) ([]Event, error) {
	return l.AppendState(ctx, ws, sid, epoch, nil, recs...)
}

// AppendState is Append that also sets fields of the stream's state hash in
// the same atomic step, so that what a writer must remember about the
// stream (the ACP connection it ingests, the turn in flight) is never out
// of step with the stream. Field names are [a-z_]+, not n, gen, src, tok or
// rcpt, which the script owns (src may only be cleared, set to "": a writer
// that starts on a new source); an empty value is stored as such. With no
// record, only the state is written.
func (l *Log) AppendState(ctx context.Context, ws, sid string, epoch uint64, state map[string]string, recs ...Record) ([]Event, error) {
	if len(recs) == 0 && len(state) == 0 {
		return nil, nil
	}
	evs, err := l.AppendParts(ctx, ws, epoch, []Part{{Session: sid, State: state, Records: recs}})
	if err != nil {
		return nil, err
	}
	return evs[0], nil
}

// maxParts bounds the streams one call writes.
const maxParts = 64

// AppendParts appends to several session streams of one workspace in one
// script call: a writer with several busy sessions pays one round trip.
// Each part is applied as AppendState applies it, in order; the events of
// part i are the i-th result. It fails as Append does, and then nothing
// was appended.
func (l *Log) AppendParts(ctx context.Context, ws string, epoch uint64, parts []Part) ([][]Event, error) {
	return l.appendParts(ctx, ws, epoch, parts, newToken())
}

// newToken names one append call for its receipt.
func newToken() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// appendParts is AppendParts with the call's token.
func (l *Log) appendParts(ctx context.Context, ws string, epoch uint64, parts []Part, token string) ([][]Event, error) {
	total := 0
	for _, p := range parts {
		total += len(p.Records)
	}
	if len(parts) == 0 || len(parts) > maxParts || total > maxBatch {
		return nil, fmt.Errorf("%w: %d parts of %d records, at most %d parts and %d records", ErrInvalidRecord, len(parts), total, maxParts, maxBatch)
	}
	if err := checkIDs(ws); err != nil {
		return nil, err
	}
	keys := make([]string, 0, 1+2*len(parts))
	keys = append(keys, FenceKey(ws))
	args := make([]any, 0, 4+4*len(parts)+3*total)
	maxlen := strconv.FormatInt(l.cfg.MaxLen, 10) + "/" + strconv.FormatInt(l.cfg.workspaceMaxLen(), 10)
	args = append(args, strconv.FormatUint(epoch, 10), NotifyChannel(ws), maxlen, token)
	bodies := make([][][]byte, len(parts))
	for pi, p := range parts {
		if err := checkIDs(ws, p.Session); err != nil {
			return nil, err
		}
		keys = append(keys, StreamKey(ws, p.Session), StateKey(ws, p.Session))
		head := ""
		if p.Head > 0 {
			head = strconv.FormatUint(p.Head, 10)
		}
		args = append(args, p.Session, head, p.Dispatch, len(p.State))
		for k, v := range p.State {
			if !validStateField(k) && !(k == "src" && v == "") {
				return nil, fmt.Errorf("%w: state field %q", ErrInvalidRecord, k)
			}
			args = append(args, k, v)
		}
		args = append(args, len(p.Records))
		bodies[pi] = make([][]byte, len(p.Records))
		for i := range p.Records {
			b, err := p.Records[i].NormalizeFor(p.Session)
			if err != nil {
				return nil, err
			}
			bodies[pi][i] = b
			args = append(args, p.Records[i].Type, b, p.Records[i].Source)
		}
	}
	res, err := l.runAppend(ctx, keys, args)
	if l.obs != nil {
		l.obs(total, isStale(err), err)
	}
	if err != nil {
		return nil, redisErr(fmt.Sprintf("append %s", tag(ws)), err)
	}
	if len(res) != 1+3*len(parts) {
		return nil, fmt.Errorf("append %s: unexpected reply %v", tag(ws), res)
	}
	now, _ := res[0].(int64)
	out := make([][]Event, len(parts))
	etag := token[:min(len(token), tagLen)]
	for pi, p := range parts {
		gen, _ := res[1+3*pi].(string)
		first, _ := res[2+3*pi].(int64)
		skip, _ := res[3+3*pi].(int64)
		if skip < 0 || int(skip) > len(p.Records) {
			return nil, fmt.Errorf("append %s: unexpected reply %v", tag(ws), res)
		}
		recs := p.Records[skip:]
		evs := make([]Event, len(recs))
		for i := range recs {
			idx := uint64(first) + uint64(i)
			evs[i] = Event{
				ID:        string(Cursor{Gen: gen, Index: idx, Tag: etag}.AppendText(nil)),
				Index:     idx,
				SessionID: p.Session,
				CreatedAt: now,
				Type:      recs[i].Type,
				Body:      bodies[pi][int(skip)+i],
				Source:    recs[i].Source,
				Epoch:     epoch,
				Tag:       etag,
			}
		}
		out[pi] = evs
	}
	return out, nil
}

// tagLen is how much of a call's token its entries keep (lua/append.lua).
const tagLen = 6

// validStateField reports whether a writer may set state field k. The
// script owns n, gen, src, tok, rcpt and disp, and reads two of the
// writer's fields: conn (the connection source positions count on) and
// last_inbox (the newest prompt dispatched).
func validStateField(k string) bool {
	if k == "" || len(k) > 32 || k == "n" || k == "gen" || k == "src" || k == "tok" || k == "rcpt" || k == "disp" || k == "wd" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if (k[i] < 'a' || k[i] > 'z') && k[i] != '_' {
			return false
		}
	}
	return true
}
