package workspace

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/tandem-dev/tandem/eventlog/model"
)

// UpdateSession is eventlog's: fenced, only the configuration fields.
func (s *memStore) UpdateSession(ctx context.Context, ws, sid string, epoch uint64, fields map[string]string) error {
	for k := range fields {
		if !slices.Contains(model.SessionConfigFields, k) {
			return fmt.Errorf("update session: field %q: %w", k, model.ErrInvalidRecord)
		}
	}
	return s.do(ctx, &memCall{Method: "UpdateSession", WS: ws, Epoch: epoch}, func(d *memData) error {
		if err := d.checkFence("update session "+sid, ws, epoch); err != nil {
			return err
		}
		h := d.sessRec[skey(ws, sid)]
		if h == nil {
			h = map[string]string{}
			d.sessRec[skey(ws, sid)] = h
		}
		maps.Copy(h, fields)
		return nil
	})
}
