package eventlog

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// MaxPage bounds the events one Read returns.
const MaxPage = 1000

// Read returns up to limit events strictly after cursor after, oldest
// first, together with the stream's head. When the cursor cannot be resumed
// exactly it returns a *ResetError wrapping ErrCursorExpired (events after
// it were trimmed), ErrCursorUnknown (it names another generation or a
// position past the head) or ErrCursorRewritten (its tag names an entry
// the stream no longer holds at its index); the ResetError says where to
// continue.
func (l *Log) Read(ctx context.Context, ws, sid string, after Cursor, limit int) ([]Event, Cursor, error) {
	if err := checkIDs(ws, sid); err != nil {
		return nil, Cursor{}, err
	}
	if limit <= 0 || limit > MaxPage {
		limit = MaxPage
	}
	key := StreamKey(ws, sid)
	// A tagged cursor's own entry is read too, to check that it is still
	// the one the client saw.
	start, count := after.Index+1, limit
	checked := after.Tag != "" && !after.IsZero()
	if checked {
		start, count = after.Index, limit+1
	}
	var st *redis.SliceCmd
	var rng *redis.Cmd
	// The head and the range are read in one transaction, so that the
	// generation they are judged by is the one the entries belong to.
	_, err := l.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		st = p.HMGet(ctx, StateKey(ws, sid), "n", "gen")
		rng = p.Do(ctx, "XRANGE", key, streamID(start), "+", "COUNT", count)
		return nil
	})
	if err != nil {
		return nil, Cursor{}, redisErr(fmt.Sprintf("read %s", key), err)
	}
	head, err := parseState(st.Val())
	if err != nil {
		return nil, Cursor{}, fmt.Errorf("read %s: %w", key, err)
	}
	if !after.IsZero() && (after.Gen != head.Gen || after.Index > head.Index) {
		return nil, head, l.reset(ctx, ws, sid, ErrCursorUnknown, head)
	}
	evs, err := decodeRange(sid, head.Gen, rng.Val(), false)
	if err != nil {
		return nil, head, fmt.Errorf("read %s: %w", key, err)
	}
	if checked && len(evs) > 0 && evs[0].Index == after.Index {
		// The cursor's entry: one written after a rewind holds its index
		// under another tag. (Entries from before tags have none: the
		// cursor came from elsewhere.)
		if evs[0].Tag != after.Tag {
			return nil, head, l.reset(ctx, ws, sid, ErrCursorRewritten, head)
		}
		evs = evs[1:]
	}
	// Otherwise the cursor's entry was trimmed (MAXLEN): what follows it
	// is judged as for an untagged cursor.
	if len(evs) > limit {
		evs = evs[:limit]
	}
	if len(evs) > 0 {
		if evs[0].Index != after.Index+1 {
			return nil, head, l.reset(ctx, ws, sid, ErrCursorExpired, head)
		}
	} else if after.Index < head.Index {
		return nil, head, l.reset(ctx, ws, sid, ErrCursorExpired, head)
	}
	return evs, head, nil
}

// reset builds the ResetError for a cursor that cannot be resumed: the
// stream continues at its oldest retained event.
func (l *Log) reset(ctx context.Context, ws, sid string, reason error, head Cursor) error {
	msgs, err := l.rdb.XRangeN(ctx, StreamKey(ws, sid), "-", "+", 1).Result()
	if err != nil {
		return redisErr(fmt.Sprintf("read %s: oldest", StreamKey(ws, sid)), err)
	}
	re := &ResetError{Reason: reason, Continue: Cursor{Gen: head.Gen}}
	if len(msgs) > 0 {
		first, err := indexOf(msgs[0].ID)
		if err != nil {
			return fmt.Errorf("read %s: %w", StreamKey(ws, sid), err)
		}
		tag, _ := msgs[0].Values["tk"].(string)
		re.Oldest = Cursor{Gen: head.Gen, Index: first, Tag: tag}
		re.Continue.Index = first - 1
	}
	return re
}

// Head returns the cursor of the last event of the session stream; the zero
// Cursor (with an empty Gen) when nothing was ever appended.
func (l *Log) Head(ctx context.Context, ws, sid string) (Cursor, error) {
	if err := checkIDs(ws, sid); err != nil {
		return Cursor{}, err
	}
	v, err := l.rdb.HMGet(ctx, StateKey(ws, sid), "n", "gen").Result()
	if err != nil {
		return Cursor{}, redisErr(fmt.Sprintf("head %s", StreamKey(ws, sid)), err)
	}
	return parseState(v)
}

// SourcePosition returns the source position stored by the last append that
// carried one, and "" when none did.
func (l *Log) SourcePosition(ctx context.Context, ws, sid string) (string, error) {
	if err := checkIDs(ws, sid); err != nil {
		return "", err
	}
	v, err := l.rdb.HGet(ctx, StateKey(ws, sid), "src").Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("source position %s: %w", StreamKey(ws, sid), err)
	}
	return v, nil
}

