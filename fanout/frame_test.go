package fanout

import (
	"encoding/json"
	"testing"

	"github.com/tandem-dev/tandem/eventlog"
	"github.com/tandem-dev/tandem/sse"
)

// FuzzAppendFrame: the fast frame encoder writes exactly what the general
// SSE encoder writes for the event's JSON, whatever the event holds.
func FuzzAppendFrame(f *testing.F) {
	f.Add("3.ab", "chat.user", `{"text":"hi"}`, uint64(3))
	f.Add("1.a\n", "x\revent", `{"text":"a\nb"}`, uint64(1))
	f.Add("", "", `{}`, uint64(0))
	f.Fuzz(func(t *testing.T, id, typ, body string, idx uint64) {
		if !json.Valid([]byte(body)) {
			return
		}
		ev := eventlog.Event{ID: id, Index: idx, SessionID: "s", CreatedAt: 1, Type: typ, Body: json.RawMessage(body)}
		got := string(appendFrame([]byte("prefix"), &ev))
		want := "prefix" + string(sse.AppendEvent(nil, id, typ, ev.AppendJSON(nil)))
		if got != want {
			t.Fatalf("appendFrame = %q, want %q", got, want)
		}
	})
}
