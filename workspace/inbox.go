package workspace

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
	"github.com/tandem-dev/tandem/eventlog"
)

// inboxReadScript reads inbox entries into the caller's consumer, but
// only while the caller's epoch is the workspace's fence. An owner that
// lost the workspace without noticing yet (paused past its lock's expiry,
// or cut off) must not take entries: they would sit in its pending list,
// where the owner that replaced it never looks (it claims pending entries
// once, when it takes over). The fence check and the read are one step,
// so an entry is read either before the new owner's epoch exists (and the
// new owner claims it) or by the new owner itself.
//
// The read is idempotent, so that a reply that never reached the owner
// (Redis killed right after the read, a connection cut, go-redis sending
// the call again) loses nothing: it first returns the entries already
// pending for this consumer after ARGV[5], the last entry the owner knows
// it received, and only when there are none reads new ones. An entry
// delivered in a lost reply is therefore delivered again by the next
// call, in inbox order, before anything newer.
//
// KEYS[1] fence, KEYS[2] inbox; ARGV[1] epoch, ARGV[2] group, ARGV[3]
// consumer, ARGV[4] count, ARGV[5] the last id received. It returns
// XREADGROUP's reply.
var inboxReadScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('TANDEMSTALE')
end
local mine = redis.call('XREADGROUP', 'GROUP', ARGV[2], ARGV[3], 'COUNT', ARGV[4], 'STREAMS', KEYS[2], ARGV[5])
if mine and mine[1] and #mine[1][2] > 0 then
  return mine
end
return redis.call('XREADGROUP', 'GROUP', ARGV[2], ARGV[3], 'COUNT', ARGV[4], 'STREAMS', KEYS[2], '>')
`)

// readNew reads up to count inbox entries this owner has not received
// yet: first those delivered to its consumer in a reply it never got,
// then new ones. It fails with ErrNotOwner when the owner's epoch is no
// longer the fence; an empty inbox is no entry and no error. The owner's
// high-water mark moves past what is returned.
func (o *owner) readNew(ctx context.Context, count int) ([]redis.XMessage, error) {
	after := o.received
	if after == "" {
		after = "0-0"
	}
	res, err := inboxReadScript.Run(ctx, o.m.rdb, []string{eventlog.FenceKey(o.ws), inboxKey(o.ws)},
		o.epoch, consumerGroup, o.consumer, count, after).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		if strings.Contains(err.Error(), "TANDEMSTALE") {
			return nil, fmt.Errorf("read inbox %s: %w", o.ws, ErrNotOwner)
		}
		return nil, fmt.Errorf("read inbox %s: %w", o.ws, err)
	}
	msgs, err := parseReadReply(res)
	if err != nil {
		return nil, err
	}
	o.receivedUpTo(msgs)
	return msgs, nil
}

// receivedUpTo moves the owner's high-water mark of received inbox
// entries past msgs.
func (o *owner) receivedUpTo(msgs []redis.XMessage) {
	for _, m := range msgs {
		if idAfter(m.ID, o.received) {
			o.received = m.ID
		}
	}
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
