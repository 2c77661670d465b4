package acp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// Config configures a Client.
type Config struct {
	// BaseURL of the server, such as "http://127.0.0.1:2468". Required.
	BaseURL string

	// Token is sent as "Authorization: Bearer <Token>" when not empty.
	Token string

	// HTTPClient makes the requests. It should have no overall Timeout, which
	// would cut streams: every call is bounded by its context instead.
	// Nil: a client on http.DefaultTransport.
	HTTPClient *http.Client

	// StreamIdleTimeout ends a stream on which nothing has arrived for this
	// long (the server sends a heartbeat comment every 15 s), so that a
	// half-open TCP connection is noticed. Zero: 45 s.
	StreamIdleTimeout time.Duration
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	u, err := url.Parse(c.BaseURL)
	if err != nil {
		return fmt.Errorf("acp: base URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("acp: base URL %q is not an absolute http(s) URL", c.BaseURL)
	}
	if c.StreamIdleTimeout < 0 {
		return errors.New("acp: negative StreamIdleTimeout")
	}
	return nil
}

// Client talks to one Sandbox Agent server. It is safe for concurrent use.
type Client struct {
	base  string
	token string
	http  *http.Client
	idle  time.Duration
}

// New returns a Client for cfg.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Client{
		base:  strings.TrimSuffix(cfg.BaseURL, "/"),
		token: cfg.Token,
		http:  cfg.HTTPClient,
		idle:  cfg.StreamIdleTimeout,
	}
	// Never follow a redirect, whatever client was given.
	hc := http.Client{}
	if c.http != nil {
		hc = *c.http
	}
	hc.CheckRedirect = refuseRedirect
	c.http = &hc
	if c.idle == 0 {
		c.idle = 45 * time.Second
	}
	return c, nil
}

// BaseURL is the server's base URL, without a trailing slash.
func (c *Client) BaseURL() string { return c.base }

// maxBodySize bounds the bodies read whole (POST answers hold one message).
const maxBodySize = 64 << 20

// deleteWait bounds Delete: Sandbox Agent 0.4.2 removes the connection at
// once but may never answer the DELETE.
const deleteWait = 2 * time.Second

func (c *Client) newRequest(ctx context.Context, method, path string, body []byte) (*http.Request, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}

// do sends req and reads the whole answer.
func (c *Client) do(req *http.Request) (int, []byte, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBodySize))
	if err != nil {
		return resp.StatusCode, nil, err
	}
	return resp.StatusCode, body, nil
}

func connPath(serverID string) (string, error) {
	if serverID == "" {
		return "", errors.New("acp: empty server id")
	}
	return "/v1/acp/" + url.PathEscape(serverID), nil
}

// Health checks that the server answers GET /v1/health with status "ok".
func (c *Client) Health(ctx context.Context) error {
	req, err := c.newRequest(ctx, http.MethodGet, "/v1/health", nil)
	if err != nil {
		return err
	}
	status, body, err := c.do(req)
	if err != nil {
		return fmt.Errorf("acp: health: %w", err)
	}
	if status != http.StatusOK {
		return newStatusError("health", status, body)
	}
	var h struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(body, &h); err != nil || h.Status != "ok" {
		return fmt.Errorf("health: %w", ErrUnexpectedAnswer)
	}
	return nil
}

// InstallResult is what the server reports after installing an agent.
type InstallResult struct {
	AlreadyInstalled bool       `json:"already_installed"`
	Artifacts        []Artifact `json:"artifacts"`
}

// Artifact is a file an agent install wrote.
type Artifact struct {
	Kind    string `json:"kind"` // such as "agent_process", the launcher the server runs
	Path    string `json:"path"`
	Source  string `json:"source"`
	Version string `json:"version"`
}

// InstallAgent installs (or reinstalls, rewriting its launcher) an agent on
// the server.
func (c *Client) InstallAgent(ctx context.Context, agent string) (InstallResult, error) {
	if agent == "" {
		return InstallResult{}, errors.New("acp: empty agent")
	}
	req, err := c.newRequest(ctx, http.MethodPost, "/v1/agents/"+url.PathEscape(agent)+"/install", []byte("{}"))
	if err != nil {
		return InstallResult{}, err
	}
	req.Header.Set("Accept", "application/json")
	status, body, err := c.do(req)
	if err != nil {
		return InstallResult{}, fmt.Errorf("acp: install %s: %w", agent, err)
	}
	if status/100 != 2 {
		return InstallResult{}, newStatusError("install "+agent, status, body)
	}
	var r InstallResult
	if err := json.Unmarshal(body, &r); err != nil {
		return InstallResult{}, fmt.Errorf("acp: install %s: %w", agent, err)
	}
	return r, nil
}

