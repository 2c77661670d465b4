package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"testing"

	"github.com/tandem-dev/tandem/eventlog"
	"github.com/tandem-dev/tandem/httpapi"
)

// mixed returns n events cycling through chat.user, session.event,
// session.event, session.status.
func mixed(n int) []eventlog.Event {
	types := []string{"chat.user", "session.event", "session.event", "session.status"}
	evs := make([]eventlog.Event, n)
	for i := range evs {
		evs[i] = eventlog.Event{ID: fmt.Sprintf("%d.a", i+1), Index: uint64(i + 1), SessionID: "s", Type: types[i%4], Body: json.RawMessage(`{"n":1}`)}
	}
	return evs
}

type typedPage struct {
	Items []struct {
		ID         string
		EventIndex uint64
		Type       string
	}
	NextCursor *string
}

// Pages of ?type= hold only those types, in order, and walking them by
// nextCursor visits every such event once; nextCursor is absent exactly on
// the last page, also when that page is full.
func TestEventPageTypeFilter(t *testing.T) {
	ev := &fakeEvents{evs: mixed(2500)}
	h := httpapi.New(httpapi.Deps{Events: ev, Streams: &fakeStreams{}}, httpapi.Config{})
	for _, tc := range []struct {
		name, types string
		want        map[string]bool
		limit       int
	}{
		{"OK session.event", "session.event", map[string]bool{"session.event": true}, 250},
		{"OK comma list", "chat.user,session.status", map[string]bool{"chat.user": true, "session.status": true}, 125},
		{"OK one per page", "session.status", map[string]bool{"session.status": true}, 625},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cursor, pages, seen := "", 0, 0
			var last uint64
			for {
				rec, _ := do(t, h, "GET", "/v1/workspaces/w/sessions/s/events?limit="+fmt.Sprint(tc.limit)+"&type="+url.QueryEscape(tc.types)+"&cursor="+cursor, nil)
				var p typedPage
				if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &p) != nil {
					t.Fatalf("%d %s", rec.Code, rec.Body)
				}
				pages++
				for _, it := range p.Items {
					if !tc.want[it.Type] || it.EventIndex <= last {
						t.Fatalf("page %d: event %d of type %s after %d", pages, it.EventIndex, it.Type, last)
					}
					last = it.EventIndex
					seen++
				}
				if p.NextCursor == nil {
					break
				}
				if len(p.Items) != tc.limit {
					t.Fatalf("page %d: %d items with a nextCursor", pages, len(p.Items))
				}
				cursor = *p.NextCursor
			}
			want := 0
			for _, e := range ev.evs {
				if tc.want[e.Type] {
					want++
				}
			}
			if seen != want {
				t.Fatalf("saw %d events, want %d", seen, want)
			}
			// The matches divide into full pages: the last one is full
			// and still has no nextCursor.
			if pages != want/tc.limit {
				t.Fatalf("%d pages for %d events of limit %d (an extra empty page?)", pages, want, tc.limit)
			}
		})
	}
	t.Run("OK full last page without filter has no nextCursor", func(t *testing.T) {
		rec, _ := do(t, h, "GET", "/v1/workspaces/w/sessions/s/events?cursor=1500.a&limit=1000", nil)
		var p typedPage
		json.Unmarshal(rec.Body.Bytes(), &p)
		if rec.Code != 200 || len(p.Items) != 1000 || p.NextCursor != nil {
			t.Fatalf("%d: %d items, next %v", rec.Code, len(p.Items), p.NextCursor)
		}
	})
	t.Run("OK no match is an empty page", func(t *testing.T) {
		h := httpapi.New(httpapi.Deps{Events: &fakeEvents{evs: events(30)}, Streams: &fakeStreams{}}, httpapi.Config{})
		rec, _ := do(t, h, "GET", "/v1/workspaces/w/sessions/s/events?type=session.event", nil)
		if rec.Code != 200 || rec.Body.String() != "{\"items\":[]}\n" {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
	})
}

// A filter that matches rarely stops after a bounded scan with a
// nextCursor where it stopped, so that one request never reads a whole
// long stream; the client pages on from there.
func TestEventPageTypeFilterBoundedScan(t *testing.T) {
	evs := events(25000) // chat.user only
	evs[24000].Type = "session.event"
	ev := &fakeEvents{evs: evs}
	h := httpapi.New(httpapi.Deps{Events: ev, Streams: &fakeStreams{}}, httpapi.Config{})
	cursor, requests := "", 0
	var found []uint64
	for {
		rec, _ := do(t, h, "GET", "/v1/workspaces/w/sessions/s/events?type=session.event&cursor="+cursor, nil)
		var p typedPage
		if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &p) != nil {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
		requests++
		for _, it := range p.Items {
			found = append(found, it.EventIndex)
		}
		if p.NextCursor == nil {
			break
		}
		cursor = *p.NextCursor
	}
	if len(found) != 1 || found[0] != 24001 {
		t.Fatalf("found %v", found)
	}
	if requests != 3 || ev.calls > 26 {
		t.Fatalf("%d requests, %d reads", requests, ev.calls)
	}
}

func TestEventPageTypeErrors(t *testing.T) {
	for _, q := range []string{"type=", "type=session.evnt", "type=chat.user,", "type=chat.user,presence", "type=reset", "type=chat.user&type=nope"} {
		t.Run(q, func(t *testing.T) {
			ev := &fakeEvents{evs: events(5)}
			h := httpapi.New(httpapi.Deps{Events: ev, Streams: &fakeStreams{}}, httpapi.Config{})
			rec, p := do(t, h, "GET", "/v1/workspaces/w/sessions/s/events?"+q, nil)
			if rec.Code != 400 || p.Type != "urn:tandem:error:invalid_event_type" {
				t.Fatalf("%d %s", rec.Code, rec.Body)
			}
			if ev.calls != 0 {
				t.Fatal("a refused request reached the event log")
			}
		})
	}
}
