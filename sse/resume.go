package sse

import "net/http"

// Origin says where a stream's starting position came from.
type Origin int

const (
	FromStart       Origin = iota // neither header nor query: the start
	FromLastEventID               // the Last-Event-ID header of a reconnecting client
	FromQuery                     // the ?cursor= query parameter
)

// maxPositionLen bounds a position; anything longer is malformed whatever
// the cursor syntax is.
const maxPositionLen = 256

// ResumePosition returns the raw position a stream starts after: the
// Last-Event-ID header when present (a reconnecting EventSource sends it
// and it must win over the URL it reconnects to), else the cursor query
// parameter, else "". ok is false when the value is too long or holds
// control characters, which no id this server sent can.
func ResumePosition(r *http.Request) (pos string, from Origin, ok bool) {
	if v := r.Header.Values("Last-Event-ID"); len(v) > 0 {
		pos, from = v[0], FromLastEventID
	} else if q := r.URL.Query(); q.Has("cursor") {
		pos, from = q.Get("cursor"), FromQuery
	} else {
		return "", FromStart, true
	}
	if len(pos) > maxPositionLen {
		return "", from, false
	}
	for i := 0; i < len(pos); i++ {
		if pos[i] < 0x20 || pos[i] == 0x7f {
			return "", from, false
		}
	}
	return pos, from, true
}
