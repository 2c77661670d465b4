package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/tandem-dev/tandem/auth"
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
	Workspaces Workspaces    // nil: only the event routes are served (tests)
	Auth       Authenticator // nil: NoAuth
	Ready      ReadinessCheck
	Observer   Observer // nil: none
	Quotas     Quotas   // nil: commands are not rate limited
	// UserWorkspaces counts the workspaces users create (nil: no cap).
	UserWorkspaces UserWorkspaces
	Metrics        http.Handler  // served at /metrics; nil: not served
	Bench          BenchAppender // the load tool's append route; nil: not served
	Logger         *slog.Logger  // nil: slog.Default()
}

// Config configures the HTTP layer. Zero values are the defaults given.
type Config struct {
	// DefaultPageLimit is the page size when ?limit= is absent (default 100).
	DefaultPageLimit int
	// MaxPageLimit is the largest ?limit= accepted (default 1000).
	MaxPageLimit int
	// ReadyTimeout bounds the readiness check (default 2s).
	ReadyTimeout time.Duration
	// MaxBodyBytes bounds a request body (default 1 MiB).
	MaxBodyBytes int64
	// BodyReadTimeout bounds reading a request body (default 30s). Streams
	// have no body and are never cut by it.
	BodyReadTimeout time.Duration
	// StreamRetry is the retry: sent with the 200 that ends a stream
	// request the node cannot serve for a moment (default 1s: short, as
	// the load balancer sends the reconnect to a node that can, and fixed,
	// as a few reconnects a second per client are cheap).
	StreamRetry time.Duration
	// CORSOrigins lists the origins of browser apps allowed to call the
	// API from other origins; empty (the default) allows none.
	CORSOrigins []string
	// NoAuthAllowRemote, without authentication, serves any IP address as
	// Host, not only loopback ones (TANDEM_AUTH_NONE_ALLOW_REMOTE).
	NoAuthAllowRemote bool
	// MetricsToken, when set, is the bearer token GET /metrics requires.
	MetricsToken string
	// CommandRate and CommandBurst bound the commands other than prompts
	// (session create, cancel, destroy, workspace delete) per user and
	// workspace, per second and in a burst, each kind its own bucket
	// (defaults 1 and 20; a negative rate: unlimited).
	CommandRate  float64
	CommandBurst int
	// MaxPageBytes bounds a page of events by the size of their bodies
	// (default 4 MiB): a page holds at least one event, and as many more
	// as fit.
	MaxPageBytes int
	// MaxWorkspacesPerUser caps the workspaces one user creates (default
	// 100; negative: no cap).
	MaxWorkspacesPerUser int
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
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 1 << 20
	}
	if c.BodyReadTimeout == 0 {
		c.BodyReadTimeout = 30 * time.Second
	}
	if c.StreamRetry == 0 {
		c.StreamRetry = time.Second
	}
	if c.MaxPageBytes == 0 {
		c.MaxPageBytes = 4 << 20
	}
	return c
}

// Validate reports whether the configuration can be used.
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.DefaultPageLimit < 1 || c.MaxPageLimit < c.DefaultPageLimit || c.MaxPageLimit > eventlog.MaxPage {
		return errors.New("httpapi: page limits must satisfy 1 <= default <= max <= 1000")
	}
	if c.MaxBodyBytes < 1024 || c.BodyReadTimeout < 0 {
		return errors.New("httpapi: body limit below 1 KiB or negative read timeout")
	}
	if c.StreamRetry < 0 {
		return errors.New("httpapi: negative stream retry")
	}
	for _, o := range c.CORSOrigins {
		if o == "*" {
			return errors.New("httpapi: CORS origin * is not allowed; list the origins")
		}
		if err := validCORSOrigin(o); err != nil {
			return err
		}
	}
	return nil
}

// Server is the HTTP handler of a node.
type Server struct {
	e     *echo.Echo
	deps  Deps
	cfg   Config
	log   *slog.Logger
	authn Authenticator
}

var _ http.Handler = (*Server)(nil)

// New builds the handler with every route.
func New(deps Deps, cfg Config) *Server {
	s := &Server{e: echo.New(), deps: deps, cfg: cfg.withDefaults(), log: deps.Logger}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.authn = deps.Auth
	if s.authn == nil {
		s.authn = NoAuth{}
	}
	e := s.e
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = s.handleError
	// No Timeout, ContextTimeout, BodyDump or Gzip middleware: they would
	// buffer or cut streams.
	e.Use(s.observe)
	e.Use(middleware.Recover())
	if len(s.cfg.CORSOrigins) > 0 {
		e.Use(middleware.CORSWithConfig(middleware.CORSConfig{
			AllowOrigins:     s.cfg.CORSOrigins,
			AllowMethods:     []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete},
			AllowHeaders:     []string{"Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID", CSRFHeader},
			ExposeHeaders:    []string{"Retry-After", echo.HeaderXRequestID},
			AllowCredentials: true,
			MaxAge:           600,
		}))
	}

	if _, none := s.authn.(NoAuth); none {
		e.Use(s.localGuard)
	}

	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	if deps.Metrics != nil {
		e.GET("/metrics", s.metrics)
	}
	e.GET("/", s.index)
	e.GET("/w/:ws", s.index)
	e.GET("/w/:ws/s/:sid", s.index)
	e.GET("/static/*", s.assets())
	e.POST("/v1/auth/cookie", s.setCookie)
	e.DELETE("/v1/auth/cookie", s.clearCookie)
	e.GET("/v1/auth/me", s.whoami)
	e.GET("/v1/openapi.json", s.openapi)
	e.GET("/v1/version", s.version)

	// Middleware goes on routes, not groups: a group with middleware
	// answers 404 instead of 405 for a known path with a wrong method.
	const ws, ses = routeWorkspace, routeSession
	viewer, member, admin := s.guard(auth.RoleViewer), s.guard(auth.RoleMember), s.guard(auth.RoleAdmin)
	e.GET(ses+"/events", s.listEvents, viewer)
	e.GET(streamRoute, s.streamEvents, viewer)
	e.GET(ws+"/events", s.listEvents, viewer)
	e.GET(wsStreamRoute, s.streamEvents, viewer)
	if deps.Workspaces != nil {
		e.PUT(ws, s.putWorkspace, admin)
		e.GET(ws, s.getWorkspace, viewer)
		e.DELETE(ws, s.deleteWorkspace, admin)
		e.GET(ws+"/presence", s.getPresence, viewer)
		if _, ok := deps.Workspaces.(Typer); ok {
			e.POST(ws+"/typing", s.typing, member)
		}
		e.GET(ws+"/sessions", s.listSessions, viewer)
		e.POST(ws+"/sessions", s.createSession, member)
		e.GET(ses, s.getSession, viewer)
		e.DELETE(ses, s.deleteSession, member)
		e.POST(ses+"/prompt", s.prompt, member)
		e.POST(ses+"/cancel", s.cancel, member)
		e.DELETE(ses+"/prompts/:pid", s.withdraw, member)
		s.permissionRoutes(e, member)
		s.sessionConfigRoutes(e, member)
	}
	if deps.Bench != nil {
		e.POST(ses+"/bench/append", s.benchAppend, admin)
	}
	return s
}

// The routes' path patterns. Errors on streamRoute are answered as the
// stream's client understands them (see transientOnStream).
const (
	routeWorkspace = "/v1/workspaces/:ws"
	routeSession   = routeWorkspace + "/sessions/:sid"
	streamRoute    = routeSession + "/events/stream"
	wsStreamRoute  = routeWorkspace + "/events/stream"
)

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
