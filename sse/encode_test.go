package sse

import (
	"bufio"
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestAppendEvent(t *testing.T) {
	for _, tc := range []struct {
		name, id, event, data, want string
	}{
		{"OK", "1.a", "chat.user", `{"a":1}`, "id: 1.a\nevent: chat.user\ndata: {\"a\":1}\n\n"},
		{"OK without id", "", "reset", `{}`, "event: reset\ndata: {}\n\n"},
		{"OK multi-line data", "", "", "a\nb\r\nc\rd", "data: a\ndata: b\ndata: c\ndata: d\n\n"},
		{"injection in id is removed", "1\n\nevent: evil\ndata: x", "t", "d", "id: 1event: evildata: x\nevent: t\ndata: d\n\n"},
		{"injection in event is removed", "1", "a\r\nid: 9", "d", "id: 1\nevent: aid: 9\ndata: d\n\n"},
		{"NUL in id is removed", "1\x002", "t", "d", "id: 12\nevent: t\ndata: d\n\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(AppendEvent(nil, tc.id, tc.event, []byte(tc.data))); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
	if got := string(appendComment(nil, "keep\nalive")); got != ": keepalive\n\n" {
		t.Fatalf("comment = %q", got)
	}
	if got := string(AppendKeepalive(nil)); got != ": keepalive\n\n" {
		t.Fatalf("keepalive = %q", got)
	}
	if got := string(AppendRetry(nil, 2*time.Second+500*time.Microsecond)); got != "retry: 2000\n\n" {
		t.Fatalf("retry = %q", got)
	}
}

func TestAppendReset(t *testing.T) {
	for _, tc := range []struct{ name, reason, oldest, want string }{
		{"OK", "cursor_expired", "41.a1b2", "event: reset\ndata: {\"reason\":\"cursor_expired\",\"oldest\":\"41.a1b2\"}\n\n"},
		{"OK empty stream", "cursor_unknown", "", "event: reset\ndata: {\"reason\":\"cursor_unknown\",\"oldest\":\"\"}\n\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := string(AppendReset([]byte("x"), tc.reason, tc.oldest))
			if got != "x"+tc.want {
				t.Fatalf("got %q, want %q", got, "x"+tc.want)
			}
			if evs := parse(got[1:]); len(evs) != 1 || evs[0]["id"] != "" {
				t.Fatalf("parsed %v: want one event without id", evs)
			}
		})
	}
}

func TestAppendResponseHead(t *testing.T) {
	h := http.Header{}
	SetHeaders(h)
	h.Set("Access-Control-Allow-Origin", "https://a.example")
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))
	got := string(AppendResponseHead([]byte("x"), h, now))
	want := "xHTTP/1.1 200 OK\r\n" +
		"Access-Control-Allow-Origin: https://a.example\r\n" +
		"Cache-Control: no-cache\r\n" +
		"Connection: close\r\n" +
		"Content-Type: text/event-stream; charset=utf-8\r\n" +
		"Date: Fri, 02 Jan 2026 02:04:05 GMT\r\n" +
		"X-Accel-Buffering: no\r\n\r\n"
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if h.Get("Connection") != "" || h.Get("Date") != "" {
		t.Fatalf("the caller's headers were modified: %v", h)
	}
}

// FuzzAppendEventFunc: the appending encoder writes exactly what
// AppendEvent writes, whatever the id, the event and the data are.
func FuzzAppendEventFunc(f *testing.F) {
	f.Add("3.ab", "chat.user", []byte(`{"text":"hi"}`))
	f.Add("1.a\n", "x\revent", []byte("a\nb"))
	f.Add("", "", []byte(""))
	f.Add("1\x00", "t", []byte("\r"))
	f.Fuzz(func(t *testing.T, id, event string, data []byte) {
		got := string(AppendEventFunc([]byte("prefix"), id, event, func(b []byte) []byte { return append(b, data...) }))
		want := "prefix" + string(AppendEvent(nil, id, event, data))
		if got != want {
			t.Fatalf("AppendEventFunc = %q, want %q", got, want)
		}
	})
}

// parse is an independent reading of the WHATWG event stream rules.
func parse(stream string) (events []map[string]string) {
	sc := bufio.NewScanner(strings.NewReader(stream))
	sc.Buffer(nil, 1<<20)
	cur := map[string]string{}
	var data []string
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if len(cur) > 0 || data != nil {
				cur["data"] = strings.Join(data, "\n")
				events = append(events, cur)
			}
			cur, data = map[string]string{}, nil
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		k, v, _ := strings.Cut(line, ":")
		v = strings.TrimPrefix(v, " ")
		if k == "data" {
			data = append(data, v)
		} else {
			if _, dup := cur[k]; dup {
				cur["dup"] = k
			}
			cur[k] = v
		}
	}
	return events
}

