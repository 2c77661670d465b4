package acp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// Event is one message the agent sent, as it came on the stream.
type Event struct {
	ID   string          // SSE id: the server's sequence number, "1", "2"…
	Data json.RawMessage // the JSON-RPC message
}

var errStreamIdle = errors.New("acp: stream idle for too long")

// Stream follows the SSE stream of connection serverID, strictly after
// lastEventID ("" for everything the server still holds), and calls fn for
// each message in order, from the calling goroutine. It returns:
//   - fn's error, as is, when fn fails;
//   - ctx.Err() when ctx ends;
//   - an error matching ErrUnknownConnection when the server does not know
//     the connection;
//   - ErrMalformedEvent (wrapped) when a message is not JSON;
//   - ErrEventsLost (wrapped) when the first message does not follow
//     lastEventID ("1" when lastEventID is ""): the server lost messages;
//   - ErrStreamLagged (wrapped) when a later message does not follow the one
//     before: the server skipped messages because the reader fell behind,
//     and resuming after the last message handled fetches them (ids that are
//     not decimal numbers are not checked);
//   - another error when the stream broke or the server ended it: resume
//     with the ID of the last Event fn handled.
//
// It never returns nil. Its HTTP response is closed when it returns.
func (c *Client) Stream(ctx context.Context, serverID, lastEventID string, fn func(Event) error) error {
	resp, err := c.openStream(ctx, serverID, lastEventID)
	if err != nil {
		return err
	}
	return c.readStream(ctx, serverID, lastEventID, resp, fn)
}

// openStream sends the GET and checks its answer. The caller must pass the
// response to readStream, which closes it.
func (c *Client) openStream(ctx context.Context, serverID, lastEventID string) (*http.Response, error) {
	path, err := connPath(serverID)
	if err != nil {
		return nil, err
	}
	req, err := c.newRequest(ctx, http.MethodGet, path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("acp: stream %s: %w", serverID, err)
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		se := newStatusError("stream "+serverID, resp.StatusCode, body)
		if resp.StatusCode == http.StatusNotFound {
			return nil, fmt.Errorf("%w: %w", ErrUnknownConnection, se)
		}
		return nil, se
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		resp.Body.Close()
		return nil, fmt.Errorf("acp: stream %s: content type %q", serverID, mt)
	}
	return resp, nil
}

func (c *Client) readStream(ctx context.Context, serverID, lastEventID string, resp *http.Response, fn func(Event) error) error {
	defer resp.Body.Close()

	// The idle timer closes the body, which ends a blocked read. Every read
	// re-arms it, and it is stopped while fn runs: a slow consumer is not a
	// dead server.
	var idled atomic.Bool
	idle := time.AfterFunc(c.idle, func() {
		idled.Store(true)
		resp.Body.Close()
	})
	defer idle.Stop()
	sr := newSSEReader(readerFunc(func(p []byte) (int, error) {
		n, err := resp.Body.Read(p)
		if n > 0 {
			idle.Reset(c.idle)
		}
		return n, err
	}))
	first := true
	for {
		ev, err := sr.next()
		if err != nil {
			switch {
			case ctx.Err() != nil:
				return ctx.Err()
			case idled.Load():
				return fmt.Errorf("acp: stream %s: %w", serverID, errStreamIdle)
			case errors.Is(err, io.EOF):
				return fmt.Errorf("acp: stream %s ended by the server: %w", serverID, io.ErrUnexpectedEOF)
			}
			return fmt.Errorf("acp: stream %s: %w", serverID, err)
		}
		if ev.typ != "message" {
			continue
		}
		if !json.Valid(ev.data) {
			return fmt.Errorf("acp: stream %s: event %s: %w: %.200q", serverID, ev.id, ErrMalformedEvent, ev.data)
		}
		if !follows(lastEventID, ev.id) {
			sentinel := ErrStreamLagged
			if first {
				sentinel = ErrEventsLost
			}
			return fmt.Errorf("acp: stream %s: event %s after %q: %w", serverID, ev.id, lastEventID, sentinel)
		}
		lastEventID, first = ev.id, false
		idle.Stop()
		if err := fn(Event{ID: ev.id, Data: ev.data}); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		idle.Reset(c.idle)
	}
}

// follows reports whether id may come right after prev: Sandbox Agent numbers
// a connection's messages 1, 2, 3…
func follows(prev, id string) bool {
	n, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		return true
	}
	if prev == "" {
		return n == 1
	}
	p, err := strconv.ParseUint(prev, 10, 64)
	return err != nil || n == p+1
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }
