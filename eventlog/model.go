package eventlog

import "github.com/tandem-dev/tandem/eventlog/model"

// The data model lives in eventlog/model, which imports no Redis client, so
// that the domain (workspace) can use it without depending on Redis. These
// names keep the adapter's callers (fanout, httpapi, the tools) as they
// were.
type (
	Event        = model.Event
	Record       = model.Record
	Part         = model.Part
	Cursor       = model.Cursor
	ResetError   = model.ResetError
	RewoundError = model.RewoundError
)

var (
	ErrUnavailable     = model.ErrUnavailable
	ErrStaleWriter     = model.ErrStaleWriter
	ErrInvalidRecord   = model.ErrInvalidRecord
	ErrInvalidID       = model.ErrInvalidID
	ErrCursorMalformed = model.ErrCursorMalformed
	ErrCursorExpired   = model.ErrCursorExpired
	ErrCursorUnknown   = model.ErrCursorUnknown
	ErrCursorRewritten = model.ErrCursorRewritten
	ErrDuplicate       = model.ErrDuplicate
	ErrWithdrawn       = model.ErrWithdrawn
	ErrHistoryRewound  = model.ErrHistoryRewound
)

// ParseCursor parses a cursor's text form; see model.ParseCursor.
func ParseCursor(s string) (Cursor, error) { return model.ParseCursor(s) }
