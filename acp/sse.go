package acp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// maxLineSize bounds one SSE line, and so one message: a tool call can carry
// a whole file, but a server that never ends a line must not exhaust memory.
const maxLineSize = 64 << 20

var errLineTooLong = errors.New("acp: SSE line too long")

// sseEvent is one dispatched SSE event.
type sseEvent struct {
	id    string // the last event id in force when it was dispatched
	typ   string // "message" unless an event field said otherwise
	data  []byte
	hasID bool
}

// sseReader parses an event stream as the WHATWG HTML standard says
// (section "Parsing an event stream"): lines end with CRLF, LF or CR; a line
// starting with a colon is a comment; "data" fields accumulate with LF between
// them; an empty line dispatches the event; an id containing NUL is ignored;
// at end of input an undispatched event is dropped.
type sseReader struct {
	r      *bufio.Reader
	skipLF bool // the previous line ended with CR: a LF right after it is part of that end
	line   []byte

	lastID string
	hasID  bool
	typ    []byte
	data   bytes.Buffer
}

func newSSEReader(r io.Reader) *sseReader {
	return &sseReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// readLine returns the next line without its end. The slice is valid until
// the next call. It ends a line at a CR at once rather than waiting to see
// whether a LF follows, so a CR-terminated event is dispatched without delay.
func (s *sseReader) readLine() ([]byte, error) {
	s.line = s.line[:0]
	for {
		if _, err := s.r.Peek(1); err != nil {
			if err == io.EOF && len(s.line) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		buf, _ := s.r.Peek(s.r.Buffered())
		if s.skipLF {
			s.skipLF = false
			if buf[0] == '\n' {
				s.r.Discard(1)
				continue
			}
		}
		i := bytes.IndexAny(buf, "\r\n")
		if i < 0 {
			if len(s.line)+len(buf) > maxLineSize {
				return nil, errLineTooLong
			}
			s.line = append(s.line, buf...)
			s.r.Discard(len(buf))
			continue
		}
		if len(s.line)+i > maxLineSize {
			return nil, errLineTooLong
		}
		s.line = append(s.line, buf[:i]...)
		s.skipLF = buf[i] == '\r'
		s.r.Discard(i + 1)
		return s.line, nil
	}
}

// next returns the next event. Its data is a fresh slice.
func (s *sseReader) next() (sseEvent, error) {
	for {
		line, err := s.readLine()
		if err != nil {
			return sseEvent{}, err
		}
		if len(line) == 0 {
			if s.data.Len() == 0 {
				s.typ = s.typ[:0]
				continue
			}
			ev := sseEvent{id: s.lastID, hasID: s.hasID, typ: "message"}
			if len(s.typ) > 0 {
				ev.typ = string(s.typ)
			}
			ev.data = bytes.Clone(bytes.TrimSuffix(s.data.Bytes(), []byte("\n")))
			s.data.Reset()
			s.typ = s.typ[:0]
			return ev, nil
		}
		if line[0] == ':' {
			continue
		}
		field, value, found := bytes.Cut(line, []byte(":"))
		if found {
			value = bytes.TrimPrefix(value, []byte(" "))
		}
		switch string(field) {
		case "event":
			s.typ = append(s.typ[:0], value...)
		case "data":
			if s.data.Len()+len(value) > maxLineSize {
				return sseEvent{}, errLineTooLong
			}
			s.data.Write(value)
			s.data.WriteByte('\n')
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				s.lastID, s.hasID = string(value), true
			}
		}
		// "retry" and unknown fields are ignored: callers choose their own
		// reconnection delay.
	}
}
