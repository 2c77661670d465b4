package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/tandem-dev/tandem/auth"
	"github.com/tandem-dev/tandem/eventlog/model"
	"github.com/tandem-dev/tandem/workspace"
)

// Workspaces is the workspace API (workspace.Manager).
type Workspaces interface {
	PutWorkspace(ctx context.Context, ws string, s workspace.Settings) (bool, error)
	GetWorkspace(ctx context.Context, ws string) (workspace.Info, error)
	DeleteWorkspace(ctx context.Context, ws string) error
	PurgeWorkspace(ctx context.Context, ws string) error
	Exists(ctx context.Context, ws string) error
	ListSessions(ctx context.Context, ws, cursor string, limit int) ([]workspace.SessionRecord, string, error)
	CreateSession(ctx context.Context, ws, id, agent string) (workspace.SessionRecord, bool, error)
	GetSession(ctx context.Context, ws, sid string) (workspace.SessionRecord, error)
	DeleteSession(ctx context.Context, ws, sid string) (workspace.SessionRecord, error)
	Prompt(ctx context.Context, ws, sid, user, text, idem string) (workspace.Accepted, error)
	Cancel(ctx context.Context, ws, sid, user string) (string, error)
	Withdraw(ctx context.Context, ws, sid, id, user string, admin bool) error
	GetPresence(ctx context.Context, ws string) (workspace.Presence, error)
}

var _ Workspaces = (*workspace.Manager)(nil)

// Typer is what POST /v1/workspaces/{ws}/typing needs (workspace.Manager
// has it); the route exists when Workspaces has it too.
type Typer interface {
	Typing(ctx context.Context, ws, sid, user string, on bool) error
}

var _ Typer = (*workspace.Manager)(nil)

// decodeBody decodes a JSON body strictly into v: application/json, at
// most MaxBodyBytes, read within BodyReadTimeout, one object, no unknown
// field. An empty body leaves v as it is when optional.
func (s *Server) decodeBody(c echo.Context, v any, optional bool) error {
	r := c.Request()
	_ = http.NewResponseController(c.Response()).SetReadDeadline(time.Now().Add(s.cfg.BodyReadTimeout))
	body, err := io.ReadAll(io.LimitReader(r.Body, s.cfg.MaxBodyBytes+1))
	if err != nil {
		return newError(probBadRequest, "the request body could not be read in time")
	}
	if int64(len(body)) > s.cfg.MaxBodyBytes {
		return newError(probBodyTooLarge, "the request body is larger than "+strconv.FormatInt(s.cfg.MaxBodyBytes, 10)+" bytes")
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		if optional {
			return nil
		}
		return newError(probMalformedJSON, "a JSON body is required")
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get(echo.HeaderContentType))
	if err != nil || mt != echo.MIMEApplicationJSON {
		return newError(probUnsupportedMedia, "the body must be application/json")
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return newError(probMalformedJSON, "the body is not the JSON this route takes: "+jsonProblem(err))
	}
	if dec.More() {
		return newError(probMalformedJSON, "the body holds more than one JSON value")
	}
	return nil
}

// jsonProblem describes a decoding error without echoing the input.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return "syntax error at byte " + strconv.FormatInt(se.Offset, 10)
	case errors.As(err, &te):
		return "field " + strconv.Quote(te.Field) + " has the wrong type"
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return strings.TrimPrefix(err.Error(), "json: ")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected end of input"
	}
	return "invalid JSON"
}

