package sse

import (
	"bytes"
	"net/http"
	"time"
)

// KeepaliveInterval is how often an idle stream carries a keepalive comment.
const KeepaliveInterval = 15 * time.Second

// DefaultRetry is the reconnection delay a stream's retry: preamble gives
// when its server is not configured otherwise.
const DefaultRetry = 2 * time.Second

// SetHeaders sets the response headers of every event stream. Caching and
// proxy buffering would hold events back; the length is unknown.
func SetHeaders(h http.Header) {
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	h.Del("Content-Length")
}

// AppendResponseHead appends the HTTP/1.1 response head of an event stream
// written straight to a hijacked connection: 200, the headers h (as
// SetHeaders and the handlers before left them), Connection: close and the
// Date now. The body is delimited by the connection's close, not chunked,
// so the stream's bytes are its events as encoded, the same for every
// client. h is not modified.
func AppendResponseHead(b []byte, h http.Header, now time.Time) []byte {
	buf := bytes.NewBuffer(b)
	buf.WriteString("HTTP/1.1 200 OK\r\n")
	hdr := h.Clone()
	hdr.Set("Connection", "close")
	hdr.Set("Date", now.UTC().Format(http.TimeFormat))
	_ = hdr.Write(buf) // a bytes.Buffer does not fail
	buf.WriteString("\r\n")
	return buf.Bytes()
}

// appendReconnect appends what a stream that ends at once says: a retry:
// field with the delay and a comment saying why. It carries no id:, so the
// client keeps its Last-Event-ID and resumes exactly where it was.
func appendReconnect(b []byte, retry time.Duration, why string) []byte {
	b = AppendRetry(b, retry)
	return appendComment(b, why)
}

// WriteReconnect answers a stream request that cannot be served for a
// moment (Redis restarting, the node shutting down): 200, the stream
// headers, retry: and a comment, then the handler ends the response. A
// WHATWG EventSource gives up for good on any status but 200; on the end
// of a 200 stream it waits retry and reconnects with its Last-Event-ID by
// itself.
func WriteReconnect(w http.ResponseWriter, retry time.Duration, why string) error {
	SetHeaders(w.Header())
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(appendReconnect(nil, retry, why)); err != nil {
		return err
	}
	return http.NewResponseController(w).Flush()
}