// FuzzAppendEvent: whatever the caller passes, the output is exactly one
// event whose id and event fields are the input without CR, LF and NUL,
// and whose data is the input's lines joined by LF.
func FuzzAppendEvent(f *testing.F) {
	f.Add("1.a", "chat.user", []byte(`{"x":1}`))
	f.Add("1\n\nid: 2", "e\r\nevent: x", []byte("a\r\n\r\nb"))
	f.Add("", "", []byte(""))
	f.Add("x\r", "\n", []byte("\r"))
	f.Fuzz(func(t *testing.T, id, event string, data []byte) {
		out := AppendEvent(nil, id, event, data)
		evs := parse(string(out))
		if len(evs) != 1 {
			t.Fatalf("%d events from %q", len(evs), out)
		}
		ev := evs[0]
		clean := func(s string) string {
			var b []byte
			for i := 0; i < len(s); i++ {
				if s[i] != '\r' && s[i] != '\n' && s[i] != 0 {
					b = append(b, s[i])
				}
			}
			return string(b)
		}
		if ev["dup"] != "" {
			t.Fatalf("field %s appears twice in %q", ev["dup"], out)
		}
		if want := clean(id); want != "" && ev["id"] != strings.TrimPrefix(want, " ") && ev["id"] != want {
			t.Fatalf("id %q, want %q", ev["id"], want)
		}
		if want := clean(event); want != "" && ev["event"] != want && ev["event"] != strings.TrimPrefix(want, " ") {
			t.Fatalf("event %q, want %q", ev["event"], want)
		}
		norm := strings.ReplaceAll(strings.ReplaceAll(string(data), "\r\n", "\n"), "\r", "\n")
		if ev["data"] != norm {
			t.Fatalf("data %q, want %q", ev["data"], norm)
		}
		if bytes.Count(out, []byte("\n\n")) < 1 || !bytes.HasSuffix(out, []byte("\n\n")) {
			t.Fatalf("not terminated: %q", out)
		}
	})
}

func BenchmarkAppendEvent(b *testing.B) {
	data := []byte(`{"id":"1234.18b7e2c4d5f01","eventIndex":1234,"sessionId":"default","createdAt":1700000000000,"type":"session.event","connectionId":"c1","sender":"agent","payload":{"jsonrpc":"2.0","method":"session/update","params":{"sessionId":"s","update":{"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":"Hello there, here is a chunk of the answer"}}}}}`)
	buf := make([]byte, 0, 1024)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendEvent(buf[:0], "1234.18b7e2c4d5f01", "session.event", data)
	}
}

func BenchmarkAppendEventFunc(b *testing.B) {
	data := []byte(`{"id":"1234.18b7e2c4d5f01","eventIndex":1234,"sessionId":"default","createdAt":1700000000000,"type":"session.event","connectionId":"c1","sender":"agent","payload":{"jsonrpc":"2.0","method":"session/update","params":{"sessionId":"s","update":{"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":"Hello there, here is a chunk of the answer"}}}}}`)
	buf := make([]byte, 0, 1024)
	appendData := func(b []byte) []byte { return append(b, data...) }
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendEventFunc(buf[:0], "1234.18b7e2c4d5f01", "session.event", appendData)
	}
}

func TestWriteReconnect(t *testing.T) {
	rec := httptest.NewRecorder()
	rec.Header().Set("Content-Length", "12")
	if err := WriteReconnect(rec, 1500*time.Millisecond, "unavailable,\nreconnect"); err != nil {
		t.Fatal(err)
	}
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d, want 200", rec.Code)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("Content-Type %q", ct)
	}
	if rec.Header().Get("Content-Length") != "" || rec.Header().Get("X-Accel-Buffering") != "no" {
		t.Fatalf("headers %v", rec.Header())
	}
	if got, want := rec.Body.String(), "retry: 1500\n\n: unavailable,reconnect\n\n"; got != want {
		t.Fatalf("body %q, want %q", got, want)
	}
	if !rec.Flushed {
		t.Fatal("not flushed")
	}
	for _, ev := range parse(rec.Body.String()) {
		if _, ok := ev["id"]; ok || ev["data"] != "" {
			t.Fatalf("sent %v: it must neither dispatch an event nor move Last-Event-ID", ev)
		}
	}
}
