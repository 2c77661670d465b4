package acp

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
)

// AgentInfo is one agent the server offers (GET /v1/agents).
type AgentInfo struct {
	ID                   string `json:"id"`
	Installed            bool   `json:"installed"`
	CredentialsAvailable bool   `json:"credentialsAvailable"`
}

// Agents lists the agents the server offers.
func (c *Client) Agents(ctx context.Context) ([]AgentInfo, error) {
	req, err := c.newRequest(ctx, http.MethodGet, "/v1/agents", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	status, body, err := c.do(req)
	if err != nil {
		return nil, fmt.Errorf("acp: agents: %w", err)
	}
	if status != http.StatusOK {
		return nil, newStatusError("agents", status, body)
	}
	var r struct {
		Agents []AgentInfo `json:"agents"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("acp: agents: %w", err)
	}
	return r.Agents, nil
}
