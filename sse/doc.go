// Package sse owns the Server-Sent Events wire format as Tandem speaks it:
// the retry: preamble, events with id:, event: and data: lines, keepalive
// comments, and where a resuming client's position comes from.
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
// the caller meant. WriteReconnect never writes an id: line, so a client
// that reconnects after it resumes from the Last-Event-ID it already had.
// The package depends on the standard library only.
//
// # Concurrency properties
//
// The functions are pure; they append to the caller's buffer.
package sse
