package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/tandem-dev/tandem/eventlog"
	"github.com/tandem-dev/tandem/fanout"
	"github.com/tandem-dev/tandem/sse"
	"github.com/tandem-dev/tandem/workspace"
)

// Problem is an RFC 9457 problem detail.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	// Oldest is the oldest retained cursor, on cursor_expired and
	// cursor_unknown.
	Oldest *string `json:"oldest,omitempty"`
}

// problemKind is one row of the error table.
type problemKind struct {
	code   string
	status int
	title  string
}

func (k problemKind) typeURI() string { return "urn:tandem:error:" + k.code }

// The stable problem types. Clients match on the type, never on the text.
var (
	probBadRequest       = problemKind{"bad_request", http.StatusBadRequest, "Bad request"}
	probInvalidID        = problemKind{"invalid_id", http.StatusBadRequest, "Invalid id"}
	probCursorMalformed  = problemKind{"cursor_malformed", http.StatusBadRequest, "Malformed cursor"}
	probInvalidLimit     = problemKind{"invalid_limit", http.StatusBadRequest, "Invalid limit"}
	probCursorExpired    = problemKind{"cursor_expired", http.StatusGone, "Cursor expired"}
	probCursorUnknown    = problemKind{"cursor_unknown", http.StatusGone, "Cursor unknown"}
	probHistoryRewound   = problemKind{"history_rewound", http.StatusGone, "History rewound"}
	probNotFound         = problemKind{"not_found", http.StatusNotFound, "Not found"}
	probMethodNotAllowed = problemKind{"method_not_allowed", http.StatusMethodNotAllowed, "Method not allowed"}
	probUnavailable      = problemKind{"unavailable", http.StatusServiceUnavailable, "Service unavailable"}
	probInternal         = problemKind{"internal", http.StatusInternalServerError, "Internal error"}
	probBodyTooLarge     = problemKind{"body_too_large", http.StatusRequestEntityTooLarge, "Request body too large"}
	probUnsupportedMedia = problemKind{"unsupported_media_type", http.StatusUnsupportedMediaType, "Unsupported media type"}
	probMalformedJSON    = problemKind{"malformed_json", http.StatusBadRequest, "Malformed JSON"}
	probInvalid          = problemKind{"invalid_request", http.StatusBadRequest, "Invalid request"}
	probInvalidUser      = problemKind{"invalid_user", http.StatusBadRequest, "Invalid user id"}
	probWorkspaceMissing = problemKind{"workspace_not_found", http.StatusNotFound, "Workspace not found"}
	probSessionMissing   = problemKind{"session_not_found", http.StatusNotFound, "Session not found"}
	probSessionDestroyed = problemKind{"session_destroyed", http.StatusConflict, "Session destroyed"}
	probSandboxForbidden = problemKind{"sandbox_not_allowed", http.StatusForbidden, "Sandbox not allowed"}
	probPromptTooLarge   = problemKind{"prompt_too_large", http.StatusRequestEntityTooLarge, "Prompt too large"}
	probUnauthenticated  = problemKind{"unauthenticated", http.StatusUnauthorized, "Authentication required"}
	probTokenExpired     = problemKind{"token_expired", http.StatusUnauthorized, "Token expired"}
	probForbidden        = problemKind{"forbidden", http.StatusForbidden, "Forbidden"}
	probRateLimited      = problemKind{"rate_limited", http.StatusTooManyRequests, "Too many requests"}
	probHostNotAllowed   = problemKind{"host_not_allowed", http.StatusForbidden, "Host not allowed"}
	probCrossSite        = problemKind{"cross_site_request", http.StatusForbidden, "Cross-site request refused"}
	probSessionLimit     = problemKind{"session_limit", http.StatusConflict, "Too many sessions"}
	probAgentForbidden   = problemKind{"agent_not_allowed", http.StatusForbidden, "Agent not allowed"}
	probWorkspaceLimit   = problemKind{"workspace_limit", http.StatusConflict, "Too many workspaces"}
	probWorkspaceDeleted = problemKind{"workspace_deleted", http.StatusConflict, "Workspace deleted"}
	probWorkspaceBusy    = problemKind{"workspace_busy", http.StatusConflict, "Workspace busy"}
	probInvalidEventType = problemKind{"invalid_event_type", http.StatusBadRequest, "Invalid event type"}
	probUserMismatch     = problemKind{"user_mismatch", http.StatusForbidden, "User mismatch"}
)

