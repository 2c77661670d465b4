package workspace

import (
	"context"
	"fmt"
)

// readNew reads up to count inbox entries this owner has not received
// yet: first those delivered to its consumer in a reply it never got (a
// read whose reply was lost), then new ones (eventlog's ReadInbox). It
// fails with a stale-writer error when the owner's epoch is no longer the
// fence; an empty inbox is no entry and no error. The owner's high-water
// mark moves past what is returned.
func (o *owner) readNew(ctx context.Context, count int) ([]inboxEntry, error) {
	msgs, err := o.m.store.ReadInbox(ctx, o.ws, o.epoch, o.consumer, count, o.received)
	if err != nil {
		return nil, fmt.Errorf("read inbox %s: %w", o.ws, err)
	}
	o.receivedUpTo(msgs)
	return msgs, nil
}

// receivedUpTo moves the owner's high-water mark of received inbox
// entries past msgs.
func (o *owner) receivedUpTo(msgs []inboxEntry) {
	for _, m := range msgs {
		if idAfter(m.ID, o.received) {
			o.received = m.ID
		}
	}
}
