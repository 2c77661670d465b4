package eventlog

import (
	"context"
	"testing"

	"github.com/tandem-dev/tandem/internal/redistest"
)

// The same append call sent twice, as go-redis sends a command again when
// the connection broke before the reply (Redis killed right after the
// script ran), lands once, and both sends get the same reply. Found by the
// fault campaign: an agent message appeared twice after a redis-server
// restart.
func TestAppendSentTwiceLandsOnce(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Start(t, redistest.Options{}).Client(t)
	l := New(rdb, Config{})
	const ws = "w"
	ep, err := l.AcquireEpoch(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	parts := []Part{{Session: "s", State: map[string]string{"conn": "c"}, Records: []Record{
		{Type: "session.event", Body: []byte(`{"n":1}`), Source: "7"},
		{Type: "session.event", Body: []byte(`{"n":2}`), Source: "8"},
	}}}
	first, err := l.appendParts(ctx, ws, ep, parts, "tok1")
	if err != nil {
		t.Fatal(err)
	}
	again, err := l.appendParts(ctx, ws, ep, parts, "tok1")
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != 1 || len(again[0]) != 2 || again[0][0].ID != first[0][0].ID || again[0][1].ID != first[0][1].ID || again[0][0].CreatedAt != first[0][0].CreatedAt {
		t.Fatalf("second send answered %+v, the first %+v", again, first)
	}
	if n, _ := rdb.XLen(ctx, StreamKey(ws, "s")).Result(); n != 2 {
		t.Fatalf("the stream holds %d entries, want 2", n)
	}
	// Another call appends, after the first.
	next, err := l.appendParts(ctx, ws, ep, parts, "tok2")
	if err != nil {
		t.Fatal(err)
	}
	if next[0][0].Index != 3 {
		t.Fatalf("the next call's first eventIndex is %d, want 3", next[0][0].Index)
	}
	// The receipt lives in the stream's state: no key per call.
	if n, _ := rdb.Exists(ctx, "{ws:"+ws+"}:receipt:tok2").Result(); n != 0 {
		t.Fatal("a receipt key per call")
	}
	if tok, _ := rdb.HGet(ctx, StateKey(ws, "s"), "tok").Result(); tok != "tok2" {
		t.Fatalf("the state's token is %q, want tok2", tok)
	}
}
