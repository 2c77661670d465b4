package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/tandem-dev/tandem/eventlog"
	"github.com/tandem-dev/tandem/fanout"
)

// EventReader reads a session's events by cursor (eventlog.Log).
type EventReader interface {
	Read(ctx context.Context, ws, sid string, after eventlog.Cursor, limit int) ([]eventlog.Event, eventlog.Cursor, error)
}

// Streamer serves SSE streams (fanout.Hub).
type Streamer interface {
	Serve(w http.ResponseWriter, r *http.Request, st fanout.Stream) error
}

// ReadinessCheck reports whether the node can serve: Redis reachable.
type ReadinessCheck func(ctx context.Context) error

// Deps are the components the routes use.
type Deps struct {
	Events     EventReader
	Streams    Streamer
	Workspaces Workspaces // nil: only the event routes are served (tests)
	Ready      ReadinessCheck
	Logger     *slog.Logger // nil: slog.Default()
}

// Config configures the HTTP layer. Zero values are the defaults given.
type Config struct {
	// DefaultPageLimit is the page size when ?limit= is absent (default 100).
	DefaultPageLimit int
	// MaxPageLimit is the largest ?limit= accepted (default 1000).
	MaxPageLimit int
	// ReadyTimeout bounds the readiness check (default 2s).
	ReadyTimeout time.Duration
}

func (c Config) withDefaults() Config {
	if c.DefaultPageLimit == 0 {
		c.DefaultPageLimit = 100
	}
	if c.MaxPageLimit == 0 {
		c.MaxPageLimit = eventlog.MaxPage
	}
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = 2 * time.Second
	}
	return c
}

// Validate reports whether the configuration can be used.
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.DefaultPageLimit < 1 || c.MaxPageLimit < c.DefaultPageLimit || c.MaxPageLimit > eventlog.MaxPage {
		return errors.New("httpapi: page limits must satisfy 1 <= default <= max <= 1000")
	}
	return nil
}

// Server is the HTTP handler of a node.
type Server struct {
	e    *echo.Echo
	deps Deps
	cfg  Config
	log  *slog.Logger
}

var _ http.Handler = (*Server)(nil)

// New builds the handler with every route.
func New(deps Deps, cfg Config) *Server {
	s := &Server{e: echo.New(), deps: deps, cfg: cfg.withDefaults(), log: deps.Logger}
	if s.log == nil {
		s.log = slog.Default()
	}
	e := s.e
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = s.handleError
	// No Timeout, ContextTimeout, BodyDump or Gzip middleware: they would
	// buffer or cut streams.
	e.Use(middleware.RequestIDWithConfig(middleware.RequestIDConfig{
		Generator: newRequestID,
		// A client-supplied id is kept only when it is harmless to log.
		RequestIDHandler: func(echo.Context, string) {},
	}))
	e.Use(middleware.Recover())

	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)

	// Middleware goes on routes, not groups: a group with middleware
	// answers 404 instead of 405 for a known path with a wrong method.
	const ws, ses = "/v1/workspaces/:ws", "/v1/workspaces/:ws/sessions/:sid"
	e.GET(ses+"/events", s.listEvents, s.validateIDs)
	e.GET(ses+"/events/stream", s.streamEvents, s.validateIDs)
	if deps.Workspaces != nil {
		e.PUT(ws, s.putWorkspace, s.validateIDs)
		e.GET(ws, s.getWorkspace, s.validateIDs)
		e.DELETE(ws, s.deleteWorkspace, s.validateIDs)
		e.GET(ws+"/sessions", s.listSessions, s.validateIDs)
		e.POST(ws+"/sessions", s.createSession, s.validateIDs)
		e.GET(ses, s.getSession, s.validateIDs)
		e.DELETE(ses, s.deleteSession, s.validateIDs)
		e.POST(ses+"/prompt", s.prompt, s.validateIDs)
		e.POST(ses+"/cancel", s.cancel, s.validateIDs)
	}
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.e.ServeHTTP(w, r) }

func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(c echo.Context) error {
	if s.deps.Ready != nil {
		ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.ReadyTimeout)
		defer cancel()
		if err := s.deps.Ready(ctx); err != nil {
			s.log.WarnContext(ctx, "not ready", slog.Any("err", err))
			return newError(probUnavailable, "redis is not reachable")
		}
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}
