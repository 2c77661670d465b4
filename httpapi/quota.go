package httpapi

import (
	"context"
	"fmt"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/tandem-dev/tandem/workspace"
)

// Quotas rate-limits the commands members send a workspace, per user and
// workspace, in Redis so that the limit holds across nodes
// (eventlog.Log.TakeQuota). Prompts have their own rate, taken with the
// prompt itself (TANDEM_PROMPT_RATE).
type Quotas interface {
	TakeQuota(ctx context.Context, ws, kind, user string, rate float64, burst int) (time.Duration, error)
	RefundQuota(ctx context.Context, ws, kind, user string, rate float64, burst int) error
}

// The command kinds a quota counts, one bucket each: creating or
// resuming a session (each live session is an agent process in the
// sandbox), cancelling, destroying a session, deleting a workspace.
const (
	quotaOpen           = "open"
	quotaCancel         = "cancel"
	quotaDestroy        = "destroy"
	quotaDeleteWS       = "delete_ws"
	defaultCommandRate  = 1.0
	defaultCommandBurst = 20
)

// commandRateError is a command refused by its quota: 429 rate_limited
// with Retry-After.
type commandRateError struct {
	kind       string
	retryAfter time.Duration
}

func (e *commandRateError) Error() string {
	return fmt.Sprintf("%v: %s commands, retry after %v", workspace.ErrRateLimited, e.kind, e.retryAfter)
}
func (e *commandRateError) Unwrap() error { return workspace.ErrRateLimited }

// withQuota runs fn, a command of kind, once the caller's bucket in the
// route's workspace lets it through; a command fn refuses (a workspace or
// session that does not exist, an agent not allowed...) is given back, so
// that only what is carried out counts and a refused request changes
// nothing. Called once the request is known to be well formed.
func (s *Server) withQuota(c echo.Context, kind string, fn func() error) error {
	if s.deps.Quotas == nil || s.cfg.CommandRate < 0 {
		return fn()
	}
	rate, burst := s.cfg.CommandRate, s.cfg.CommandBurst
	if rate == 0 {
		rate = defaultCommandRate
	}
	if burst == 0 {
		burst = defaultCommandBurst
	}
	ctx, ws, user := c.Request().Context(), c.Param("ws"), principal(c).User
	wait, err := s.deps.Quotas.TakeQuota(ctx, ws, kind, user, rate, burst)
	if err != nil {
		return err
	}
	if wait > 0 {
		return &commandRateError{kind: kind, retryAfter: wait}
	}
	if err := fn(); err != nil {
		if rerr := s.deps.Quotas.RefundQuota(context.WithoutCancel(ctx), ws, kind, user, rate, burst); rerr != nil {
			s.log.WarnContext(ctx, "quota refund", "kind", kind, "err", rerr)
		}
		return err
	}
	return nil
}
