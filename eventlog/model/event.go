package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// Event is one persisted entry of a session stream.
type Event struct {
	ID        string // its cursor in text form; the SSE id:
	Index     uint64 // eventIndex: 1, 2, 3… without gaps
	SessionID string
	CreatedAt int64  // milliseconds since the epoch, from Redis's clock
	Type      string // chat.user, session.event, session.status…
	// Body is a JSON object holding the type's own fields. Its keys must not
	// be id, eventIndex, sessionId, createdAt or type.
	Body json.RawMessage
	// Source is the producer's opaque position (the ACP SSE event id that
	// produced the entry), or "".
	Source string
	Epoch  uint64 // the writer's fencing epoch
	// Tag names the entry among any that ever held its index (see
	// Cursor); "" for entries written before tags.
	Tag string
}

// Cursor returns the event's position.
func (e *Event) Cursor(gen string) Cursor { return Cursor{Gen: gen, Index: e.Index, Tag: e.Tag} }

// MarshalJSON renders the event as the API shows it: the common fields
// followed by the body's fields in one flat object.
func (e Event) MarshalJSON() ([]byte, error) { return e.AppendJSON(nil), nil }

// AppendJSON appends the API form of the event to b. It does not validate
// Body; Append did.
func (e *Event) AppendJSON(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendQuote(b, e.ID)
	b = append(b, `,"eventIndex":`...)
	b = strconv.AppendUint(b, e.Index, 10)
	if e.SessionID != WorkspaceStream {
		// A workspace stream's events name their session in the body.
		b = append(b, `,"sessionId":`...)
		b = strconv.AppendQuote(b, e.SessionID)
	}
	b = append(b, `,"createdAt":`...)
	b = strconv.AppendInt(b, e.CreatedAt, 10)
	b = append(b, `,"type":`...)
	b = strconv.AppendQuote(b, e.Type)
	body := bytes.TrimSpace(e.Body)
	if len(body) > 2 {
		inner := bytes.TrimSpace(body[1 : len(body)-1])
		if len(inner) > 0 {
			b = append(b, ',')
			b = append(b, inner...)
		}
	}
	return append(b, '}')
}

// Record is what a writer asks to append.
type Record struct {
	Type   string          // [a-z][a-z0-9._]*, at most 64 bytes
	Body   json.RawMessage // a JSON object; nil means {}
	Source string          // optional source position, no control characters, at most 256 bytes
}

// ErrInvalidRecord is returned for a record Append refuses.
var ErrInvalidRecord = errors.New("invalid record")

var reservedKeys = []string{"id", "eventIndex", "sessionId", "createdAt", "type"}

// Normalize validates r and returns its body in compact form.
func (r *Record) Normalize() ([]byte, error) { return r.normalize(reservedKeys) }

// workspaceReserved are the reserved keys of a workspace stream's records:
// their sessionId is the session they are about.
var workspaceReserved = []string{"id", "eventIndex", "createdAt", "type"}

// NormalizeFor is Normalize for a record of stream sid: a workspace
// stream's records may carry sessionId.
func (r *Record) NormalizeFor(sid string) ([]byte, error) {
	if sid == WorkspaceStream {
		return r.normalize(workspaceReserved)
	}
	return r.normalize(reservedKeys)
}

func (r *Record) normalize(reserved []string) ([]byte, error) {
	if !validType(r.Type) {
		return nil, fmt.Errorf("%w: type %q", ErrInvalidRecord, r.Type)
	}
	if len(r.Source) > 256 || !printable(r.Source) {
		return nil, fmt.Errorf("%w: source position", ErrInvalidRecord)
	}
	if len(r.Body) == 0 {
		return []byte("{}"), nil
	}
	// Valid and an object, checked without decoding it: this runs for
	// every event appended.
	b := r.Body
	if !json.Valid(b) {
		return nil, fmt.Errorf("%w: body is not a JSON object", ErrInvalidRecord)
	}
	if ws := spaceOutsideStrings(b); ws {
		var buf bytes.Buffer
		if err := json.Compact(&buf, b); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidRecord, err)
		}
		b = buf.Bytes()
	}
	if len(b) < 2 || b[0] != '{' {
		return nil, fmt.Errorf("%w: body is not a JSON object", ErrInvalidRecord)
	}
	if k, ok := reservedTopKey(b, reserved); ok {
		return nil, fmt.Errorf("%w: body uses reserved key %q", ErrInvalidRecord, k)
	}
	return b, nil
}

// spaceOutsideStrings reports whether valid JSON b holds white space that
// compaction would remove.
func spaceOutsideStrings(b []byte) bool {
	in := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case in && c == '\\':
			i++
		case c == '"':
			in = !in
		case !in && (c == ' ' || c == '\t' || c == '\n' || c == '\r'):
			return true
		}
	}
	return false
}

// reservedTopKey returns a reserved key among the top-level keys of the
// compact JSON object b.
func reservedTopKey(b []byte, reservedKeys []string) (string, bool) {
	depth := 0
	expectKey := false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '{':
			depth++
			expectKey = depth == 1
		case '[':
			depth++
		case '}', ']':
			depth--
		case ',':
			expectKey = depth == 1
		case '"':
			j := i + 1
			for j < len(b) && b[j] != '"' {
				if b[j] == '\\' {
					j++
				}
				j++
			}
			if expectKey {
				expectKey = false
				raw := b[i+1 : j]
				var key string
				if bytes.IndexByte(raw, '\\') < 0 {
					key = string(raw) // no escape: the bytes are the key
				} else if err := json.Unmarshal(b[i:j+1], &key); err != nil {
					key = ""
				}
				for _, r := range reservedKeys {
					if key == r {
						return key, true
					}
				}
			}
			i = j
		}
	}
	return "", false
}

func validType(t string) bool {
	if len(t) == 0 || len(t) > 64 || t[0] < 'a' || t[0] > 'z' {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return false
		}
	}
	return true
}