// The problem types of answering a permission request (permissions.go).
var (
	probPermissionMissing  = problemKind{"permission_not_found", http.StatusNotFound, "Permission request not found"}
	probPermissionResolved = problemKind{"permission_already_resolved", http.StatusConflict, "Permission request already resolved"}
	probInvalidOption      = problemKind{"invalid_option", http.StatusBadRequest, "Option not offered"}
	probUnknownAgent       = problemKind{"unknown_agent", http.StatusBadRequest, "Unknown agent"}
	probPromptMissing      = problemKind{"prompt_not_found", http.StatusNotFound, "Prompt not found"}
	probPromptDispatched   = problemKind{"prompt_dispatched", http.StatusConflict, "Prompt already dispatched"}
)

// apiError is an error that already knows its problem kind.
type apiError struct {
	kind   problemKind
	detail string
	oldest *string
}

func (e *apiError) Error() string { return e.kind.code + ": " + e.detail }

func newError(k problemKind, detail string) *apiError { return &apiError{kind: k, detail: detail} }

// errorTable maps the packages' sentinel errors to problem kinds, in order.
var errorTable = []struct {
	err  error
	kind problemKind
}{
	{eventlog.ErrCursorMalformed, probCursorMalformed},
	{eventlog.ErrCursorExpired, probCursorExpired},
	{eventlog.ErrCursorUnknown, probCursorUnknown},
	{eventlog.ErrCursorRewritten, probHistoryRewound},
	{workspace.ErrWorkspaceNotFound, probWorkspaceMissing},
	{workspace.ErrWorkspaceDeleted, probWorkspaceDeleted},
	{workspace.ErrWorkspaceBusy, probWorkspaceBusy},
	{workspace.ErrSessionNotFound, probSessionMissing},
	{workspace.ErrSessionDestroyed, probSessionDestroyed},
	{workspace.ErrPermissionNotFound, probPermissionMissing},
	{workspace.ErrPermissionResolved, probPermissionResolved},
	{workspace.ErrInvalidOption, probInvalidOption},
	{workspace.ErrUnknownAgent, probUnknownAgent},
	{workspace.ErrSandboxNotAllowed, probSandboxForbidden},
	{workspace.ErrInvalid, probInvalid},
	{workspace.ErrTooLarge, probPromptTooLarge},
	{workspace.ErrRateLimited, probRateLimited},
	{workspace.ErrSessionLimit, probSessionLimit},
	{workspace.ErrAgentNotAllowed, probAgentForbidden},
	{workspace.ErrPromptNotFound, probPromptMissing},
	{workspace.ErrPromptDispatched, probPromptDispatched},
	{workspace.ErrNotSender, probForbidden},
	// Another node owns the workspace (the load tool's append route holds
	// it on this node): not an internal error, this node cannot serve it.
	{workspace.ErrNotOwner, probUnavailable},
	{errWorkspaceLimit, probWorkspaceLimit},
	{fanout.ErrTooManyStreams, probRateLimited},
	{fanout.ErrClosed, probUnavailable},
	{eventlog.ErrUnavailable, probUnavailable},
	{context.DeadlineExceeded, probUnavailable},
	// The request's context ended: the node is shutting down (or the
	// client left, and then nobody reads the answer).
	{context.Canceled, probUnavailable},
}

