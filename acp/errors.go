package acp

import (
	"encoding/json"
	"errors"
	"fmt"
)

var (
	// ErrUnknownConnection means the server does not know the ACP
	// connection: never created, deleted, or lost when the server restarted.
	ErrUnknownConnection = errors.New("acp: unknown connection")

	// ErrAgentExited means the agent process of the connection ended. The
	// server keeps the connection (POSTs then fail with 502), so delete it
	// and create another.
	ErrAgentExited = errors.New("acp: agent process exited")

	// ErrClosed is returned by the calls of a Conn that has been closed.
	ErrClosed = errors.New("acp: connection closed")

	// ErrEventsLost means the first message of a stream does not follow the
	// requested Last-Event-ID: the server no longer holds the messages in
	// between (its replay buffer keeps 1024), so the connection cannot be
	// resumed without loss.
	ErrEventsLost = errors.New("acp: messages lost from the replay buffer")

	// ErrStreamLagged means a live stream skipped messages: Sandbox Agent
	// 0.4.2 drops live messages for a reader that falls behind. Resuming
	// after the last message handled gets them from the replay buffer.
	ErrStreamLagged = errors.New("acp: stream skipped messages")

	// ErrMalformedEvent means the server sent an SSE message whose data is
	// not JSON. Reconnecting would replay it, so the stream cannot go on.
	ErrMalformedEvent = errors.New("acp: malformed event")
)

// StatusError is an HTTP error answered by the server, with the fields of its
// problem+json body when it has one.
type StatusError struct {
	Op     string // what was attempted, such as "post s1"
	Status int
	Type   string // problem type, such as "urn:sandbox-agent:error:session_not_found"
	Title  string
	Detail string
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("%s: status %d", e.Op, e.Status)
	if e.Title != "" {
		msg += " " + e.Title
	}
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

func newStatusError(op string, status int, body []byte) *StatusError {
	e := &StatusError{Op: op, Status: status}
	var p struct {
		Type   string `json:"type"`
		Title  string `json:"title"`
		Detail string `json:"detail"`
	}
	if json.Unmarshal(body, &p) == nil {
		e.Type, e.Title, e.Detail = p.Type, p.Title, p.Detail
	}
	return e
}

// RPCError is a JSON-RPC error object, as answered by the agent.
type RPCError struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

func (e *RPCError) Error() string { return fmt.Sprintf("acp: agent error %d: %s", e.Code, e.Message) }
