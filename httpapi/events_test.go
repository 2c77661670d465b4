package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tandem-dev/tandem/eventlog"
	"github.com/tandem-dev/tandem/fanout"
	"github.com/tandem-dev/tandem/httpapi"
)

// fakeEvents answers reads from a fixed list and records what was asked.
type fakeEvents struct {
	evs   []eventlog.Event
	err   error
	calls int
}

func (f *fakeEvents) Read(_ context.Context, ws, sid string, after eventlog.Cursor, limit int) ([]eventlog.Event, eventlog.Cursor, error) {
	f.calls++
	if f.err != nil {
		return nil, eventlog.Cursor{}, f.err
	}
	var out []eventlog.Event
	for _, ev := range f.evs {
		if ev.Index > after.Index && len(out) < limit {
			out = append(out, ev)
		}
	}
	return out, eventlog.Cursor{Gen: "a", Index: uint64(len(f.evs))}, nil
}

type fakeStreams struct {
	got []fanout.Stream
	err error // returned before anything is written, as fanout does
}

func (f *fakeStreams) Serve(w http.ResponseWriter, r *http.Request, st fanout.Stream) error {
	f.got = append(f.got, st)
	if f.err != nil {
		return f.err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func events(n int) []eventlog.Event {
	evs := make([]eventlog.Event, n)
	for i := range evs {
		evs[i] = eventlog.Event{ID: fmt.Sprintf("%d.a", i+1), Index: uint64(i + 1), SessionID: "s", Type: "chat.user", Body: json.RawMessage(`{"text":"x"}`)}
	}
	return evs
}

type problem struct {
	Type   string
	Title  string
	Status int
	Detail string
	Oldest *string
}

func do(t *testing.T, h http.Handler, method, target string, hdr map[string]string) (*httptest.ResponseRecorder, problem) {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	req.Host = "127.0.0.1" // NoAuth serves loopback names only
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var p problem
	if rec.Code >= 400 {
		if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("%s %s: Content-Type %q, want application/problem+json", method, target, ct)
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
			t.Errorf("%s %s: problem body %q: %v", method, target, rec.Body, err)
		}
		if p.Status != rec.Code {
			t.Errorf("%s %s: problem status %d, response %d", method, target, p.Status, rec.Code)
		}
	}
	return rec, p
}

func TestEventRoutesErrors(t *testing.T) {
	long := strings.Repeat("a", 129)
	expired := &eventlog.ResetError{Reason: eventlog.ErrCursorExpired, Oldest: eventlog.Cursor{Gen: "a", Index: 40}}
	unknown := &eventlog.ResetError{Reason: eventlog.ErrCursorUnknown, Oldest: eventlog.Cursor{Gen: "b", Index: 1}}
	for _, tc := range []struct {
		name, method, target string
		hdr                  map[string]string
		readErr              error
		status               int
		typ                  string
	}{
		{"page: malformed cursor", "GET", "/v1/workspaces/w/sessions/s/events?cursor=abc", nil, nil, 400, "cursor_malformed"},
		{"page: cursor with a stream id", "GET", "/v1/workspaces/w/sessions/s/events?cursor=1-0", nil, nil, 400, "cursor_malformed"},
		{"page: limit 0", "GET", "/v1/workspaces/w/sessions/s/events?limit=0", nil, nil, 400, "invalid_limit"},
		{"page: limit 1001", "GET", "/v1/workspaces/w/sessions/s/events?limit=1001", nil, nil, 400, "invalid_limit"},
		{"page: limit not a number", "GET", "/v1/workspaces/w/sessions/s/events?limit=ten", nil, nil, 400, "invalid_limit"},
		{"page: limit negative", "GET", "/v1/workspaces/w/sessions/s/events?limit=-5", nil, nil, 400, "invalid_limit"},
		{"page: limit empty", "GET", "/v1/workspaces/w/sessions/s/events?limit=", nil, nil, 400, "invalid_limit"},
		{"page: workspace id with a space", "GET", "/v1/workspaces/a%20b/sessions/s/events", nil, nil, 400, "invalid_id"},
		{"page: workspace id with a brace", "GET", "/v1/workspaces/a%7Db/sessions/s/events", nil, nil, 400, "invalid_id"},
		{"page: session id too long", "GET", "/v1/workspaces/w/sessions/" + long + "/events", nil, nil, 400, "invalid_id"},
		{"page: cursor expired", "GET", "/v1/workspaces/w/sessions/s/events?cursor=3.a", nil, expired, 410, "cursor_expired"},
		{"page: cursor unknown", "GET", "/v1/workspaces/w/sessions/s/events?cursor=3.a", nil, unknown, 410, "cursor_unknown"},
		{"page: redis down", "GET", "/v1/workspaces/w/sessions/s/events", nil, fmt.Errorf("read: %w: dial refused", eventlog.ErrUnavailable), 503, "unavailable"},
		{"page: unexpected failure", "GET", "/v1/workspaces/w/sessions/s/events", nil, fmt.Errorf("boom secret-internal-text"), 500, "internal"},
		{"page: wrong method", "POST", "/v1/workspaces/w/sessions/s/events", nil, nil, 405, "method_not_allowed"},
		{"stream: malformed Last-Event-ID", "GET", "/v1/workspaces/w/sessions/s/events/stream", map[string]string{"Last-Event-ID": "nope"}, nil, 400, "cursor_malformed"},
		{"stream: Last-Event-ID too long", "GET", "/v1/workspaces/w/sessions/s/events/stream", map[string]string{"Last-Event-ID": "1." + strings.Repeat("a", 300)}, nil, 400, "cursor_malformed"},
		{"stream: malformed cursor query", "GET", "/v1/workspaces/w/sessions/s/events/stream?cursor=1.xyz", nil, nil, 400, "cursor_malformed"},
		{"stream: invalid workspace id", "GET", "/v1/workspaces/" + long + "/sessions/s/events/stream", nil, nil, 400, "invalid_id"},
		{"stream: invalid session id", "GET", "/v1/workspaces/w/sessions/s%3As/events/stream", nil, nil, 400, "invalid_id"},
		{"stream: wrong method", "DELETE", "/v1/workspaces/w/sessions/s/events/stream", nil, nil, 405, "method_not_allowed"},
		{"unknown route", "GET", "/v1/nothing", nil, nil, 404, "not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := &fakeEvents{evs: events(5), err: tc.readErr}
			st := &fakeStreams{}
			h := httpapi.New(httpapi.Deps{Events: ev, Streams: st}, httpapi.Config{})
			rec, p := do(t, h, tc.method, tc.target, tc.hdr)
			if rec.Code != tc.status || p.Type != "urn:tandem:error:"+tc.typ {
				t.Fatalf("got %d %s (%s), want %d urn:tandem:error:%s", rec.Code, p.Type, rec.Body, tc.status, tc.typ)
			}
			if strings.Contains(rec.Body.String(), "secret-internal-text") {
				t.Error("internal error text reached the client")
			}
			if tc.readErr == nil && ev.calls != 0 {
				t.Error("a refused request reached the event log")
			}
			if len(st.got) != 0 {
				t.Error("a refused request opened a stream")
			}
			if tc.status == 410 && (p.Oldest == nil || *p.Oldest == "") {
				t.Error("410 without the oldest cursor")
			}
			if tc.status == 503 && rec.Header().Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
		})
	}
}

