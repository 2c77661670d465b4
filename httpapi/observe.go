package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// Observer receives every answered request, for metrics.
type Observer interface {
	// Request reports a request: route is the route pattern
	// ("/v1/workspaces/:ws"), never the raw path.
	Request(route, method string, status int, d time.Duration)
}

type requestIDKey struct{}

// RequestID returns the id of the request ctx belongs to, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// LogHandler wraps h so that every record logged with a request's context
// carries that request's id.
func LogHandler(h slog.Handler) slog.Handler { return requestIDHandler{h} }

type requestIDHandler struct{ slog.Handler }

func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestID(ctx); id != "" {
		r.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h requestIDHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(a)}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name)}
}

// observe gives every request an id of ours (a client's own is not
// trusted into logs), puts it in the request's context, and after the
// request logs one line and reports it to the observer. Credentials,
// bodies and query strings are never logged.
func (s *Server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		id := newRequestID()
		c.Response().Header().Set(echo.HeaderXRequestID, id)
		r := c.Request()
		c.SetRequest(r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id)))
		err := next(c)
		if err != nil {
			c.Error(err) // writes the problem, so that the status is known
		}
		status := c.Response().Status
		if !c.Response().Committed && err == nil {
			status = http.StatusOK // a stream the hub took over
		}
		d := time.Since(start)
		route := c.Path()
		if s.deps.Observer != nil {
			s.deps.Observer.Request(route, r.Method, status, d)
		}
		lvl := slog.LevelInfo
		switch {
		case status >= 500:
			lvl = slog.LevelError
		case route == "/healthz" || route == "/readyz" || route == "/metrics" || strings.HasPrefix(route, "/static/"):
			lvl = slog.LevelDebug
		}
		s.log.Log(c.Request().Context(), lvl, "request",
			slog.String("method", r.Method),
			slog.String("route", route),
			slog.String("path", r.URL.Path),
			slog.Int("status", status),
			slog.Duration("duration", d),
			slog.String("user", principal(c).User),
		)
		return nil
	}
}