// problemFor classifies err. Unknown errors are internal.
func problemFor(err error) (problemKind, string, *string) {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.kind, ae.detail, ae.oldest
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		switch he.Code {
		case http.StatusNotFound:
			return probNotFound, "no such route", nil
		case http.StatusMethodNotAllowed:
			return probMethodNotAllowed, "method not allowed on this route", nil
		case http.StatusRequestEntityTooLarge:
			return problemKind{"body_too_large", he.Code, "Request body too large"}, "", nil
		}
		if he.Code >= 400 && he.Code < 500 {
			return problemKind{"bad_request", he.Code, http.StatusText(he.Code)}, "", nil
		}
	}
	for _, row := range errorTable {
		if errors.Is(err, row.err) {
			if row.err == workspace.ErrInvalid || row.err == workspace.ErrSandboxNotAllowed || row.err == workspace.ErrTooLarge || row.err == workspace.ErrInvalidOption || row.err == workspace.ErrUnknownAgent {
				// Our own description of the input, safe to show.
				return row.kind, strings.TrimPrefix(err.Error()[strings.Index(err.Error(), row.err.Error()):], row.err.Error()+": "), nil
			}
			var oldest *string
			var re *eventlog.ResetError
			if errors.As(err, &re) {
				s := re.OldestID()
				oldest = &s
			}
			return row.kind, row.err.Error(), oldest
		}
	}
	return probInternal, "", nil
}

// handleError is echo's HTTPErrorHandler: every error becomes a problem,
// except a transient one on an event stream (see transientOnStream).
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	kind, detail, oldest := problemFor(err)
	if resolvedProblem(c, err) {
		return
	}
	if transientOnStream(c, kind) {
		s.log.WarnContext(c.Request().Context(), "stream unavailable, client told to reconnect",
			slog.String("path", c.Request().URL.Path), slog.Any("err", err))
		_ = sse.WriteReconnect(c.Response(), s.cfg.StreamRetry, "unavailable, reconnect")
		return
	}
	var rl *workspace.RateLimitError
	var cr *commandRateError
	if errors.As(err, &cr) {
		c.Response().Header().Set("Retry-After", strconv.FormatInt(max(1, int64(math.Ceil(cr.retryAfter.Seconds()))), 10))
		detail = "too many " + cr.kind + " requests; retry after " + cr.retryAfter.Round(time.Millisecond).String()
	} else if errors.As(err, &rl) {
		c.Response().Header().Set("Retry-After", strconv.FormatInt(max(1, int64(math.Ceil(rl.RetryAfter.Seconds()))), 10))
		detail = "too many prompts; retry after " + rl.RetryAfter.Round(time.Millisecond).String()
	} else if errors.Is(err, workspace.ErrWorkspaceDeleted) {
		detail = "this workspace id was deleted; purge it first (DELETE ?purge=true) to create it again"
	} else if errors.Is(err, workspace.ErrWorkspaceBusy) {
		c.Response().Header().Set("Retry-After", "1")
		detail = "the workspace's deletion is not finished; retry the purge later"
	} else if errors.Is(err, fanout.ErrTooManyStreams) {
		c.Response().Header().Set("Retry-After", "5")
		detail = "too many open streams for this user on this node"
	}
	if kind.status >= 500 {
		s.log.ErrorContext(c.Request().Context(), "request failed",
			slog.String("method", c.Request().Method),
			slog.String("path", c.Request().URL.Path),
			slog.Any("err", err))
		if kind == probInternal {
			detail = "" // internal text never reaches a client
		}
	}
	writeProblem(c, kind, detail, oldest)
}

// transientOnStream reports whether a stream request failed for a moment
// only (Redis restarting or unreachable, the node shutting down, a
// deadline: what is a 503 elsewhere). A WHATWG EventSource gives up for
// good on any status but 200, so such a stream is answered 200 with
// retry: and ended: the browser reconnects with its Last-Event-ID by
// itself, through the load balancer, to this node or another. Every other
// error (400, 401, 403, 404, 410, 429…) keeps its status: the client
// should stop, or do something else.
func transientOnStream(c echo.Context, kind problemKind) bool {
	return kind == probUnavailable && (c.Path() == streamRoute || c.Path() == wsStreamRoute) && c.Request().Method == http.MethodGet
}

func writeProblem(c echo.Context, kind problemKind, detail string, oldest *string) {
	p := Problem{Type: kind.typeURI(), Title: kind.title, Status: kind.status, Detail: detail, Oldest: oldest}
	c.Response().Header().Set(echo.HeaderContentType, "application/problem+json")
	c.Response().Header().Set("Cache-Control", "no-store")
	if kind.status == http.StatusServiceUnavailable {
		c.Response().Header().Set("Retry-After", "1")
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(kind.status)
		return
	}
	_ = c.JSON(kind.status, p)
}
