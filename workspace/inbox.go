package workspace

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
	"github.com/tandem-dev/tandem/eventlog"
)

// inboxReadScript reads new inbox entries into the caller's consumer, but
// only while the caller's epoch is the workspace's fence. An owner that
// lost the workspace without noticing yet (paused past its lock's expiry,
// or cut off) must not take entries: they would sit in its pending list,
// where the owner that replaced it never looks (it claims pending entries
// once, when it takes over), and the next owner to claim them would find
// the session's last dispatched prompt past them and take them for done.
// The fence check and the read are one step, so an entry is read either
// before the new owner's epoch exists (and the new owner claims it) or by
// the new owner itself.
//
// KEYS[1] fence, KEYS[2] inbox; ARGV[1] epoch, ARGV[2] group, ARGV[3]
// consumer, ARGV[4] count. It returns XREADGROUP's reply.
var inboxReadScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('TANDEMSTALE')
end
return redis.call('XREADGROUP', 'GROUP', ARGV[2], ARGV[3], 'COUNT', ARGV[4], 'STREAMS', KEYS[2], '>')
`)

// readNew reads up to count inbox entries no consumer has read yet, as
// this owner's consumer. It fails with ErrNotOwner when the owner's epoch
// is no longer the fence; an empty inbox is no entry and no error.
func (o *owner) readNew(ctx context.Context, count int) ([]redis.XMessage, error) {
	res, err := inboxReadScript.Run(ctx, o.m.rdb, []string{eventlog.FenceKey(o.ws), inboxKey(o.ws)},
		o.epoch, consumerGroup, o.consumer, count).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		if strings.Contains(err.Error(), "TANDEMSTALE") {
			return nil, fmt.Errorf("read inbox %s: %w", o.ws, ErrNotOwner)
		}
		return nil, fmt.Errorf("read inbox %s: %w", o.ws, err)
	}
	return parseReadReply(res)
}

// parseReadReply turns XREADGROUP's reply for one stream into messages.
func parseReadReply(res any) ([]redis.XMessage, error) {
	streams, ok := res.([]any)
	if !ok {
		return nil, fmt.Errorf("read inbox: unexpected reply %T", res)
	}
	var out []redis.XMessage
	for _, s := range streams {
		st, ok := s.([]any)
		if !ok || len(st) != 2 {
			return nil, fmt.Errorf("read inbox: unexpected stream reply %v", s)
		}
		msgs, _ := st[1].([]any)
		for _, m := range msgs {
			mv, ok := m.([]any)
			if !ok || len(mv) != 2 {
				return nil, fmt.Errorf("read inbox: unexpected entry %v", m)
			}
			id, _ := mv[0].(string)
			fields, _ := mv[1].([]any)
			vals := make(map[string]any, len(fields)/2)
			for i := 0; i+1 < len(fields); i += 2 {
				k, _ := fields[i].(string)
				vals[k] = fields[i+1]
			}
			out = append(out, redis.XMessage{ID: id, Values: vals})
		}
	}
	return out, nil
}
