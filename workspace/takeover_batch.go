package workspace

import "context"

// takeOverBatch is how many session records a takeover reads at once.
const takeOverBatch = 100

// eachSession calls fn with every session of the workspace, oldest first,
// reading the records takeOverBatch at a time (one pipelined round trip
// per page instead of one call per session) and each session's stream
// state as it goes; it stops at the first error.
func (o *owner) eachSession(ctx context.Context, fn func(*session) error) error {
	after, afterID := int64(-1), ""
	for {
		recs, next, nextID, err := o.m.store.ListSessions(ctx, o.ws, after, afterID, takeOverBatch)
		if err != nil {
			return err
		}
		for _, rec := range recs {
			s, err := o.sessionFrom(ctx, rec)
			if err != nil {
				return err
			}
			if err := fn(s); err != nil {
				return err
			}
		}
		if next < 0 || len(recs) == 0 {
			return nil
		}
		after, afterID = next, nextID
	}
}
