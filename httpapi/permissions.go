package httpapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/tandem-dev/tandem/workspace"
)

// PermissionAnswerer answers the agent's permission requests
// (workspace.Manager); the route exists when Workspaces is one.
type PermissionAnswerer interface {
	AnswerPermission(ctx context.Context, ws, sid, rid, user string, a workspace.Answer) (workspace.Resolution, error)
}

var _ PermissionAnswerer = (*workspace.Manager)(nil)

// permissionRoutes adds POST …/sessions/{sid}/permissions/{requestId}.
func (s *Server) permissionRoutes(e *echo.Echo, member echo.MiddlewareFunc) {
	if _, ok := s.deps.Workspaces.(PermissionAnswerer); ok {
		e.POST(routeSession+"/permissions/:rid", s.answerPermission, member)
	}
}

// answerPermission takes {"optionId"} or {"outcome":"cancelled"}: 200
// with the resolution when this answer came first.
func (s *Server) answerPermission(c echo.Context) error {
	var body struct {
		OptionID *string `json:"optionId"`
		Outcome  *string `json:"outcome"`
	}
	if err := s.decodeBody(c, &body, false); err != nil {
		return err
	}
	var a workspace.Answer
	switch {
	case body.OptionID != nil && body.Outcome != nil:
		return newError(probInvalid, "give either optionId or outcome, not both")
	case body.OptionID != nil:
		if *body.OptionID == "" {
			return newError(probInvalid, "optionId is empty")
		}
		a.OptionID = *body.OptionID
	case body.Outcome != nil:
		if *body.Outcome != workspace.OutcomeCancelled {
			return newError(probInvalid, `outcome must be "cancelled" (or give optionId)`)
		}
		a.Cancelled = true
	default:
		return newError(probInvalid, "optionId or outcome is required")
	}
	rid := c.Param("rid")
	if !ValidID(rid) {
		return newError(probPermissionMissing, "no permission request has this id")
	}
	res, err := s.deps.Workspaces.(PermissionAnswerer).AnswerPermission(c.Request().Context(), c.Param("ws"), c.Param("sid"), rid, principal(c).User, a)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, res)
}

// resolvedProblem writes the 409 of a second answer with the answer that
// came first as "resolution"; false when err is not one.
func resolvedProblem(c echo.Context, err error) bool {
	var ar *workspace.AlreadyResolvedError
	if !errors.As(err, &ar) {
		return false
	}
	k := probPermissionResolved
	c.Response().Header().Set(echo.HeaderContentType, "application/problem+json")
	c.Response().Header().Set("Cache-Control", "no-store")
	_ = c.JSON(k.status, struct {
		Problem
		Resolution workspace.Resolution `json:"resolution"`
	}{Problem{Type: k.typeURI(), Title: k.title, Status: k.status, Detail: ar.Error()}, ar.Resolution})
	return true
}
