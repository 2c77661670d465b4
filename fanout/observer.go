package fanout

// Observer receives what the hub does, for metrics and logs. Its methods
// are called from the hub's goroutines and must be fast and non-blocking.
type Observer interface {
	// Error reports a failure the hub handled itself (it retries).
	Error(err error)
	// Clients reports a change in the number of connected clients.
	Clients(delta int)
	// Delivered reports events written to clients, and for each of them the
	// time from its append (createdAt) to its write, in milliseconds.
	Delivered(n int, appendToSendMs int64)
	// Resumed reports how a stream with a cursor started: exactly at the
	// cursor, or with a reset event.
	Resumed(exact bool)
	// Fallback reports a client served from Redis because it was behind
	// the session's buffer, or detached because its socket was full.
	Fallback()
}

type nopObserver struct{}

func (nopObserver) Error(error)          {}
func (nopObserver) Clients(int)          {}
func (nopObserver) Delivered(int, int64) {}
func (nopObserver) Resumed(bool)         {}
func (nopObserver) Fallback()            {}
