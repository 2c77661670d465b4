package model

import (
	"errors"
	"strconv"
	"strings"
)

// Cursor is a position in a session stream: the stream's generation and the
// eventIndex of the last event seen. The zero Cursor is the position before
// the first event of any generation.
//
// Its text form, the event id and the SSE id:, is
// "<eventIndex>.<gen>.<tag>", for example "42.18b7e2c4d5f01.9c04e1".
// Clients treat it as opaque. Tag names the entry that was at the index
// (a few characters of the writing call's token, kept with the entry): a
// stream that Redis rewound and wrote again under the same indexes (a
// lossy restart or failover) holds other entries there, and a cursor whose
// tag no longer matches is reset instead of silently skipping them.
// Cursors without a tag ("<eventIndex>.<gen>", from before tags, or of
// entries written before them) are judged by index and generation alone.
type Cursor struct {
	Gen   string
	Index uint64
	Tag   string
}

// Errors about cursors. ErrCursorExpired and ErrCursorUnknown come wrapped
// in a *ResetError that says where the stream can continue.
var (
	ErrCursorMalformed = errors.New("malformed cursor")
	ErrCursorExpired   = errors.New("cursor expired: events after it were trimmed")
	ErrCursorUnknown   = errors.New("cursor unknown to this stream")
	// ErrCursorRewritten: the cursor's entry is no longer in the stream,
	// or another entry holds its index: Redis lost acknowledged writes and
	// the stream was written again from an earlier point.
	ErrCursorRewritten = errors.New("cursor names an entry the stream no longer holds: its history was rewound")
)

// MaxTagLen bounds a cursor's tag: the script keeps 6 hex digits.
const MaxTagLen = 8

// maxGenLen bounds the generation: the script writes at most 14 hex digits.
const maxGenLen = 16

// IsZero reports whether c is the start of the stream.
func (c Cursor) IsZero() bool { return c.Index == 0 }

// String returns the text form; the zero Cursor is "0".
func (c Cursor) String() string {
	if c.Index == 0 {
		return "0"
	}
	return string(c.AppendText(nil))
}

// AppendText appends the text form of a non-zero cursor to b.
func (c Cursor) AppendText(b []byte) []byte {
	b = strconv.AppendUint(b, c.Index, 10)
	b = append(b, '.')
	b = append(b, c.Gen...)
	if c.Tag != "" {
		b = append(b, '.')
		b = append(b, c.Tag...)
	}
	return b
}

// ParseCursor parses the text form of a cursor. "" and "0" are the start.
// Anything else must be "<index>.<gen>" or "<index>.<gen>.<tag>": a decimal
// index without sign or leading zero, a generation of 1 to 16 lowercase
// hex digits and a tag of 1 to 8.
func ParseCursor(s string) (Cursor, error) {
	if s == "" || s == "0" {
		return Cursor{}, nil
	}
	dot := -1
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			dot = i
			break
		}
	}
	if dot <= 0 || dot > 20 || s[0] == '0' {
		return Cursor{}, ErrCursorMalformed
	}
	for i := 0; i < dot; i++ {
		if s[i] < '0' || s[i] > '9' {
			return Cursor{}, ErrCursorMalformed
		}
	}
	idx, err := strconv.ParseUint(s[:dot], 10, 64)
	if err != nil {
		return Cursor{}, ErrCursorMalformed
	}
	gen, tag, tagged := strings.Cut(s[dot+1:], ".")
	if !ValidGen(gen) || tagged && !ValidTag(tag) {
		return Cursor{}, ErrCursorMalformed
	}
	return Cursor{Gen: gen, Index: idx, Tag: tag}, nil
}

// ValidGen reports whether g is a stream generation as the append script
// writes it: 1-16 lowercase hex digits.
func ValidGen(g string) bool {
	if len(g) == 0 || len(g) > maxGenLen {
		return false
	}
	for i := 0; i < len(g); i++ {
		c := g[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// ValidTag reports whether t is an entry tag: 1-8 lowercase hex digits.
func ValidTag(t string) bool { return len(t) <= MaxTagLen && ValidGen(t) }

// ResetError says that a cursor cannot be resumed exactly, and where the
// stream continues instead: right after Continue, which is the position just
// before the oldest retained event (Oldest is that event's cursor, or the
// zero Cursor when the stream is empty).
type ResetError struct {
	Reason   error // ErrCursorExpired, ErrCursorUnknown or ErrCursorRewritten
	Oldest   Cursor
	Continue Cursor
}

func (e *ResetError) Error() string { return e.Reason.Error() }
func (e *ResetError) Unwrap() error { return e.Reason }

// OldestID is the id of the oldest retained event, as a reset event and a
// 410 name it: "" when the stream is empty.
func (e *ResetError) OldestID() string {
	if e.Oldest.IsZero() {
		return ""
	}
	return e.Oldest.String()
}

// ReasonCode is the reason as it appears in a reset event.
func (e *ResetError) ReasonCode() string {
	if errors.Is(e.Reason, ErrCursorExpired) {
		return "cursor_expired"
	}
	if errors.Is(e.Reason, ErrCursorRewritten) {
		return "history_rewound"
	}
	return "cursor_unknown"
}
