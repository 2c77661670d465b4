// Package sse owns the Server-Sent Events wire format as Tandem speaks it:
// the retry: preamble, events with id:, event: and data: lines, keepalive
// comments, and where a resuming client's position comes from.
//
// # Usage
//
//	buf = sse.AppendRetry(buf, 2000)
//	buf = sse.AppendEvent(buf, ev.ID, ev.Type, jsonBody)
//	buf = sse.AppendComment(buf, "keepalive")
//	sse.SetHeaders(w.Header())          // text/event-stream, no caching or buffering
//	sse.WriteReconnect(w, time.Second, "unavailable, reconnect") // 200 that ends at once
//	pos, from := sse.ResumePosition(r) // Last-Event-ID header, else ?cursor=
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

import "time"

// KeepaliveInterval is how often an idle stream carries a keepalive comment.
const KeepaliveInterval = 15 * time.Second