func TestEventPage(t *testing.T) {
	ev := &fakeEvents{evs: events(250)}
	h := httpapi.New(httpapi.Deps{Events: ev, Streams: &fakeStreams{}}, httpapi.Config{})
	t.Run("OK default limit", func(t *testing.T) {
		rec, _ := do(t, h, "GET", "/v1/workspaces/w/sessions/s/events", nil)
		var page struct {
			Items      []map[string]any
			NextCursor string
		}
		if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &page) != nil {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
		if len(page.Items) != 100 || page.NextCursor != "100.a" || page.Items[0]["id"] != "1.a" || page.Items[0]["text"] != "x" {
			t.Fatalf("page of %d, next %q, first %v", len(page.Items), page.NextCursor, page.Items[0])
		}
	})
	t.Run("OK last page has no next cursor", func(t *testing.T) {
		rec, _ := do(t, h, "GET", "/v1/workspaces/w/sessions/s/events?cursor=200.a&limit=1000", nil)
		var page struct {
			Items      []map[string]any
			NextCursor *string
		}
		json.Unmarshal(rec.Body.Bytes(), &page)
		if rec.Code != 200 || len(page.Items) != 50 || page.NextCursor != nil || page.Items[0]["eventIndex"] != 201.0 {
			t.Fatalf("%d: %d items, next %v", rec.Code, len(page.Items), page.NextCursor)
		}
	})
	t.Run("OK empty", func(t *testing.T) {
		rec, _ := do(t, h, "GET", "/v1/workspaces/w/sessions/s/events?cursor=250.a", nil)
		if rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != `{"items":[]}` {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
	})
}

func TestStreamStartPosition(t *testing.T) {
	for _, tc := range []struct {
		name   string
		target string
		hdr    map[string]string
		want   eventlog.Cursor
		resume bool
	}{
		{"OK from the start", "/v1/workspaces/w/sessions/s/events/stream", nil, eventlog.Cursor{}, false},
		{"OK from cursor", "/v1/workspaces/w/sessions/s/events/stream?cursor=7.ab", nil, eventlog.Cursor{Gen: "ab", Index: 7}, true},
		{"OK Last-Event-ID wins over cursor", "/v1/workspaces/w/sessions/s/events/stream?cursor=7.ab", map[string]string{"Last-Event-ID": "9.ab"}, eventlog.Cursor{Gen: "ab", Index: 9}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &fakeStreams{}
			h := httpapi.New(httpapi.Deps{Events: &fakeEvents{}, Streams: st}, httpapi.Config{})
			rec, _ := do(t, h, "GET", tc.target, tc.hdr)
			if rec.Code != 200 || len(st.got) != 1 {
				t.Fatalf("%d %s", rec.Code, rec.Body)
			}
			if g := st.got[0]; g.After != tc.want || g.Resumed != tc.resume || g.Workspace != "w" || g.Session != "s" {
				t.Fatalf("stream = %+v", g)
			}
		})
	}
}