// State returns the stream's state hash: n (head index), gen, src and the
// fields writers set with AppendState. It is empty for a stream never
// written.
func (l *Log) State(ctx context.Context, ws, sid string) (map[string]string, error) {
	if err := checkIDs(ws, sid); err != nil {
		return nil, err
	}
	m, err := l.rdb.HGetAll(ctx, StateKey(ws, sid)).Result()
	if err != nil {
		return nil, redisErr(fmt.Sprintf("state %s", StreamKey(ws, sid)), err)
	}
	return m, nil
}

// Last returns up to n of the newest events, oldest first, and the head,
// read atomically.
func (l *Log) Last(ctx context.Context, ws, sid string, n int) ([]Event, Cursor, error) {
	if err := checkIDs(ws, sid); err != nil {
		return nil, Cursor{}, err
	}
	key := StreamKey(ws, sid)
	var st *redis.SliceCmd
	var rng *redis.Cmd
	_, err := l.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		st = p.HMGet(ctx, StateKey(ws, sid), "n", "gen")
		rng = p.Do(ctx, "XREVRANGE", key, "+", "-", "COUNT", n)
		return nil
	})
	if err != nil {
		return nil, Cursor{}, redisErr(fmt.Sprintf("last %s", key), err)
	}
	head, err := parseState(st.Val())
	if err != nil {
		return nil, Cursor{}, fmt.Errorf("last %s: %w", key, err)
	}
	evs, err := decodeRange(sid, head.Gen, rng.Val(), true)
	if err != nil {
		return nil, head, fmt.Errorf("last %s: %w", key, err)
	}
	return evs, head, nil
}

// Before returns up to n events older than eventIndex before (0: the
// newest), newest first. An empty page means the stream has nothing older
// (it starts there, or was trimmed up to there).
func (l *Log) Before(ctx context.Context, ws, sid string, before uint64, n int) ([]Event, error) {
	if err := checkIDs(ws, sid); err != nil {
		return nil, err
	}
	key := StreamKey(ws, sid)
	end := "+"
	if before > 0 {
		if before == 1 {
			return nil, nil
		}
		end = streamID(before - 1)
	}
	if n <= 0 || n > MaxPage {
		n = MaxPage
	}
	reply, err := l.rdb.Do(ctx, "XREVRANGE", key, end, "-", "COUNT", n).Result()
	if err != nil {
		return nil, redisErr(fmt.Sprintf("before %s", key), err)
	}
	evs, err := decodeRange(sid, "", reply, false)
	if err != nil {
		return nil, fmt.Errorf("before %s: %w", key, err)
	}
	return evs, nil
}

func streamID(idx uint64) string { return strconv.FormatUint(idx, 10) + "-0" }

func indexOf(id string) (uint64, error) {
	ms, seq, ok := strings.Cut(id, "-")
	if !ok || seq != "0" {
		return 0, fmt.Errorf("entry id %q was not written by the append script", id)
	}
	n, err := strconv.ParseUint(ms, 10, 64)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("entry id %q was not written by the append script", id)
	}
	return n, nil
}

func parseState(v []any) (Cursor, error) {
	var c Cursor
	if len(v) != 2 {
		return c, fmt.Errorf("state: unexpected reply %v", v)
	}
	if s, ok := v[0].(string); ok {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return c, fmt.Errorf("state: head %q: %w", s, err)
		}
		c.Index = n
	}
	if s, ok := v[1].(string); ok {
		c.Gen = s
	}
	return c, nil
}

// decodeRange decodes an XRANGE or XREVRANGE reply straight into events,
// oldest first, without go-redis's map per entry: replays read thousands.
func decodeRange(sid, gen string, reply any, reverse bool) ([]Event, error) {
	if reply == nil {
		return nil, nil
	}
	entries, ok := reply.([]any)
	if !ok {
		return nil, fmt.Errorf("unexpected range reply %T", reply)
	}
	evs := make([]Event, len(entries))
	for i, e := range entries {
		pair, ok := e.([]any)
		if !ok || len(pair) != 2 {
			return nil, fmt.Errorf("unexpected entry %v", e)
		}
		id, _ := pair[0].(string)
		idx, err := indexOf(id)
		if err != nil {
			return nil, err
		}
		fields, _ := pair[1].([]any)
		ev := Event{Index: idx, SessionID: sid}
		for j := 0; j+1 < len(fields); j += 2 {
			k, _ := fields[j].(string)
			v, _ := fields[j+1].(string)
			switch k {
			case "t":
				ev.Type = v
			case "d":
				ev.Body = []byte(v)
			case "ts":
				ev.CreatedAt, _ = strconv.ParseInt(v, 10, 64)
			case "ep":
				ev.Epoch, _ = strconv.ParseUint(v, 10, 64)
			case "src":
				ev.Source = v
			case "tk":
				ev.Tag = v
			}
		}
		if ev.Type == "" {
			return nil, fmt.Errorf("entry %s has no type", id)
		}
		ev.ID = string(Cursor{Gen: gen, Index: idx, Tag: ev.Tag}.AppendText(make([]byte, 0, 32)))
		if reverse {
			evs[len(entries)-1-i] = ev
		} else {
			evs[i] = ev
		}
	}
	return evs, nil
}
