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

// takeQuota takes one command of kind from the caller's bucket in the
// route's workspace; called once the request is known to be well formed,
// so that a refused bad request takes nothing.
func (s *Server) takeQuota(c echo.Context, kind string) error {
	if s.deps.Quotas == nil || s.cfg.CommandRate < 0 {
		return nil
	}
	rate, burst := s.cfg.CommandRate, s.cfg.CommandBurst
	if rate == 0 {
		rate = defaultCommandRate
	}
	if burst == 0 {
		burst = defaultCommandBurst
	}
	wait, err := s.deps.Quotas.TakeQuota(c.Request().Context(), c.Param("ws"), kind, principal(c).User, rate, burst)
	if err != nil {
		return err
	}
	if wait > 0 {
		return &commandRateError{kind: kind, retryAfter: wait}
	}
	return nil
}
