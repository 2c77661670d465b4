package sse

import (
	"bytes"
	"strconv"
	"strings"
	"time"
)

// The encoder is written by hand on purpose: it appends to the caller's
// buffer (fanout encodes each event once per node and shares the bytes
// between every client, with no allocation per client), and it is where
// the framing guarantee lives (no CR, LF or NUL in id:, event: or a
// comment), which FuzzAppendEvent and fanout's FuzzAppendFrame check
// against an independent reading of the WHATWG rules.

// AppendRetry appends the retry: field that sets the client's reconnection
// delay, in whole milliseconds.
func AppendRetry(b []byte, retry time.Duration) []byte {
	b = append(b, "retry: "...)
	b = strconv.AppendInt(b, retry.Milliseconds(), 10)
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

// AppendEventFunc appends one event whose data appendData appends straight
// into b, so that a producer with its own encoder (eventlog.Event's
// AppendJSON) writes each event once instead of encoding it to a buffer and
// copying it. It writes exactly what AppendEvent writes for the same data:
// when id or event is empty or holds CR, LF or NUL, or the data is not one
// line, the event is encoded again with AppendEvent.
func AppendEventFunc(b []byte, id, event string, appendData func([]byte) []byte) []byte {
	start := len(b)
	b = append(b, "id: "...)
	b = append(b, id...)
	b = append(b, "\nevent: "...)
	b = append(b, event...)
	b = append(b, "\ndata: "...)
	dataAt := len(b)
	b = appendData(b)
	data := b[dataAt:]
	if id == "" || event == "" || bytes.IndexByte(data, '\n') >= 0 || bytes.IndexByte(data, '\r') >= 0 ||
		strings.ContainsAny(id, "\r\n\x00") || strings.ContainsAny(event, "\r\n\x00") {
		safe := AppendEvent(nil, id, event, data)
		return append(b[:start], safe...)
	}
	return append(b, '\n', '\n')
}

// AppendReset appends the reset event of a stream whose cursor cannot be
// resumed: the reason (cursor_expired, cursor_unknown) and the id of the
// oldest retained event ("" when the stream is empty). It carries no id:,
// so the client keeps its Last-Event-ID until the next event moves it.
func AppendReset(b []byte, reason, oldest string) []byte {
	data := make([]byte, 0, 32+len(reason)+len(oldest))
	data = append(data, `{"reason":`...)
	data = strconv.AppendQuote(data, reason)
	data = append(data, `,"oldest":`...)
	data = strconv.AppendQuote(data, oldest)
	data = append(data, '}')
	return AppendEvent(b, "", "reset", data)
}

// AppendKeepalive appends the comment an idle stream carries every
// KeepaliveInterval, so that proxies and the client keep the connection.
func AppendKeepalive(b []byte) []byte { return appendComment(b, "keepalive") }

// appendComment appends a comment line, which clients ignore.
func appendComment(b []byte, text string) []byte {
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
