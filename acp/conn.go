package acp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tandem-dev/tandem/internal/retry"
)

// Reconnection delays of a Conn's stream reader.
const (
	minReconnect = 50 * time.Millisecond
	maxReconnect = 2 * time.Second
)

// ConnConfig configures a Conn.
type ConnConfig struct {
	// ServerID names the connection on the server. Required.
	ServerID string

	// Agent, when set, creates the connection: it is sent with every message
	// until one is accepted, and the first should be initialize. Empty: the
	// connection exists already, and Dial fails with ErrUnknownConnection
	// when the server does not know it.
	Agent string

	// LastEventID resumes the stream strictly after this SSE id. Empty: from
	// the first message of the connection.
	LastEventID string

	// FirstID is the JSON-RPC id of the first request Call sends; later ones
	// count up. Zero: 1. Give each successive owner of a connection its own
	// range, so a response to a request of an earlier owner is never taken
	// for the answer to one of yours.
	FirstID int64

	// OnMessage is called for every message on the stream, in order, from
	// the reader goroutine; env is the zero Envelope when the message is not
	// a JSON object. A Call is resolved only after OnMessage has returned for
	// its response. Returning an error stops the Conn with that error. It
	// must not wait for a Call of this Conn (the reader would wait for
	// itself). Nil: messages are only used to resolve Calls.
	OnMessage func(ev Event, env Envelope) error

	// OnSend is called with every message before it is posted; an error
	// cancels the send and is returned to the caller. Nil: nothing.
	OnSend func(ctx context.Context, msg []byte) error
}

// Conn is one ACP connection on a Sandbox Agent server: it sends messages with
// POST and reads every message of the agent from the SSE stream, in a single
// reader goroutine that reconnects after a broken stream, resuming after the
// last message handled. See the package documentation for its guarantees.
type Conn struct {
	client *Client
	cfg    ConnConfig
	nextID atomic.Int64

	mu      sync.Mutex
	created bool // the server knows the connection: a POST was accepted or the stream opened
	started bool // the reader goroutine was started
	stop    context.CancelFunc
	lastID  string
	pending map[string]chan callResult
	err     error         // why the Conn stopped; nil while it runs
	done    chan struct{} // closed once stopped and the reader has exited
}

type callResult struct {
	result json.RawMessage
	err    error
}

// Dial returns a Conn for cfg. Without cfg.Agent it opens the stream of the
// existing connection first, and fails with ErrUnknownConnection when the
// server does not know it; with cfg.Agent it does no I/O, and the reader starts
// once the server has accepted the first message.
func (c *Client) Dial(ctx context.Context, cfg ConnConfig) (*Conn, error) {
	if cfg.ServerID == "" {
		return nil, errors.New("acp: dial: empty server id")
	}
	conn := &Conn{
		client:  c,
		cfg:     cfg,
		lastID:  cfg.LastEventID,
		pending: make(map[string]chan callResult),
		done:    make(chan struct{}),
	}
	first := cfg.FirstID
	if first == 0 {
		first = 1
	}
	conn.nextID.Store(first)
	if cfg.Agent != "" {
		return conn, nil
	}

	// The stream outlives this call: open it on the reader's own context,
	// cancelled by ctx only while opening.
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stopOpening := context.AfterFunc(ctx, cancel)
	resp, err := c.openStream(rctx, cfg.ServerID, cfg.LastEventID)
	if !stopOpening() {
		if err == nil {
			resp.Body.Close()
		}
		cancel()
		return nil, ctx.Err()
	}
	if err != nil {
		cancel()
		return nil, err
	}
	conn.created, conn.started, conn.stop = true, true, cancel
	go conn.run(rctx, resp)
	return conn, nil
}

// Close stops the Conn and waits for its reader to exit. Pending and later
// calls fail with ErrClosed. It does not delete the connection on the server
// (see Client.Delete), so another Conn can resume it.
func (c *Conn) Close() error {
	c.fail(ErrClosed)
	<-c.done
	return nil
}

// Done is closed when the Conn has stopped, by Close or by an error
// (ErrUnknownConnection, ErrAgentExited, ErrEventsLost, an OnMessage error…),
// and its reader has exited. A broken or lagging stream does not stop it: the
// reader resumes after the last message handled.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err is why the Conn stopped, or nil while it runs.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// LastEventID is the SSE id of the last message handled (given to OnMessage).
func (c *Conn) LastEventID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastID
}

// ServerID is the connection's id on the server.
func (c *Conn) ServerID() string { return c.cfg.ServerID }

