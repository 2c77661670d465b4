package eventlog

import (
	"context"
	"fmt"
	"slices"

	"github.com/tandem-dev/tandem/eventlog/model"
)

// UpdateSession sets fields of a session's record (model.SessionConfigFields
// only: its modes, models, config options and wants) while epoch is the
// workspace's writer (else ErrStaleWriter).
func (s *Store) UpdateSession(ctx context.Context, ws, sid string, epoch uint64, fields map[string]string) error {
	if err := checkIDs(ws, sid); err != nil {
		return err
	}
	if len(fields) == 0 {
		return nil
	}
	args := []any{epoch}
	for _, k := range model.SessionConfigFields {
		if v, ok := fields[k]; ok {
			args = append(args, k, v)
		}
	}
	for k := range fields {
		if !slices.Contains(model.SessionConfigFields, k) {
			return fmt.Errorf("update session %s: field %q: %w", sid, k, model.ErrInvalidRecord)
		}
	}
	err := fencedHSetScript.Run(ctx, s.rdb, []string{FenceKey(ws), SessionKey(ws, sid)}, args...).Err()
	if err != nil {
		return redisErr("update session "+sid, err)
	}
	return nil
}
