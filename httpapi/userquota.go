package httpapi

import (
	"context"
	"errors"
	"fmt"

	"github.com/labstack/echo/v4"
	"github.com/tandem-dev/tandem/workspace"
)

// UserWorkspaces counts the workspaces each user created, in Redis so
// that the cap holds across nodes (eventlog.Log).
type UserWorkspaces interface {
	ReserveWorkspace(ctx context.Context, user, ws string, most int) (counted, added bool, err error)
	UserWorkspaces(ctx context.Context, user string) ([]string, error)
	ReleaseWorkspace(ctx context.Context, user, ws string) error
}

// errWorkspaceLimit: the caller created Config.MaxWorkspacesPerUser
// workspaces already (409 workspace_limit).
var errWorkspaceLimit = errors.New("too many workspaces for this user")

// defaultMaxWorkspaces is MaxWorkspacesPerUser's default.
const defaultMaxWorkspaces = 100

// putCounted runs put, a PUT of the route's workspace, counting it
// against the caller when it creates the workspace: refused with
// errWorkspaceLimit when the caller has the cap's worth of others
// (those since deleted by anyone are forgotten first); an update, or a
// PUT that fails, counts nothing.
func (s *Server) putCounted(c echo.Context, put func() (bool, error)) (bool, error) {
	most := s.cfg.MaxWorkspacesPerUser
	if most == 0 {
		most = defaultMaxWorkspaces
	}
	if s.deps.UserWorkspaces == nil || most < 0 {
		return put()
	}
	ctx, ws, user := c.Request().Context(), c.Param("ws"), principal(c).User
	counted, added, err := s.deps.UserWorkspaces.ReserveWorkspace(ctx, user, ws, most)
	if err == nil && !counted {
		err = s.forgetDeleted(ctx, user)
		if err == nil {
			counted, added, err = s.deps.UserWorkspaces.ReserveWorkspace(ctx, user, ws, most)
		}
	}
	if err != nil {
		return false, err
	}
	if !counted {
		// Refused before anything is written, unless it is an update.
		if s.deps.Workspaces.Exists(ctx, ws) == nil {
			return put()
		}
		return false, fmt.Errorf("%w: %d", errWorkspaceLimit, most)
	}
	created, err := put()
	if added && (err != nil || !created) {
		if rerr := s.deps.UserWorkspaces.ReleaseWorkspace(context.WithoutCancel(ctx), user, ws); rerr != nil {
			s.log.WarnContext(ctx, "workspace count", "err", rerr)
		}
	}
	return created, err
}

// forgetDeleted stops counting against user the workspaces that no
// longer exist (deleted by another admin, say).
func (s *Server) forgetDeleted(ctx context.Context, user string) error {
	wss, err := s.deps.UserWorkspaces.UserWorkspaces(ctx, user)
	if err != nil {
		return err
	}
	for _, ws := range wss {
		err := s.deps.Workspaces.Exists(ctx, ws)
		switch {
		case errors.Is(err, workspace.ErrWorkspaceNotFound):
			if err := s.deps.UserWorkspaces.ReleaseWorkspace(ctx, user, ws); err != nil {
				return err
			}
		case err != nil:
			return err
		}
	}
	return nil
}

// uncount stops counting a deleted workspace against the caller.
func (s *Server) uncount(c echo.Context) {
	if s.deps.UserWorkspaces == nil {
		return
	}
	ctx := c.Request().Context()
	if err := s.deps.UserWorkspaces.ReleaseWorkspace(context.WithoutCancel(ctx), principal(c).User, c.Param("ws")); err != nil {
		s.log.WarnContext(ctx, "workspace count", "err", err)
	}
}
