package httpapi

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"
	"github.com/tandem-dev/tandem/eventlog"
	"github.com/tandem-dev/tandem/eventlog/model"
	"github.com/tandem-dev/tandem/fanout"
	"github.com/tandem-dev/tandem/sse"
)

// Page is one page of events.
type Page struct {
	Items      []eventlog.Event `json:"items"`
	NextCursor string           `json:"nextCursor,omitempty"`
}

// streamOf is the stream a route names: its session, or the workspace
// stream on the workspace's own routes (…/{ws}/events, …/{ws}/events/stream).
func streamOf(c echo.Context) string {
	if sid := c.Param("sid"); sid != "" {
		return sid
	}
	return model.WorkspaceStream
}

// listEvents: GET /v1/workspaces/{ws}/sessions/{sid}/events?cursor=&limit=
func (s *Server) listEvents(c echo.Context) error {
	q := c.Request().URL.Query()
	after, err := eventlog.ParseCursor(q.Get("cursor"))
	if err != nil {
		return newError(probCursorMalformed, "cursor is not one this server issued")
	}
	limit := s.cfg.DefaultPageLimit
	if v := q.Get("limit"); v != "" || q.Has("limit") {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > s.cfg.MaxPageLimit {
			return newError(probInvalidLimit, "limit must be an integer from 1 to "+strconv.Itoa(s.cfg.MaxPageLimit))
		}
		limit = n
	}
	sid := streamOf(c)
	if err := s.sessionVisible(c.Request().Context(), c.Param("ws"), sid); err != nil {
		return err
	}
	evs, _, err := s.deps.Events.Read(c.Request().Context(), c.Param("ws"), sid, after, limit)
	if err != nil {
		return err
	}
	full := len(evs) == limit
	evs, cut := boundPage(evs, s.cfg.MaxPageBytes)
	p := Page{Items: evs}
	if p.Items == nil {
		p.Items = []eventlog.Event{}
	}
	if full || cut {
		p.NextCursor = evs[len(evs)-1].ID
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	c.Response().Header().Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	c.Response().WriteHeader(http.StatusOK)
	return json.NewEncoder(c.Response()).Encode(p)
}

// streamEvents: GET /v1/workspaces/{ws}/sessions/{sid}/events/stream
func (s *Server) streamEvents(c echo.Context) error {
	r := c.Request()
	pos, from, ok := sse.ResumePosition(r)
	if !ok {
		return newError(probCursorMalformed, "Last-Event-ID or cursor is not one this server issued")
	}
	after, err := eventlog.ParseCursor(pos)
	if err != nil {
		return newError(probCursorMalformed, "Last-Event-ID or cursor is not one this server issued")
	}
	sid := streamOf(c)
	if err := s.sessionVisible(r.Context(), c.Param("ws"), sid); err != nil {
		return err
	}
	p := principal(c)
	st := fanout.Stream{
		Workspace: c.Param("ws"),
		Session:   sid,
		After:     after,
		Resumed:   from != sse.FromStart,
		User:      p.User,
		Expires:   p.Expires, // the stream ends with the token
	}
	return s.deps.Streams.Serve(c.Response(), r, st)
}
