package httpapi

import (
	"context"
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/tandem-dev/tandem/workspace"
)

// SessionConfigurer changes sessions' modes, models and config options,
// and creates sessions with them (workspace.Manager); the routes take
// them when Workspaces is one.
type SessionConfigurer interface {
	ConfigureSession(ctx context.Context, ws, sid, user string, c workspace.SessionChange) (workspace.Accepted, error)
	CreateSessionWith(ctx context.Context, ws, id, user string, o workspace.SessionOptions) (workspace.SessionRecord, bool, error)
}

var _ SessionConfigurer = (*workspace.Manager)(nil)

// sessionConfigRoutes adds PATCH …/sessions/{sid}.
func (s *Server) sessionConfigRoutes(e *echo.Echo, member echo.MiddlewareFunc) {
	if _, ok := s.deps.Workspaces.(SessionConfigurer); ok {
		e.PATCH(routeSession, s.patchSession, member)
	}
}

// patchSession takes {"mode"}, {"model"} or {"configOptions":{id: value}}
// (or several): 202, carried out by the owner in inbox order.
func (s *Server) patchSession(c echo.Context) error {
	var body struct {
		Mode          *string           `json:"mode"`
		Model         *string           `json:"model"`
		ConfigOptions map[string]string `json:"configOptions"`
	}
	if err := s.decodeBody(c, &body, false); err != nil {
		return err
	}
	var ch workspace.SessionChange
	if body.Mode != nil {
		if *body.Mode == "" {
			return newError(probInvalid, "mode is empty")
		}
		ch.Mode = *body.Mode
	}
	if body.Model != nil {
		if *body.Model == "" {
			return newError(probInvalid, "model is empty")
		}
		ch.Model = *body.Model
	}
	ch.ConfigOptions = body.ConfigOptions
	acc, err := s.deps.Workspaces.(SessionConfigurer).ConfigureSession(c.Request().Context(), c.Param("ws"), c.Param("sid"), principal(c).User, ch)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, acc)
}

// createSessionWith creates a session with a mode, model or sessionInit.
func (s *Server) createSessionWith(c echo.Context, id string, o workspace.SessionOptions) (workspace.SessionRecord, bool, error) {
	sc, ok := s.deps.Workspaces.(SessionConfigurer)
	if !ok {
		return workspace.SessionRecord{}, false, newError(probInvalid, "mode, model and sessionInit are not supported here")
	}
	return sc.CreateSessionWith(c.Request().Context(), c.Param("ws"), id, principal(c).User, o)
}
