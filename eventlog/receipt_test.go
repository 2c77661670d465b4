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
	first, err := l.appendParts(ctx, ws, ep, parts, "a1a1a1a1")
	if err != nil {
		t.Fatal(err)
	}
	again, err := l.appendParts(ctx, ws, ep, parts, "a1a1a1a1")
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != 1 || len(again[0]) != 2 || again[0][0].ID != first[0][0].ID || again[0][1].ID != first[0][1].ID || again[0][0].CreatedAt != first[0][0].CreatedAt {
		t.Fatalf("second send answered %+v, the first %+v", again, first)
	}
	if n, _ := rdb.XLen(ctx, StreamKey(ws, "s")).Result(); n != 2 {
		t.Fatalf("the stream holds %d entries, want 2", n)
	}
	// The same records under another call's token (a retry that went out
	// on another connection while the first call's bytes were held back)
	// are in the stream already: skipped, whatever the order.
	dup, err := l.appendParts(ctx, ws, ep, parts, "c3c3c3c3")
	if err != nil {
		t.Fatal(err)
	}
	if len(dup) != 1 || len(dup[0]) != 0 {
		t.Fatalf("the same records again appended %+v", dup)
	}
	if n, _ := rdb.XLen(ctx, StreamKey(ws, "s")).Result(); n != 2 {
		t.Fatalf("the stream holds %d entries, want 2", n)
	}
	// Another call appends, after the first.
	parts[0].Records[0].Source, parts[0].Records[1].Source = "9", "10"
	next, err := l.appendParts(ctx, ws, ep, parts, "b2b2b2b2")
	if err != nil {
		t.Fatal(err)
	}
	if next[0][0].Index != 3 {
		t.Fatalf("the next call's first eventIndex is %d, want 3", next[0][0].Index)
	}
	// The receipt lives in the stream's state: no key per call.
	if n, _ := rdb.Exists(ctx, "{ws:"+ws+"}:receipt:b2b2b2b2").Result(); n != 0 {
		t.Fatal("a receipt key per call")
	}
	if tok, _ := rdb.HGet(ctx, StateKey(ws, "s"), "tok").Result(); tok != "b2b2b2b2" {
		t.Fatalf("the state's token is %q, want b2b2b2b2", tok)
	}
}
