package acp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Envelope is one JSON-RPC 2.0 message. Raw fields keep the sender's bytes:
// ID is a number or a string (or null in some error responses), and is empty
// when absent.
type Envelope struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id,omitempty"`
	Method  string          `json:"method,omitempty"`
	Params  json.RawMessage `json:"params,omitempty"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   *RPCError       `json:"error,omitempty"`
}

// Kind classifies an Envelope.
type Kind int

const (
	KindInvalid      Kind = iota // none of the below
	KindRequest                  // method and id
	KindNotification             // method, no id
	KindResponse                 // id and result or error, no method
)

func (k Kind) String() string {
	switch k {
	case KindRequest:
		return "request"
	case KindNotification:
		return "notification"
	case KindResponse:
		return "response"
	}
	return "invalid"
}

// Kind tells what the message is.
func (e Envelope) Kind() Kind {
	switch {
	case e.Method != "" && len(e.ID) > 0:
		return KindRequest
	case e.Method != "":
		return KindNotification
	case len(e.ID) > 0 && (len(e.Result) > 0 || e.Error != nil):
		return KindResponse
	}
	return KindInvalid
}

// ParseEnvelope decodes one message. It fails when b is not a JSON object;
// check Kind for the rest.
func ParseEnvelope(b []byte) (Envelope, error) {
	var e Envelope
	if err := json.Unmarshal(b, &e); err != nil {
		return Envelope{}, fmt.Errorf("acp: parse message: %w", err)
	}
	return e, nil
}

// NewRequest encodes a request. id must be a number or a string.
func NewRequest(id any, method string, params any) ([]byte, error) {
	raw, err := json.Marshal(id)
	if err != nil {
		return nil, fmt.Errorf("acp: request id: %w", err)
	}
	if len(raw) == 0 || (raw[0] != '"' && raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return nil, fmt.Errorf("acp: request id %s is neither a number nor a string", raw)
	}
	return encode(Envelope{ID: raw, Method: method}, params, nil)
}

// NewNotification encodes a notification.
func NewNotification(method string, params any) ([]byte, error) {
	return encode(Envelope{Method: method}, params, nil)
}

// NewResponse encodes the response to the request with this id: its result,
// or rpcErr when not nil.
func NewResponse(id json.RawMessage, result any, rpcErr *RPCError) ([]byte, error) {
	if len(id) == 0 {
		return nil, errors.New("acp: response without id")
	}
	if rpcErr != nil {
		return encode(Envelope{ID: id, Error: rpcErr}, nil, nil)
	}
	if result == nil {
		result = struct{}{}
	}
	return encode(Envelope{ID: id}, nil, result)
}

func encode(e Envelope, params, result any) ([]byte, error) {
	e.JSONRPC = "2.0"
	var err error
	if params != nil {
		if e.Params, err = json.Marshal(params); err != nil {
			return nil, fmt.Errorf("acp: %s params: %w", e.Method, err)
		}
	}
	if result != nil {
		if e.Result, err = json.Marshal(result); err != nil {
			return nil, fmt.Errorf("acp: result: %w", err)
		}
	}
	return json.Marshal(e)
}

// idKey is how response ids are matched to request ids.
func idKey(id json.RawMessage) string { return string(bytes.TrimSpace(id)) }
