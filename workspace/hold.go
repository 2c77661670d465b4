package workspace

import (
	"context"
	"fmt"
	"time"
)

// Hold makes this node the owner of ws, if nobody owns it, and keeps its
// owner from letting it go idle until release is called. It returns the
// owner's fencing epoch: appends made with it (Log.Append) land only while
// this node stays the owner. It fails with ErrNotOwner when another node
// owns ws. The load tool's append route is built on it.
func (m *Manager) Hold(ctx context.Context, ws string) (epoch uint64, release func(), err error) {
	if err := m.Exists(ctx, ws); err != nil {
		return 0, nil, err
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		m.mu.Lock()
		o := m.owners[ws]
		if o != nil {
			o.holds.Add(1)
		}
		m.mu.Unlock()
		if o != nil {
			return o.epoch, func() { o.lastHeld.Store(time.Now().UnixNano()); o.holds.Add(-1) }, nil
		}
		m.Demand(ws)
		if time.Now().After(deadline) {
			return 0, nil, fmt.Errorf("%s: %w", ws, ErrNotOwner)
		}
		select {
		case <-ctx.Done():
			return 0, nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
