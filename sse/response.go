package sse

import (
	"net/http"
	"time"
)

// SetHeaders sets the response headers of every event stream. Caching and
// proxy buffering would hold events back; the length is unknown.
func SetHeaders(h http.Header) {
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	h.Del("Content-Length")
}

// AppendReconnect appends what a stream that ends at once says: a retry:
// field with the delay and a comment saying why. It carries no id:, so the
// client keeps its Last-Event-ID and resumes exactly where it was.
func AppendReconnect(b []byte, retry time.Duration, why string) []byte {
	b = AppendRetry(b, int(retry.Milliseconds()))
	return AppendComment(b, why)
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
	if _, err := w.Write(AppendReconnect(nil, retry, why)); err != nil {
		return err
	}
	return http.NewResponseController(w).Flush()
}
