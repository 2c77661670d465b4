package node_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tandem-dev/tandem/internal/nodetest"
	"github.com/tandem-dev/tandem/internal/redistest"
)

// A deleted workspace's id stays tombstoned (PUT: 409 workspace_deleted,
// nothing changed) until DELETE ?purge=true removes every key of it; then
// it is created again with no sessions and no history, and a cursor from
// the old history is answered with a reset, never old events.
func TestDeleteThenPurgeWorkspace(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	rdb := rs.Client(t)
	n := nodetest.Start(t, rs.URL(), nil)
	ctx := context.Background()
	base := n.URL + "/v1/workspaces/room"
	if code := api(t, "PUT", base, map[string]any{"agent": "mock"}, nil); code != 201 {
		t.Fatalf("PUT: %d", code)
	}
	if code := api(t, "POST", base+"/sessions/default/prompt", map[string]string{"text": "hi"}, nil); code != 202 {
		t.Fatalf("prompt: %d", code)
	}
	// The test sandbox answers nothing: the history is the prompt's own
	// events, which is enough history to lose.
	var page struct {
		Items []struct {
			ID string `json:"id"`
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(page.Items) < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("no history: %+v", page)
		}
		time.Sleep(50 * time.Millisecond)
		api(t, "GET", base+"/sessions/default/events", nil, &page)
	}
	oldCursor := page.Items[len(page.Items)-1].ID
	if oldCursor == "" {
		t.Fatal("no cursor")
	}

	if code := api(t, "DELETE", base, nil, nil); code != 204 {
		t.Fatalf("DELETE: %d", code)
	}
	before := keysOf(t, rdb, "room")
	code, body := send(t, "PUT", base, `{"agent":"mock"}`, nil)
	if code != 409 || problemType(body) != "urn:tandem:error:workspace_deleted" {
		t.Fatalf("PUT of a deleted id: %d %s", code, body)
	}
	if after := keysOf(t, rdb, "room"); after != before {
		t.Fatalf("a refused PUT changed Redis:\n%s\n%s", before, after)
	}
	if code := api(t, "GET", base, nil, nil); code != 404 {
		t.Fatalf("GET of a deleted workspace: %d", code)
	}
	if code, body := send(t, "DELETE", base+"?purge=maybe", "", nil); code != 400 || problemType(body) != "urn:tandem:error:invalid_request" {
		t.Fatalf("purge=maybe: %d %s", code, body)
	}

	if code, body := send(t, "DELETE", base+"?purge=true", "", nil); code != 204 {
		t.Fatalf("purge: %d %s", code, body)
	}
	if keys := scanAll(t, rdb, "{ws:room}*"); len(keys) != 0 {
		t.Fatalf("keys left after the purge: %v", keys)
	}
	if rdb.ZScore(ctx, "tandem:active", "room").Err() == nil {
		t.Fatal("still in the active index")
	}
	if code, body := send(t, "DELETE", base+"?purge=true", "", nil); code != 404 {
		t.Fatalf("second purge: %d %s", code, body)
	}

	if code := api(t, "PUT", base, map[string]any{"agent": "mock"}, nil); code != 201 {
		t.Fatalf("PUT after the purge: %d", code)
	}
	var list struct{ Items []record }
	if code := api(t, "GET", base+"/sessions", nil, &list); code != 200 || len(list.Items) != 0 {
		t.Fatalf("sessions after the purge: %d %+v", code, list)
	}
	var empty struct{ Items []map[string]any }
	if code := api(t, "GET", base+"/sessions/default/events", nil, &empty); code != 200 && code != 404 || len(empty.Items) != 0 {
		t.Fatalf("events after the purge: %d %+v", code, empty)
	}
	// A session with the old id starts again at index 1.
	if code := api(t, "POST", base+"/sessions/default/prompt", map[string]string{"text": "again"}, nil); code != 202 {
		t.Fatalf("prompt after the purge: %d", code)
	}
	var fresh struct {
		Items []struct {
			Index uint64 `json:"eventIndex"`
		}
	}
	for deadline = time.Now().Add(10 * time.Second); len(fresh.Items) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("no new history")
		}
		time.Sleep(50 * time.Millisecond)
		api(t, "GET", base+"/sessions/default/events", nil, &fresh)
	}
	if fresh.Items[0].Index != 1 {
		t.Fatalf("first event after the purge: %+v", fresh.Items)
	}
	code, body = send(t, "GET", base+"/sessions/default/events?cursor="+oldCursor, "", nil)
	if code != http.StatusGone || !strings.Contains(body, "urn:tandem:error:cursor_") {
		t.Fatalf("old cursor after the purge: %d %s", code, body)
	}
}

// scanAll lists the keys matching pattern by SCAN.
func scanAll(t *testing.T, rdb *redis.Client, pattern string) []string {
	t.Helper()
	var out []string
	iter := rdb.Scan(context.Background(), 0, pattern, 100).Iterator()
	for iter.Next(context.Background()) {
		out = append(out, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