func FuzzEventRoutes(f *testing.F) {
	f.Add("cursor=1.a&limit=5", "2.b")
	f.Add("limit=99999999999999999999", "")
	f.Add("cursor=%00", "\x00")
	f.Fuzz(func(t *testing.T, query, lastID string) {
		h := httpapi.New(httpapi.Deps{Events: &fakeEvents{evs: events(3)}, Streams: &fakeStreams{}}, httpapi.Config{})
		for _, path := range []string{"/v1/workspaces/w/sessions/s/events", "/v1/workspaces/w/sessions/s/events/stream"} {
			req, err := http.NewRequest("GET", "http://127.0.0.1"+path+"?"+query, nil)
			if err != nil {
				return
			}
			if lastID != "" {
				req.Header["Last-Event-Id"] = []string{lastID}
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code >= 500 {
				t.Fatalf("%s?%s with Last-Event-ID %q: %d %s", path, query, lastID, rec.Code, rec.Body)
			}
		}
	})
}

// A stream the node cannot serve for a moment is a 200 that ends with
// retry: (a WHATWG EventSource gives up on anything else and would never
// reconnect); errors that are not transient keep their status.
func TestStreamTransientErrors(t *testing.T) {
	const stream = "/v1/workspaces/w/sessions/s/events/stream"
	for _, tc := range []struct {
		name   string
		err    error
		status int
		typ    string
	}{
		{"OK hub closed (node draining)", fanout.ErrClosed, 200, ""},
		{"OK redis unreachable", fmt.Errorf("exists: %w: dial tcp: connection refused", eventlog.ErrUnavailable), 200, ""},
		{"OK redis loading", fmt.Errorf("read: %w: LOADING Redis is loading the dataset in memory", eventlog.ErrUnavailable), 200, ""},
		{"OK deadline", fmt.Errorf("read: %w", context.DeadlineExceeded), 200, ""},
		{"OK request context ended (shutdown)", fmt.Errorf("read: %w", context.Canceled), 200, ""},
		{"too many streams stays 429", fanout.ErrTooManyStreams, 429, "rate_limited"},
		{"cursor expired stays 410", &eventlog.ResetError{Reason: eventlog.ErrCursorExpired, Oldest: eventlog.Cursor{Gen: "a", Index: 4}}, 410, "cursor_expired"},
		{"unexpected failure stays 500", errors.New("boom"), 500, "internal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := httpapi.New(httpapi.Deps{Events: &fakeEvents{}, Streams: &fakeStreams{err: tc.err}}, httpapi.Config{})
			rec, p := do(t, h, "GET", stream, map[string]string{"Last-Event-ID": "7.ab"})
			if rec.Code != tc.status {
				t.Fatalf("status %d (%s), want %d", rec.Code, rec.Body, tc.status)
			}
			if tc.status != 200 {
				if p.Type != "urn:tandem:error:"+tc.typ {
					t.Fatalf("type %s, want %s", p.Type, tc.typ)
				}
				return
			}
			if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
				t.Fatalf("Content-Type %q", ct)
			}
			if rec.Header().Get("Cache-Control") != "no-cache" {
				t.Errorf("Cache-Control %q", rec.Header().Get("Cache-Control"))
			}
			// retry: and why, and nothing that would move Last-Event-ID.
			if got, want := rec.Body.String(), "retry: 1000\n\n: unavailable, reconnect\n\n"; got != want {
				t.Fatalf("body %q, want %q", got, want)
			}
		})
	}
	t.Run("OK configured retry", func(t *testing.T) {
		h := httpapi.New(httpapi.Deps{Events: &fakeEvents{}, Streams: &fakeStreams{err: fanout.ErrClosed}}, httpapi.Config{StreamRetry: 250 * time.Millisecond})
		rec, _ := do(t, h, "GET", stream, nil)
		if rec.Code != 200 || !strings.HasPrefix(rec.Body.String(), "retry: 250\n\n") {
			t.Fatalf("%d %q", rec.Code, rec.Body)
		}
	})
	t.Run("JSON routes keep 503", func(t *testing.T) {
		ev := &fakeEvents{err: fmt.Errorf("read: %w: dial tcp: connection refused", eventlog.ErrUnavailable)}
		h := httpapi.New(httpapi.Deps{Events: ev, Streams: &fakeStreams{}}, httpapi.Config{})
		rec, p := do(t, h, "GET", "/v1/workspaces/w/sessions/s/events", nil)
		if rec.Code != 503 || p.Type != "urn:tandem:error:unavailable" || rec.Header().Get("Retry-After") == "" {
			t.Fatalf("%d %s %v", rec.Code, rec.Body, rec.Header())
		}
	})
}
