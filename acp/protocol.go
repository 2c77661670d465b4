package acp

import "encoding/json"

// ProtocolVersion is the ACP version Tandem speaks.
const ProtocolVersion = 1

// ACP methods Tandem uses, and Sandbox Agent's own notification.
const (
	MethodInitialize    = "initialize"
	MethodAuthenticate  = "authenticate"
	MethodSessionNew    = "session/new"
	MethodSessionPrompt = "session/prompt"
	MethodSessionCancel = "session/cancel" // a notification
	MethodSessionUpdate = "session/update" // a notification from the agent

	// MethodAgentExited is the notification Sandbox Agent sends on the
	// stream when the agent process ends, params {code, success}.
	MethodAgentExited = "_adapter/agent_exited"
)

// Stop reasons of a prompt turn.
const (
	StopEndTurn   = "end_turn"
	StopCancelled = "cancelled"
)

// InitializeParams are the params of initialize.
type InitializeParams struct {
	ProtocolVersion    int            `json:"protocolVersion"`
	ClientCapabilities map[string]any `json:"clientCapabilities"`
}

// MarshalJSON sends clientCapabilities as {} when nil, as ACP requires the field.
func (p InitializeParams) MarshalJSON() ([]byte, error) {
	type plain InitializeParams
	if p.ClientCapabilities == nil {
		p.ClientCapabilities = map[string]any{}
	}
	return json.Marshal(plain(p))
}

// NewSessionParams are the params of session/new.
type NewSessionParams struct {
	Cwd        string            `json:"cwd"`
	MCPServers []json.RawMessage `json:"mcpServers"`
}

// MarshalJSON sends mcpServers as [] when nil, as ACP requires the field.
func (p NewSessionParams) MarshalJSON() ([]byte, error) {
	type plain NewSessionParams
	if p.MCPServers == nil {
		p.MCPServers = []json.RawMessage{}
	}
	return json.Marshal(plain(p))
}

// NewSessionResult is the result of session/new.
type NewSessionResult struct {
	SessionID string `json:"sessionId"`
}

// ContentBlock is a block of a prompt or of an agent message. Only text
// blocks are modelled; others keep their type.
type ContentBlock struct {
	Type string `json:"type"`
	Text string `json:"text,omitempty"`
}

// TextBlock is a text content block.
func TextBlock(text string) ContentBlock { return ContentBlock{Type: "text", Text: text} }

// PromptParams are the params of session/prompt.
type PromptParams struct {
	SessionID string         `json:"sessionId"`
	Prompt    []ContentBlock `json:"prompt"`
}

// PromptResult is the result of session/prompt.
type PromptResult struct {
	StopReason string `json:"stopReason"`
}

// CancelParams are the params of session/cancel.
type CancelParams struct {
	SessionID string `json:"sessionId"`
}

// SessionNotification is the params of session/update. Update is kept raw:
// its shape depends on Update's "sessionUpdate" field.
type SessionNotification struct {
	SessionID string          `json:"sessionId"`
	Update    json.RawMessage `json:"update"`
}
