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

// BenchmarkAppendFrame: encoding an event for the wire appends to the
// buffer and allocates nothing.
func BenchmarkAppendFrame(b *testing.B) {
	ev := eventlog.Event{ID: "1234.18b7e2c4d5f01", Index: 1234, SessionID: "default", CreatedAt: 1700000000000, Type: "session.event",
		Body: json.RawMessage(`{"connectionId":"c1","sender":"agent","payload":{"jsonrpc":"2.0","method":"session/update","params":{"sessionId":"s","update":{"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":"Hello there, here is a chunk of the answer"}}}}}`)}
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendFrame(buf[:0], &ev)
	}
}
