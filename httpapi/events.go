package httpapi

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/tandem-dev/tandem/eventlog"
	"github.com/tandem-dev/tandem/eventlog/model"
	"github.com/tandem-dev/tandem/fanout"
	"github.com/tandem-dev/tandem/sse"
	"github.com/tandem-dev/tandem/workspace"
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

// listEvents: GET /v1/workspaces/{ws}/sessions/{sid}/events?cursor=&limit=&type=
// (and GET /v1/workspaces/{ws}/events, the workspace stream).
//
// With ?type= (one type or a comma list) the page holds only the events of
// those types, in order: a page of type=session.event is exactly the SDK's
// ListPage<SessionEvent>. nextCursor is there only when there is more.
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
	types, err := parseTypes(q, sid == model.WorkspaceStream)
	if err != nil {
		return err
	}
	if err := s.sessionVisible(c.Request().Context(), c.Param("ws"), sid); err != nil {
		return err
	}
	var p Page
	if types == nil {
		p, err = s.page(c, sid, after, limit)
	} else {
		p, err = s.filteredPage(c, sid, after, limit, types)
	}
	if err != nil {
		return err
	}
	if p.Items == nil {
		p.Items = []eventlog.Event{}
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	c.Response().Header().Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	c.Response().WriteHeader(http.StatusOK)
	return json.NewEncoder(c.Response()).Encode(p)
}

// page reads up to limit events after after. The head the read returns
// says whether there is more: a full last page has no nextCursor, so a
// client that pages until it is absent makes no extra empty request.
func (s *Server) page(c echo.Context, sid string, after eventlog.Cursor, limit int) (Page, error) {
	evs, head, err := s.deps.Events.Read(c.Request().Context(), c.Param("ws"), sid, after, limit)
	if err != nil {
		return Page{}, err
	}
	evs, cut := boundPage(evs, s.cfg.MaxPageBytes)
	p := Page{Items: evs}
	if len(evs) > 0 && (cut || evs[len(evs)-1].Index < head.Index) {
		p.NextCursor = evs[len(evs)-1].ID
	}
	return p, nil
}

// filterScan bounds the events one filtered page reads past the ones it
// returns: a filter that matches rarely answers a page with fewer events
// (even none) and a nextCursor where the scan stopped, rather than reading
// a whole long stream in one request.
const filterScan = 10 * eventlog.MaxPage

// filteredPage reads batches after after and keeps the events of the
// given types until it has limit of them and knows whether another one
// follows (so nextCursor is there only when there is more), reaches the
// head, or has scanned filterScan events.
func (s *Server) filteredPage(c echo.Context, sid string, after eventlog.Cursor, limit int, types map[string]bool) (Page, error) {
	var kept []eventlog.Event
	bytes, scanned := 0, 0
	pos := after
	lastID := ""
	for {
		evs, head, err := s.deps.Events.Read(c.Request().Context(), c.Param("ws"), sid, pos, eventlog.MaxPage)
		if err != nil {
			return Page{}, err
		}
		for _, ev := range evs {
			scanned++
			if !types[ev.Type] {
				lastID = ev.ID
				continue
			}
			bytes += len(ev.Body) + eventOverhead
			if len(kept) == limit || (len(kept) > 0 && bytes > s.cfg.MaxPageBytes) {
				// One more match than fits: there is more, from the
				// last event kept.
				return Page{Items: kept, NextCursor: kept[len(kept)-1].ID}, nil
			}
			kept = append(kept, ev)
			lastID = ev.ID
		}
		if len(evs) == 0 || evs[len(evs)-1].Index >= head.Index {
			return Page{Items: kept}, nil // the head: nothing more
		}
		if scanned >= filterScan {
			return Page{Items: kept, NextCursor: lastID}, nil
		}
		last := evs[len(evs)-1]
		pos = last.Cursor(head.Gen)
	}
}

// eventTypes are the types of the entries of a session stream, the names
// ?type= takes.
var eventTypes = []string{
	workspace.TypeChatUser, workspace.TypeSessionEvent, workspace.TypeSessionStatus,
	workspace.TypePermissionRequested, workspace.TypePermissionResolved,
}

// workspaceEventTypes are those of the workspace stream.
var workspaceEventTypes = []string{
	model.TypeSessionCreated, model.TypeSessionDestroyed, model.TypeSessionSummary,
	model.TypePromptQueued, model.TypePromptDispatched, model.TypePromptWithdrawn,
}

// parseTypes reads ?type= (repeated or a comma list) of a session stream's
// page, or of the workspace stream's (ws); nil when absent.
func parseTypes(q url.Values, ws bool) (map[string]bool, error) {
	if !q.Has("type") {
		return nil, nil
	}
	eventTypes := eventTypes
	if ws {
		eventTypes = workspaceEventTypes
	}
	types := map[string]bool{}
	for _, v := range q["type"] {
		for _, t := range strings.Split(v, ",") {
			t = strings.TrimSpace(t)
			if !slices.Contains(eventTypes, t) {
				return nil, newError(probInvalidEventType, "type must be a comma-separated list of "+strings.Join(eventTypes, ", "))
			}
			types[t] = true
		}
	}
	return types, nil
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