// Post sends one JSON-RPC message on connection serverID and returns the
// server's answer: 200 with the response for a request, 202 for a
// notification or a response. agent is sent only when not empty; the first
// POST of a connection creates it and must name its agent.
//
// A non-2xx answer is a *StatusError (status and body are returned too); a
// POST without agent to a connection the server does not know (any more)
// fails with an error matching both ErrUnknownConnection and *StatusError.
// For a request, the answer may come late or never (the response is on the
// stream in any case): bound ctx accordingly.
func (c *Client) Post(ctx context.Context, serverID, agent string, msg []byte) (int, []byte, error) {
	path, err := connPath(serverID)
	if err != nil {
		return 0, nil, err
	}
	if agent != "" {
		path += "?agent=" + url.QueryEscape(agent)
	}
	req, err := c.newRequest(ctx, http.MethodPost, path, msg)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Accept", "application/json")
	status, body, err := c.do(req)
	if err != nil {
		return status, body, fmt.Errorf("acp: post %s: %w", serverID, err)
	}
	if status/100 == 2 {
		return status, body, nil
	}
	se := newStatusError("post "+serverID, status, body)
	// 0.4.2 answers an unknown connection with this 400 rather than a 404,
	// since a POST with the agent query would create it.
	if agent == "" && status == http.StatusBadRequest && strings.Contains(se.Detail, "missing required 'agent'") {
		return status, body, fmt.Errorf("%w: %w", ErrUnknownConnection, se)
	}
	return status, body, se
}

// PostWritten is Post that reports the moment the request was written
// whole to the server, by calling written once (from another goroutine):
// from then on the server has it, whatever becomes of the answer. Sandbox
// Agent answers a session/prompt only when the turn ends, or never, so the
// caller learns that its prompt arrived from this, not from the answer.
func (c *Client) PostWritten(ctx context.Context, serverID string, msg []byte, written func()) (int, []byte, error) {
	var once sync.Once
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(i httptrace.WroteRequestInfo) {
			if i.Err == nil {
				once.Do(written)
			}
		},
	})
	return c.Post(ctx, serverID, "", msg)
}

// ConnectionInfo describes a connection the server holds.
type ConnectionInfo struct {
	ServerID    string `json:"serverId"`
	Agent       string `json:"agent"`
	CreatedAtMs int64  `json:"createdAtMs"`
}

// Connections lists the connections the server holds.
func (c *Client) Connections(ctx context.Context) ([]ConnectionInfo, error) {
	req, err := c.newRequest(ctx, http.MethodGet, "/v1/acp", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	status, body, err := c.do(req)
	if err != nil {
		return nil, fmt.Errorf("acp: list connections: %w", err)
	}
	if status != http.StatusOK {
		return nil, newStatusError("list connections", status, body)
	}
	var l struct {
		Servers []ConnectionInfo `json:"servers"`
	}
	if err := json.Unmarshal(body, &l); err != nil {
		return nil, fmt.Errorf("acp: list connections: %w", err)
	}
	return l.Servers, nil
}

// Delete removes connection serverID from the server, which stops its agent
// process and ends its streams. Deleting an unknown connection succeeds.
//
// It returns within 2 s whatever ctx allows: the server removes the
// connection at once but may never answer, so when no answer came in time
// Delete succeeds if the connection is no longer listed.
func (c *Client) Delete(ctx context.Context, serverID string) error {
	path, err := connPath(serverID)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, deleteWait)
	defer cancel()
	// Keep part of the budget to look at the list when no answer comes.
	dctx, dcancel := context.WithTimeout(ctx, deleteWait*3/4)
	defer dcancel()
	req, err := c.newRequest(dctx, http.MethodDelete, path, nil)
	if err != nil {
		return err
	}
	status, body, err := c.do(req)
	switch {
	case err == nil && status/100 == 2:
		return nil
	case err == nil:
		return newStatusError("delete "+serverID, status, body)
	case dctx.Err() == nil || ctx.Err() != nil:
		return fmt.Errorf("acp: delete %s: %w", serverID, err)
	}
	conns, lerr := c.Connections(ctx)
	if lerr != nil {
		return fmt.Errorf("acp: delete %s: no answer, and %w", serverID, lerr)
	}
	if slices.ContainsFunc(conns, func(ci ConnectionInfo) bool { return ci.ServerID == serverID }) {
		return fmt.Errorf("acp: delete %s: no answer and still listed: %w", serverID, err)
	}
	return nil
}
