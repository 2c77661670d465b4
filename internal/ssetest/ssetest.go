// Package ssetest is a minimal, strict SSE reader for tests: it gives the
// test full control over connections (drop, slow reads) and reports every
// field exactly as sent.
package ssetest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Event is one dispatched event.
type Event struct {
	ID    string
	HasID bool
	Type  string
	Data  string
	Retry string
}

// Conn is one open stream.
type Conn struct {
	Resp   *http.Response
	br     *bufio.Reader
	cancel context.CancelFunc
}

// Dial opens a stream; lastEventID is sent as Last-Event-ID when not "".
func Dial(ctx context.Context, url, lastEventID string, header http.Header) (*Conn, error) {
	ctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "text/event-stream")
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		cancel()
		return nil, fmt.Errorf("status %s: %s", resp.Status, b)
	}
	return &Conn{Resp: resp, br: bufio.NewReaderSize(resp.Body, 64<<10), cancel: cancel}, nil
}

// Close drops the connection.
func (c *Conn) Close() {
	c.cancel()
	c.Resp.Body.Close()
}

// Next returns the next event, skipping comments; retry: alone is
// reported as an event with only Retry set.
func (c *Conn) Next() (Event, error) { return ReadEvent(c.br) }

// ReadEvent reads the next event of an SSE body from br, skipping
// comments; retry: alone is reported as an event with only Retry set.
func ReadEvent(br *bufio.Reader) (Event, error) {
	var ev Event
	var data []string
	seen := false
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return ev, err
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			if !seen {
				continue
			}
			ev.Data = strings.Join(data, "\n")
			return ev, nil
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		seen = true
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			ev.ID, ev.HasID = value, true
		case "event":
			ev.Type = value
		case "data":
			data = append(data, value)
		case "retry":
			ev.Retry = value
		default:
			return ev, fmt.Errorf("unknown field in line %q", line)
		}
	}
}

// FromReader reads a stream from r, which starts with the HTTP response
// head (as a raw socket does).
func FromReader(r io.Reader) *RawConn {
	return &RawConn{br: bufio.NewReaderSize(r, 64<<10)}
}

// RawConn reads events from a raw byte stream.
type RawConn struct {
	br     *bufio.Reader
	inBody bool
}

// Next returns the next event, after skipping the response head.
func (c *RawConn) Next() (Event, error) {
	for !c.inBody {
		line, err := c.br.ReadString('\n')
		if err != nil {
			return Event{}, err
		}
		if line == "\r\n" {
			c.inBody = true
		}
	}
	return (&Conn{br: c.br}).Next()
}
