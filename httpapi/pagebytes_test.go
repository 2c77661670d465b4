package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tandem-dev/tandem/eventlog"
	"github.com/tandem-dev/tandem/httpapi"
)

// A page of events is bounded by bytes too: large events come a few at a
// time (one alone when it is larger than the bound), with nextCursor, and
// paging on yields every event once, in order.
func TestEventPagesAreBoundedByBytes(t *testing.T) {
	evs := make([]eventlog.Event, 40)
	for i := range evs {
		size := 100 << 10
		if i == 7 {
			size = 3 << 20 // larger than the bound on its own
		}
		evs[i] = eventlog.Event{ID: fmt.Sprintf("%d.a", i+1), Index: uint64(i + 1), SessionID: "s", Type: "chat.user",
			Body: json.RawMessage(`{"text":"` + strings.Repeat("x", size) + `"}`)}
	}
	h := httpapi.New(httpapi.Deps{Events: &fakeEvents{evs: evs}, Streams: &fakeStreams{}}, httpapi.Config{MaxPageBytes: 1 << 20})
	cursor, got, pages := "", 0, 0
	for pages < 100 {
		pages++
		req := httptest.NewRequest("GET", "http://127.0.0.1/v1/workspaces/w/sessions/s/events?limit=1000&cursor="+cursor, nil)
		if cursor == "" {
			req = httptest.NewRequest("GET", "http://127.0.0.1/v1/workspaces/w/sessions/s/events?limit=1000", nil)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			t.Fatalf("page %d: %d %s", pages, rec.Code, rec.Body.String()[:200])
		}
		if rec.Body.Len() > (3<<20)+(64<<10) {
			t.Fatalf("page %d is %d bytes", pages, rec.Body.Len())
		}
		var p struct {
			Items []struct {
				ID         string
				EventIndex uint64 `json:"eventIndex"`
			}
			NextCursor string
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
			t.Fatal(err)
		}
		for _, it := range p.Items {
			got++
			if it.EventIndex != uint64(got) {
				t.Fatalf("event %d where %d was due", it.EventIndex, got)
			}
		}
		if len(p.Items) > 10 {
			t.Errorf("page %d holds %d events of 100 KiB", pages, len(p.Items))
		}
		if p.NextCursor == "" {
			break
		}
		cursor = p.NextCursor
	}
	if got != len(evs) || pages < 5 {
		t.Errorf("%d events in %d pages", got, pages)
	}
}
