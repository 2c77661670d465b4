// Package sse owns the Server-Sent Events wire format as Tandem speaks it:
// every byte a stream sends (the response headers and, on a hijacked
// connection, the response head; the retry: preamble; events with id:,
// event: and data: lines; reset events; keepalive and reconnect comments),
// the default keepalive interval and retry delay, and where a resuming
// client's position comes from.
//
// # Usage
//
//	sse.SetHeaders(w.Header())                // text/event-stream, no caching or buffering
//	buf = sse.AppendRetry(buf, sse.DefaultRetry) // the preamble: retry: 2000
//	buf = sse.AppendEvent(buf, ev.ID, ev.Type, jsonBody)
//	buf = sse.AppendEventFunc(buf, ev.ID, ev.Type, ev.AppendJSON) // the same, encoded in place
//	buf = sse.AppendReset(buf, "cursor_expired", oldestID)
//	buf = sse.AppendKeepalive(buf)            // every KeepaliveInterval of silence
//	head := sse.AppendResponseHead(nil, w.Header(), time.Now()) // a hijacked connection's head
//	sse.WriteReconnect(w, time.Second, "unavailable, reconnect") // 200 that ends at once
//	pos, from, ok := sse.ResumePosition(r)    // Last-Event-ID header, else ?cursor=
//
// # Guarantees
//
// Nothing a caller passes can break the framing: CR, LF and NUL are removed
// from id: and event: values and from comments, and data is split into one
// data: line per line of input, so a client always parses exactly the event
// the caller meant (FuzzAppendEvent; FuzzAppendEventFunc for the in-place
// encoder). Reset and reconnect answers never carry an id: line, so a
// client resumes from the Last-Event-ID it already had.
//
// Where the contract's guarantees live in this package (architecture.md,
// "Guarantees"):
//
//   - 1, order and completeness: the id: of every event is its cursor,
//     written by AppendEvent and AppendEventFunc and read back by
//     ResumePosition (Last-Event-ID over ?cursor=, as a reconnecting
//     EventSource needs); a reset event (AppendReset) moves no cursor.
//     Order itself is fanout's (see its doc). Tested by TestAppendEvent,
//     TestAppendReset and the fuzzers; ResumePosition by httpapi's
//     TestStreamStartPosition.
//   - 7, a transient fault never ends a native EventSource: WriteReconnect
//     (response.go) is the 200 with the stream headers, retry: and a
//     comment that httpapi's handleError sends instead of a 503 on the
//     stream route. Tested by TestWriteReconnect, httpapi's
//     TestStreamTransientErrors and node's TestStreamWhileRedisDownGetsRetry
//     and TestStreamWhileDrainingGetsRetry.
//
// The stream contract's other bytes: SetHeaders (Cache-Control: no-cache,
// X-Accel-Buffering: no), AppendRetry (the stream starts with retry:),
// AppendKeepalive every KeepaliveInterval (fanout's TestKeepaliveOfIdleStreams
// checks the timing). The package depends on the standard library only.
//
// # Concurrency properties
//
// The functions are pure; they append to the caller's buffer.
package sse
