package eventlog

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrStaleWriter is returned by Append when the caller's epoch is no longer
// the workspace's fencing epoch: another node became the writer. Nothing of
// the call was appended. A caller that sees it must stop acting as owner.
var ErrStaleWriter = errors.New("stale writer: fencing epoch superseded")

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
}

// Validate reports whether the configuration can be used.
func (c Config) Validate() error {
	if c.MaxLen < 0 {
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
}

// SetObserver sets a hook called after every append call with its number
// of records and outcome (for metrics). Call it before the Log is used.
func (l *Log) SetObserver(fn func(records int, stale bool, err error)) { l.obs = fn }

// New returns a Log on rdb, which may be a single node, a Sentinel-managed
// or a Cluster client.
func New(rdb redis.UniversalClient, cfg Config) *Log { return &Log{rdb: rdb, cfg: cfg} }

// Client returns the Redis client the log uses.
func (l *Log) Client() redis.UniversalClient { return l.rdb }

// AcquireEpoch makes the caller the workspace's writer: it increments the
// fence and returns the new epoch. Every append with an older epoch fails
// from now on with ErrStaleWriter. Call it only while holding the
// workspace's lock.
func (l *Log) AcquireEpoch(ctx context.Context, ws string) (uint64, error) {
	n, err := l.rdb.Incr(ctx, FenceKey(ws)).Uint64()
	if err != nil {
		return 0, redisErr(fmt.Sprintf("acquire epoch %s", ws), err)
	}
	return n, nil
}

// CurrentEpoch returns the workspace's fencing epoch, 0 when none was ever
// acquired.
func (l *Log) CurrentEpoch(ctx context.Context, ws string) (uint64, error) {
	n, err := l.rdb.Get(ctx, FenceKey(ws)).Uint64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("epoch %s: %w", ws, err)
	}
	return n, nil
}

// appendScript is the only writer of session streams.
//
// KEYS[1] fence, KEYS[2] stream, KEYS[3] stream state
// ARGV[1] epoch, ARGV[2] notify channel, ARGV[3] session id, ARGV[4] maxlen
// (0: no trim), ARGV[5] number of state fields, then the state fields as
// name, value pairs, then per record: type, body, source.
//
// It returns {gen, first eventIndex, createdAt ms}. Nothing is written
// unless the fence matches. The "#!lua" shebang (Redis 7) makes Redis check
// for out-of-memory before the script starts rather than at its first
// write, and the ids of a batch strictly increase from the stored head, so
// only the first XADD can fail (a key of the wrong type, or a stream that
// something other than this script wrote): a batch lands whole or not at all.
var appendScript = redis.NewScript(`#!lua
local fence = redis.call('GET', KEYS[1])
if fence ~= ARGV[1] then
  return redis.error_reply('TANDEMSTALE epoch ' .. ARGV[1] .. ' fence ' .. tostring(fence))
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local st = redis.call('HMGET', KEYS[3], 'n', 'gen')
local last = tonumber(st[1] or '0')
local gen = st[2]
if not gen then
  gen = string.format('%x', tonumber(t[1]) * 1000000 + tonumber(t[2]))
end
local maxlen = tonumber(ARGV[4])
local nstate = tonumber(ARGV[5])
local first = last + 1
local set = {'n', '', 'gen', gen}
for i = 6, 5 + 2 * nstate, 2 do
  set[#set + 1] = ARGV[i]
  set[#set + 1] = ARGV[i + 1]
end
local src = false
for i = 6 + 2 * nstate, #ARGV, 3 do
  last = last + 1
  local idx = string.format('%d', last)
  local fields = {'t', ARGV[i], 'd', ARGV[i + 1], 'ts', now, 'ep', ARGV[1]}
  if ARGV[i + 2] ~= '' then
    fields[#fields + 1] = 'src'
    fields[#fields + 1] = ARGV[i + 2]
    src = ARGV[i + 2]
  end
  if maxlen > 0 then
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, idx .. '-0', unpack(fields))
  else
    redis.call('XADD', KEYS[2], idx .. '-0', unpack(fields))
  end
  redis.call('PUBLISH', ARGV[2], ARGV[3] .. '\n' .. idx .. '\n' .. gen .. '\n' .. now .. '\n' .. ARGV[i] .. '\n' .. ARGV[1] .. '\n' .. ARGV[i + 2] .. '\n' .. ARGV[i + 1])
end
set[2] = string.format('%d', last)
if src then
  set[#set + 1] = 'src'
  set[#set + 1] = src
end
redis.call('HSET', KEYS[3], unpack(set))
return {gen, first, now}
`)

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
// of step with the stream. Field names are [a-z_]+, not n, gen or src,
// which the script owns; an empty value is stored as such. With no record,
// only the state is written.
func (l *Log) AppendState(ctx context.Context, ws, sid string, epoch uint64, state map[string]string, recs ...Record) ([]Event, error) {
	if len(recs) == 0 && len(state) == 0 {
		return nil, nil
	}
	if len(recs) > maxBatch {
		return nil, fmt.Errorf("%w: batch of %d records, at most %d", ErrInvalidRecord, len(recs), maxBatch)
	}
	args := make([]any, 0, 5+2*len(state)+3*len(recs))
	args = append(args, strconv.FormatUint(epoch, 10), NotifyChannel(ws), sid, l.cfg.MaxLen, len(state))
	for k, v := range state {
		if !validStateField(k) {
			return nil, fmt.Errorf("%w: state field %q", ErrInvalidRecord, k)
		}
		args = append(args, k, v)
	}
	bodies := make([][]byte, len(recs))
	for i := range recs {
		b, err := recs[i].normalize()
		if err != nil {
			return nil, err
		}
		bodies[i] = b
		args = append(args, recs[i].Type, b, recs[i].Source)
	}
	keys := []string{FenceKey(ws), StreamKey(ws, sid), StateKey(ws, sid)}
	res, err := l.runAppend(ctx, keys, args)
	if l.obs != nil {
		l.obs(len(recs), err != nil && strings.HasPrefix(err.Error(), "TANDEMSTALE"), err)
	}
	if err != nil {
		if strings.HasPrefix(err.Error(), "TANDEMSTALE") {
			return nil, fmt.Errorf("append %s: %w (%s)", StreamKey(ws, sid), ErrStaleWriter, err.Error())
		}
		return nil, redisErr(fmt.Sprintf("append %s", StreamKey(ws, sid)), err)
	}
	if len(res) != 3 {
		return nil, fmt.Errorf("append %s: unexpected reply %v", StreamKey(ws, sid), res)
	}
	gen, _ := res[0].(string)
	first, _ := res[1].(int64)
	now, _ := res[2].(int64)
	evs := make([]Event, len(recs))
	for i := range recs {
		idx := uint64(first) + uint64(i)
		evs[i] = Event{
			ID:        string(Cursor{Gen: gen, Index: idx}.AppendText(nil)),
			Index:     idx,
			SessionID: sid,
			CreatedAt: now,
			Type:      recs[i].Type,
			Body:      bodies[i],
			Source:    recs[i].Source,
			Epoch:     epoch,
		}
	}
	return evs, nil
}

func validStateField(k string) bool {
	if k == "" || len(k) > 32 || k == "n" || k == "gen" || k == "src" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if (k[i] < 'a' || k[i] > 'z') && k[i] != '_' {
			return false
		}
	}
	return true
}
