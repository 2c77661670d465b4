// Package streamclient follows a Tandem event stream from Go, resuming with
// Last-Event-ID across every disconnect. It is built on r3labs/sse's client
// and used by the command-line client, the load and fault tools and tests.
//
// # Usage
//
//	err := streamclient.Follow(ctx, streamclient.Config{URL: url}, func(ev streamclient.Event) error {
//		fmt.Println(ev.ID, ev.Type, string(ev.Data))
//		return nil
//	})
//
// # Concurrency properties
//
// Follow calls the handler from one goroutine, in the order events arrive.
// It returns only when ctx ends or the handler or the server's answer says
// to stop; a clean close by the server, a broken connection and a refused
// connection all mean "reconnect", without limit.
package streamclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/r3labs/sse/v2"
	"gopkg.in/cenkalti/backoff.v1"
)

// Event is one event as received.
type Event struct {
	// ID is the event's cursor; "" for events without one (reset, presence).
	ID   string
	Type string
	Data []byte
}

// Config configures Follow. URL is required; zero values are the defaults.
type Config struct {
	URL string
	// Cursor to start after; "" follows from the start (or from where the
	// server's default puts it).
	Cursor string
	// Header is sent with every request (Authorization, ...).
	Header http.Header
	// Retry is the delay between reconnections (default 250ms).
	Retry time.Duration
	// HTTPClient to use (default: a client without timeout, as a stream
	// needs).
	HTTPClient *http.Client
	// MaxEventSize bounds one event (default 16 MiB).
	MaxEventSize int
	// OnConnect is called each time a stream starts, with the cursor it
	// resumes from, and OnDisconnect each time it ends, with the reason.
	OnConnect    func(cursor string)
	OnDisconnect func(err error)
}

// ErrRejected wraps a status that reconnecting cannot fix (4xx other than
// 408 and 429).
var ErrRejected = errors.New("stream request rejected")

// Follow streams events to fn until ctx ends (it then returns ctx.Err()),
// fn returns an error (returned as is), or the server rejects the request
// (ErrRejected).
func Follow(ctx context.Context, cfg Config, fn func(Event) error) error {
	if cfg.URL == "" {
		return errors.New("streamclient: no URL")
	}
	if cfg.Retry <= 0 {
		cfg.Retry = 250 * time.Millisecond
	}
	if cfg.MaxEventSize <= 0 {
		cfg.MaxEventSize = 16 << 20
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	last := cfg.Cursor
	var stop error
	for ctx.Err() == nil && stop == nil {
		c := sse.NewClient(cfg.URL, sse.ClientMaxBufferSize(cfg.MaxEventSize))
		c.Connection = hc
		c.Headers = map[string]string{}
		for k, vs := range cfg.Header {
			if len(vs) > 0 {
				c.Headers[k] = vs[0]
			}
		}
		if last != "" {
			c.LastEventID.Store([]byte(last))
		}
		// One attempt per loop turn: the loop is the reconnect strategy,
		// so that a clean close (which r3labs reports as success) also
		// reconnects.
		c.ReconnectStrategy = &backoff.StopBackOff{}
		c.ResponseValidator = func(_ *sse.Client, resp *http.Response) error {
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			resp.Body.Close()
			if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != 408 && resp.StatusCode != 429 {
				stop = fmt.Errorf("%w: %s", ErrRejected, resp.Status)
				return backoff.Permanent(stop)
			}
			return fmt.Errorf("stream: %s", resp.Status)
		}
		if cfg.OnConnect != nil {
			cfg.OnConnect(last)
		}
		sctx, cancel := context.WithCancel(ctx)
		err := c.SubscribeWithContext(sctx, "", func(m *sse.Event) {
			if stop != nil || (len(m.Event) == 0 && len(m.Data) == 0) {
				return // a retry: field alone
			}
			ev := Event{Type: string(m.Event), Data: append([]byte(nil), m.Data...)}
			// r3labs hands an event without id: the previous id; ours
			// carry an id exactly when they are persisted.
			if isPersisted(ev.Type) {
				ev.ID = string(m.ID)
				last = ev.ID
			}
			if err := fn(ev); err != nil {
				stop = err
				cancel()
			}
		})
		cancel()
		if cfg.OnDisconnect != nil {
			cfg.OnDisconnect(err)
		}
		if stop != nil || ctx.Err() != nil {
			break
		}
		// A constant delay on purpose, not internal/retry's backoff: it
		// is the EventSource retry: a browser uses, and the nodes answer
		// a transient fault with a clean end that should be retried at once.
		select {
		case <-ctx.Done():
		case <-time.After(cfg.Retry):
		}
	}
	if stop != nil {
		return stop
	}
	return ctx.Err()
}

// isPersisted reports whether events of this type carry an id.
func isPersisted(typ string) bool { return typ != "reset" && typ != "presence" }