func (s *Server) putWorkspace(c echo.Context) error {
	var body struct {
		Sandbox *struct {
			BaseURL   string `json:"baseUrl"`
			Token     string `json:"token"`
			SandboxID string `json:"sandboxId"`
		} `json:"sandbox"`
		Agent            string   `json:"agent"`
		Agents           []string `json:"agents"`
		PermissionPolicy string   `json:"permissionPolicy"`
		SpeakerLabels    *bool    `json:"speakerLabels"`
	}
	if err := s.decodeBody(c, &body, true); err != nil {
		return err
	}
	var set workspace.Settings
	set.Agent = body.Agent
	set.PermissionPolicy = body.PermissionPolicy
	set.Agents = body.Agents
	set.SpeakerLabels = body.SpeakerLabels
	if body.Sandbox != nil {
		if body.Sandbox.BaseURL == "" {
			return newError(probInvalid, "sandbox.baseUrl is required when sandbox is given")
		}
		set.Sandbox = workspace.Sandbox{BaseURL: body.Sandbox.BaseURL, Token: body.Sandbox.Token, SandboxID: body.Sandbox.SandboxID}
	}
	ctx := c.Request().Context()
	ws := c.Param("ws")
	created, err := s.putCounted(c, func() (bool, error) { return s.deps.Workspaces.PutWorkspace(ctx, ws, set) })
	if err != nil {
		return err
	}
	info, err := s.deps.Workspaces.GetWorkspace(ctx, ws)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	return c.JSON(status, info)
}

func (s *Server) getWorkspace(c echo.Context) error {
	info, err := s.deps.Workspaces.GetWorkspace(c.Request().Context(), c.Param("ws"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, info)
}

// deleteWorkspace deletes a workspace; with ?purge=true it also removes
// everything of it from Redis (sessions, streams, inbox, records), so that
// its id can be created again with no history. Without a purge the id
// stays tombstoned: a PUT of it answers workspace_deleted.
func (s *Server) deleteWorkspace(c echo.Context) error {
	purge := false
	if q := c.Request().URL.Query(); q.Has("purge") {
		switch q.Get("purge") {
		case "true":
			purge = true
		case "false":
		default:
			return newError(probInvalid, "purge must be true or false")
		}
	}
	if err := s.withQuota(c, quotaDeleteWS, func() error {
		if purge {
			return s.deps.Workspaces.PurgeWorkspace(c.Request().Context(), c.Param("ws"))
		}
		return s.deps.Workspaces.DeleteWorkspace(c.Request().Context(), c.Param("ws"))
	}); err != nil {
		return err
	}
	s.uncount(c)
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) listSessions(c echo.Context) error {
	q := c.Request().URL.Query()
	limit := s.cfg.DefaultPageLimit
	if q.Has("limit") {
		n, err := strconv.Atoi(q.Get("limit"))
		if err != nil || n < 1 || n > s.cfg.MaxPageLimit {
			return newError(probInvalidLimit, "limit must be an integer from 1 to "+strconv.Itoa(s.cfg.MaxPageLimit))
		}
		limit = n
	}
	items, next, err := s.deps.Workspaces.ListSessions(c.Request().Context(), c.Param("ws"), q.Get("cursor"), limit)
	if err != nil {
		return err
	}
	if items == nil {
		items = []workspace.SessionRecord{}
	}
	out := struct {
		Items      []workspace.SessionRecord `json:"items"`
		NextCursor string                    `json:"nextCursor,omitempty"`
	}{items, next}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) createSession(c echo.Context) error {
	var body struct {
		ID    string `json:"id"`
		Agent string `json:"agent"`
		// As the SDK's createSession takes them (session_config.go).
		Mode        string                 `json:"mode"`
		Model       string                 `json:"model"`
		SessionInit *workspace.SessionInit `json:"sessionInit"`
	}
	if err := s.decodeBody(c, &body, true); err != nil {
		return err
	}
	if body.ID == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		body.ID = "s-" + hex.EncodeToString(b[:])
	} else if !ValidID(body.ID) {
		return newError(probInvalidID, "id must be 1-128 characters of [A-Za-z0-9._-]")
	}
	var rec workspace.SessionRecord
	var created bool
	if err := s.withQuota(c, quotaOpen, func() (err error) {
		if body.Mode != "" || body.Model != "" || body.SessionInit != nil {
			rec, created, err = s.createSessionWith(c, body.ID, workspace.SessionOptions{Agent: body.Agent, Mode: body.Mode, Model: body.Model, SessionInit: body.SessionInit})
		} else {
			rec, created, err = s.deps.Workspaces.CreateSession(c.Request().Context(), c.Param("ws"), body.ID, body.Agent)
		}
		return err
	}); err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	return c.JSON(status, rec)
}

func (s *Server) getSession(c echo.Context) error {
	rec, err := s.deps.Workspaces.GetSession(c.Request().Context(), c.Param("ws"), c.Param("sid"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, rec)
}

func (s *Server) deleteSession(c echo.Context) error {
	ctx := c.Request().Context()
	if _, err := s.deps.Workspaces.GetSession(ctx, c.Param("ws"), c.Param("sid")); err != nil {
		return err
	}
	var rec workspace.SessionRecord
	if err := s.withQuota(c, quotaDestroy, func() (err error) {
		rec, err = s.deps.Workspaces.DeleteSession(ctx, c.Param("ws"), c.Param("sid"))
		return err
	}); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, rec)
}

func (s *Server) prompt(c echo.Context) error {
	user := principal(c).User
	var body struct {
		Text *string `json:"text"`
		// UserID is optional, as the SDK's prompt({userId, text}) sends
		// it: it must be the caller's identity, never another's.
		UserID *string `json:"userId"`
	}
	if err := s.decodeBody(c, &body, false); err != nil {
		return err
	}
	if body.Text == nil {
		return newError(probInvalid, "text is required")
	}
	if body.UserID != nil && *body.UserID != user {
		return newError(probUserMismatch, "userId must be the caller's own identity")
	}
	acc, err := s.deps.Workspaces.Prompt(c.Request().Context(), c.Param("ws"), c.Param("sid"), user, *body.Text, c.Request().Header.Get("Idempotency-Key"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, acc)
}

func (s *Server) cancel(c echo.Context) error {
	user := principal(c).User
	var id string
	if err := s.withQuota(c, quotaCancel, func() (err error) {
		id, err = s.deps.Workspaces.Cancel(c.Request().Context(), c.Param("ws"), c.Param("sid"), user)
		return err
	}); err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, map[string]string{"id": id, "sessionId": c.Param("sid")})
}

// sessionVisible: the events of a session can be read when the workspace
// exists and the session does, or is the default one (created by the
// first prompt, and watched before it).
func (s *Server) sessionVisible(ctx context.Context, ws, sid string) error {
	if s.deps.Workspaces == nil {
		return nil
	}
	if sid == workspace.DefaultSession || sid == model.WorkspaceStream {
		return s.deps.Workspaces.Exists(ctx, ws)
	}
	_, err := s.deps.Workspaces.GetSession(ctx, ws, sid)
	return err
}

// withdraw: DELETE /v1/workspaces/{ws}/sessions/{sid}/prompts/{promptId}
func (s *Server) withdraw(c echo.Context) error {
	p := principal(c)
	err := s.deps.Workspaces.Withdraw(c.Request().Context(), c.Param("ws"), c.Param("sid"), c.Param("pid"), p.User, p.Allows(c.Param("ws"), auth.RoleAdmin))
	if err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// typing says the caller is typing in a session (or stopped): presence,
// broadcast to the room, never persisted.
func (s *Server) typing(c echo.Context) error {
	var body struct {
		SessionID string `json:"sessionId"`
		Typing    *bool  `json:"typing"`
	}
	if err := s.decodeBody(c, &body, false); err != nil {
		return err
	}
	if !ValidID(body.SessionID) {
		return newError(probInvalid, "sessionId must be 1-128 characters of [A-Za-z0-9._-]")
	}
	on := body.Typing == nil || *body.Typing
	if err := s.deps.Workspaces.(Typer).Typing(c.Request().Context(), c.Param("ws"), body.SessionID, principal(c).User, on); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) getPresence(c echo.Context) error {
	p, err := s.deps.Workspaces.GetPresence(c.Request().Context(), c.Param("ws"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, p)
}
