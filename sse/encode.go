package sse

import (
	"bytes"
	"strconv"
	"strings"
)

// AppendRetry appends the retry: field that sets the client's reconnection
// delay.
func AppendRetry(b []byte, ms int) []byte {
	b = append(b, "retry: "...)
	b = strconv.AppendInt(b, int64(ms), 10)
	return append(b, '\n', '\n')
}

// AppendEvent appends one event. An empty id or event omits that line (an
// event without id: does not move the client's Last-Event-ID). data is split
// at CR, LF and CRLF into data: lines.
func AppendEvent(b []byte, id, event string, data []byte) []byte {
	if id != "" {
		b = append(b, "id: "...)
		b = appendField(b, id)
		b = append(b, '\n')
	}
	if event != "" {
		b = append(b, "event: "...)
		b = appendField(b, event)
		b = append(b, '\n')
	}
	b = append(b, "data: "...)
	if bytes.IndexByte(data, '\n') < 0 && bytes.IndexByte(data, '\r') < 0 {
		b = append(b, data...) // one line: the common case, JSON
		return append(b, '\n', '\n')
	}
	for i := 0; i < len(data); i++ {
		switch c := data[i]; c {
		case '\r':
			if i+1 < len(data) && data[i+1] == '\n' {
				i++
			}
			b = append(b, "\ndata: "...)
		case '\n':
			b = append(b, "\ndata: "...)
		default:
			b = append(b, c)
		}
	}
	return append(b, '\n', '\n')
}

// AppendComment appends a comment line, which clients ignore; it keeps
// idle connections and proxies alive.
func AppendComment(b []byte, text string) []byte {
	b = append(b, ':')
	if text != "" {
		b = append(b, ' ')
		b = appendField(b, text)
	}
	return append(b, '\n', '\n')
}

// appendField appends s without CR, LF or NUL: the characters that would
// end the line or, for id:, make a client ignore it.
func appendField(b []byte, s string) []byte {
	if strings.IndexByte(s, '\n') < 0 && strings.IndexByte(s, '\r') < 0 && strings.IndexByte(s, 0) < 0 {
		return append(b, s...)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != '\r' && c != '\n' && c != 0 {
			b = append(b, c)
		}
	}
	return b
}