// Call sends a request and returns its result, or an *RPCError when the agent
// answered with an error. The response is taken from the stream; the POST is
// abandoned when Call returns, which does not withdraw the request: when ctx
// ends first, the agent still answers and OnMessage sees it.
func (c *Conn) Call(ctx context.Context, method string, params any) (json.RawMessage, error) {
	id := c.nextID.Add(1) - 1
	msg, err := NewRequest(id, method, params)
	if err != nil {
		return nil, err
	}
	key := strconv.FormatInt(id, 10)
	answer := make(chan callResult, 1)
	c.mu.Lock()
	if c.err != nil {
		defer c.mu.Unlock()
		return nil, c.err
	}
	c.pending[key] = answer
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, key)
		c.mu.Unlock()
	}()
	if err := c.onSend(ctx, msg); err != nil {
		return nil, err
	}

	// The POST may be answered late or never, so it runs beside the wait
	// for the response; it ends (cancelled) before Call returns.
	postCtx, cancelPost := context.WithCancel(ctx)
	posted := make(chan error, 1)
	go func() {
		_, _, err := c.post(postCtx, msg)
		posted <- err
	}()
	defer func() {
		cancelPost()
		if posted != nil {
			<-posted
		}
	}()
	for {
		select {
		case r := <-answer:
			return r.result, r.err
		case err := <-posted:
			posted = nil
			if err != nil && notDelivered(err) {
				return nil, err
			}
			// Delivered, or perhaps delivered: the answer comes on the stream.
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Notify sends a notification, such as session/cancel.
func (c *Conn) Notify(ctx context.Context, method string, params any) error {
	msg, err := NewNotification(method, params)
	if err != nil {
		return err
	}
	_, _, err = c.Send(ctx, msg)
	return err
}

// Reply answers a request of the agent (such as session/request_permission)
// with result, or with rpcErr when not nil.
func (c *Conn) Reply(ctx context.Context, id json.RawMessage, result any, rpcErr *RPCError) error {
	msg, err := NewResponse(id, result, rpcErr)
	if err != nil {
		return err
	}
	_, _, err = c.Send(ctx, msg)
	return err
}

// Send posts one raw message, after OnSend, and returns the server's answer
// as Client.Post does. The answer to a request also comes on the stream.
func (c *Conn) Send(ctx context.Context, msg []byte) (int, []byte, error) {
	if err := c.Err(); err != nil {
		return 0, nil, err
	}
	if err := c.onSend(ctx, msg); err != nil {
		return 0, nil, err
	}
	return c.post(ctx, msg)
}

func (c *Conn) onSend(ctx context.Context, msg []byte) error {
	if c.cfg.OnSend == nil {
		return nil
	}
	return c.cfg.OnSend(ctx, msg)
}

func (c *Conn) post(ctx context.Context, msg []byte) (int, []byte, error) {
	c.mu.Lock()
	agent := ""
	if !c.created {
		agent = c.cfg.Agent
	}
	c.mu.Unlock()
	status, body, err := c.client.Post(ctx, c.cfg.ServerID, agent, msg)
	switch {
	case err == nil:
		c.accepted()
	case errors.Is(err, ErrUnknownConnection):
		c.fail(err)
	}
	return status, body, err
}

// notDelivered reports whether a failed POST surely did not reach the agent,
// so its answer will not come on the stream.
func notDelivered(err error) bool {
	var se *StatusError
	var op *net.OpError
	return errors.As(err, &se) || errors.Is(err, ErrUnknownConnection) || (errors.As(err, &op) && op.Op == "dial")
}

// accepted records that the server knows the connection, and starts the
// reader the first time.
func (c *Conn) accepted() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.created {
		return
	}
	c.created = true
	if c.err != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.started, c.stop = true, cancel
	go c.run(ctx, nil)
}

// fail stops the Conn with err unless it has stopped already.
func (c *Conn) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	c.err = err
	for key, ch := range c.pending {
		ch <- callResult{err: err}
		delete(c.pending, key)
	}
	if c.started {
		c.stop() // the reader closes done when it exits
	} else {
		close(c.done)
	}
}

// run is the reader goroutine: it follows the stream from resp (or opens it),
// and after a broken stream opens it again after the last message handled.
func (c *Conn) run(ctx context.Context, resp *http.Response) {
	defer close(c.done)
	wait := retry.Exponential(minReconnect, maxReconnect)
	lostAt := "-" // the resume point of the last ErrEventsLost
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		var err error
		last := c.LastEventID()
		if resp == nil {
			resp, err = c.client.openStream(ctx, c.cfg.ServerID, last)
		}
		if err == nil {
			wait.Reset()
			err = c.client.readStream(ctx, c.cfg.ServerID, last, resp, c.handle)
			resp = nil
		}
		if ctx.Err() != nil || c.Err() != nil {
			return
		}
		var se *StatusError
		switch {
		case errors.Is(err, ErrStreamLagged):
			continue // the replay buffer has what the live stream skipped
		case errors.Is(err, ErrEventsLost) && lostAt != last:
			// A burst can also make the server drop the very first live
			// message; a loss is confirmed when a second try fails too.
			lostAt = last
			continue
		case errors.Is(err, ErrUnknownConnection) || errors.Is(err, ErrEventsLost) || errors.Is(err, ErrMalformedEvent) ||
			(errors.As(err, &se) && se.Status/100 == 4):
			c.fail(err)
			return
		}
		// A broken stream, or a server that does not answer: try again.
		timer.Reset(wait.NextBackOff())
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
	}
}

// handle takes one message from the stream.
func (c *Conn) handle(ev Event) error {
	env, _ := ParseEnvelope(ev.Data)
	if c.cfg.OnMessage != nil {
		if err := c.cfg.OnMessage(ev, env); err != nil {
			err = fmt.Errorf("acp: %s: message %s: %w", c.cfg.ServerID, ev.ID, err)
			c.fail(err)
			return err
		}
	}
	c.mu.Lock()
	c.lastID = ev.ID
	if env.Kind() == KindResponse {
		key := idKey(env.ID)
		if ch, ok := c.pending[key]; ok {
			delete(c.pending, key)
			if env.Error != nil {
				ch <- callResult{err: env.Error}
			} else {
				ch <- callResult{result: env.Result}
			}
		}
	}
	c.mu.Unlock()
	if env.Method == MethodAgentExited {
		c.fail(ErrAgentExited)
		return ErrAgentExited
	}
	return nil
}
