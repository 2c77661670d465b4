package node_test

import (
	"context"
	"encoding/json"
	"net/url"
	"testing"
	"time"

	"github.com/tandem-dev/tandem/eventlog"
	"github.com/tandem-dev/tandem/internal/nodetest"
	"github.com/tandem-dev/tandem/internal/redistest"
	"github.com/tandem-dev/tandem/internal/ssetest"
)

// Redis lost a session's last entries and the stream was written again
// under their indexes (same generation): a page asked after a lost entry
// is 410 history_rewound, a stream from it starts with a reset of that
// reason; a cursor before the loss goes on with the new entries.
func TestRewoundStreamResetsCursors(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	n := nodetest.Start(t, rs.URL(), nil)
	rdb := rs.Client(t)
	l := eventlog.New(rdb, eventlog.Config{})
	ctx := context.Background()
	ep := holdWorkspace(t, l, "w6", "s")
	old := appendN(t, l, "w6", "s", ep, 0, 5, 5)
	if err := rdb.Save(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	lost := appendN(t, l, "w6", "s", ep, 5, 3, 5) // 6, 7, 8: acknowledged, then lost
	rs.Kill()
	rs.Restart(t)
	fresh := appendN(t, l, "w6", "s", ep, 100, 4, 5) // 6..9 again, other entries
	if fresh[0].Index != lost[0].Index || fresh[0].ID == lost[0].ID {
		t.Fatalf("fresh %s, lost %s: the restart did not rewind", fresh[0].ID, lost[0].ID)
	}
	page := func(cursor string) (int, map[string]any) {
		code, body := send(t, "GET", n.URL+"/v1/workspaces/w6/sessions/s/events?cursor="+url.QueryEscape(cursor), "", nil)
		var m map[string]any
		_ = json.Unmarshal([]byte(body), &m)
		return code, m
	}
	deadline := time.Now().Add(10 * time.Second)
	code, m := page(lost[1].ID)
	for code == 503 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		code, m = page(lost[1].ID)
	}
	if code != 410 || m["type"] != "urn:tandem:error:history_rewound" || m["oldest"] != old[0].ID {
		t.Fatalf("page after a lost entry: %d %v; want 410 history_rewound from %s", code, m, old[0].ID)
	}
	if code, m := page(old[4].ID); code != 200 || len(m["items"].([]any)) != 4 {
		t.Fatalf("page after the last kept entry: %d %v; want the 4 new entries", code, m)
	}
	c, err := ssetest.Dial(ctx, streamURL(n, "w6", "s"), lost[2].ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	first := nextEvent(t, c)
	var r struct{ Reason, Oldest string }
	_ = json.Unmarshal([]byte(first.Data), &r)
	if first.Type != "reset" || r.Reason != "history_rewound" || r.Oldest != old[0].ID {
		t.Fatalf("first event %+v, want a history_rewound reset", first)
	}
	var got []ssetest.Event
	if err := collect(c, fresh[3].ID, time.Now().Add(10*time.Second), &got); err != nil {
		t.Fatal(err)
	}
	checkReceived(t, "after the reset", got, append(append([]eventlog.Event{}, old...), fresh...))
}
