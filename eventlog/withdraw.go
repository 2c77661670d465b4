package eventlog

import (
	"context"
	"fmt"

	"github.com/tandem-dev/tandem/eventlog/model"
)

// Withdraw withdraws prompt w.ID of session w.Session unless it was
// dispatched (lua/withdraw.lua): one step against the owner's dispatch
// record, so a withdrawn prompt is never dispatched (the append of its
// dispatch fails with ErrWithdrawn) and a dispatched one is never
// withdrawn. A withdrawal appends prompt.withdrawn to the workspace
// stream; already reports one withdrawn before (nothing appended).
func (s *Store) Withdraw(ctx context.Context, ws string, w model.Withdraw) (status model.WithdrawStatus, already bool, err error) {
	if err := checkIDs(ws, w.Session); err != nil {
		return "", false, err
	}
	admin := "0"
	if w.Admin {
		admin = "1"
	}
	res, err := s.runStrings(ctx, withdrawScript,
		[]string{MetaKey(ws), InboxKey(ws), StateKey(ws, w.Session), WorkspaceStreamKey(ws), WorkspaceStateKey(ws), FenceKey(ws)},
		w.ID, w.Session, w.User, admin, NotifyChannel(ws), s.cfg.workspaceMaxLen(), newToken()[:tagLen])
	if err != nil {
		return "", false, unavailable("withdraw "+w.ID, err)
	}
	if len(res) != 2 {
		return "", false, fmt.Errorf("withdraw %s: unexpected reply %v", w.ID, res)
	}
	return model.WithdrawStatus(res[0]), res[1] == "1", nil
}
