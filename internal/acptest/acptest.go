package acptest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// URL is the base URL every Server answers on; the host is never resolved.
const URL = "http://sandbox.acptest"

// ReplayBuffer is how many messages of a connection a stream can replay,
// as Sandbox Agent 0.4.2 keeps.
const ReplayBuffer = 1024

// Heartbeat is how often an idle stream sends a comment.
const Heartbeat = 15 * time.Second

// Defaults of a turn without directives (those of mockagent).
const (
	DefaultChunks = 5
	DefaultDelay  = 20 * time.Millisecond
)

// Server is a fake Sandbox Agent server with a scripted agent. The zero
// value is not usable; call New.
type Server struct {
	// URL is the base URL to give acp.Config.
	URL string

	mu        sync.Mutex
	conns     map[string]*conn
	unhealthy bool
	hang      chan struct{} // non-nil while hanging; closed by Unhang
	failPosts int
	seq       int
	closed    bool

	prompts  []Prompt
	received []Message
	attaches []Attach
	deleted  []string
	health   int

	authMethods []any // advertised by initialize; session/new needs authenticate then

	turns sync.WaitGroup
}

// Prompt is a session/prompt the agent received.
type Prompt struct {
	Conn      string // the connection's server id
	SessionID string // the agent session
	ID        string // JSON-RPC id, as sent
	Blocks    []string
}

// Text is the prompt's text blocks joined, without the speaker label.
func (p Prompt) Text() string {
	if p.Speaker() != "" {
		return strings.Join(p.Blocks[1:], "")
	}
	return strings.Join(p.Blocks, "")
}

// Speaker is the name of the prompt's speaker label (a first block
// "[name]" of a prompt of more than one block), "" without one.
func (p Prompt) Speaker() string {
	if len(p.Blocks) < 2 {
		return ""
	}
	b := p.Blocks[0]
	if len(b) < 3 || b[0] != '[' || b[len(b)-1] != ']' || strings.ContainsAny(b[1:len(b)-1], "[]\n") {
		return ""
	}
	return b[1 : len(b)-1]
}

// Message is a message a client POSTed.
type Message struct {
	Conn   string
	Method string // "" for a response
	ID     string // JSON-RPC id as sent, "" for a notification
	Raw    json.RawMessage
}

// Attach is a stream request (GET) of a connection the server knew.
type Attach struct {
	Conn        string
	LastEventID string
}

type conn struct {
	id, agent string
	createdAt time.Time
	events    [][]byte      // what the agent sent; message i has id i+1
	changed   chan struct{} // closed and replaced when a message is added
	gone      chan struct{} // closed when the connection is deleted or forgotten
	sessions  map[string]*agentSession
	waiting   map[string]chan json.RawMessage // permission request id → the client's answer
	authed    bool                            // authenticate was called
}

type agentSession struct {
	id     string
	cancel context.CancelCauseFunc // of the running turn; nil when idle
}

var (
	errCancelled = errors.New("cancelled by session/cancel")
	errGone      = errors.New("connection gone")
)

// New returns a healthy Server that knows no connection.
func New() *Server {
	return &Server{URL: URL, conns: make(map[string]*conn)}
}

// Client returns an http.Client whose requests this Server answers.
func (s *Server) Client() *http.Client { return &http.Client{Transport: s} }

// Close ends every running turn (as if the server went away) and waits
// for their goroutines. Later requests fail.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	for _, c := range s.conns {
		s.dropLocked(c)
	}
	s.conns = map[string]*conn{}
	if s.hang != nil {
		close(s.hang)
		s.hang = nil
	}
	s.mu.Unlock()
	s.turns.Wait()
}

// SetAuthMethods makes initialize advertise these auth methods and
// session/new fail with -32000 "Authentication required" on a connection
// that did not call authenticate.
func (s *Server) SetAuthMethods(methods ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.authMethods = methods
}

// SetHealthy makes the health check answer 200 (true) or 503 (false).
func (s *Server) SetHealthy(ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unhealthy = !ok
}

// HealthChecks is the number of health checks answered so far.
func (s *Server) HealthChecks() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.health
}

// Restart forgets every connection, as a restarted server does: their
// streams end, their turns stop, and requests for them are answered as
// for unknown connections.
func (s *Server) Restart() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		s.dropLocked(c)
	}
	s.conns = map[string]*conn{}
}

// Hang makes every request, and every stream, wait until Unhang or until
// its context ends (a server that stopped answering).
func (s *Server) Hang() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hang == nil {
		s.hang = make(chan struct{})
	}
}

// Unhang ends Hang.
func (s *Server) Unhang() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hang != nil {
		close(s.hang)
		s.hang = nil
	}
}

// FailPosts makes the next n POSTs fail as a refused connection would,
// before anything is written.
func (s *Server) FailPosts(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failPosts = n
}

// Prompts returns the session/prompt requests received, in order.
func (s *Server) Prompts() []Prompt {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.prompts)
}

// Received returns the messages clients POSTed with this method ("" for
// responses), in order.
func (s *Server) Received(method string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, m := range s.received {
		if m.Method == method {
			out = append(out, m)
		}
	}
	return out
}

// Attaches returns the stream requests of known connections, in order.
func (s *Server) Attaches() []Attach {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.attaches)
}

// Connections returns the ids of the connections the server holds, sorted.
func (s *Server) Connections() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.conns))
	for id := range s.conns {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Deleted returns the connections deleted with DELETE, in order.
func (s *Server) Deleted() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.deleted)
}

// Sent returns the messages the agent sent on a connection the server
// holds, in stream order.
func (s *Server) Sent(connID string) []json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.conns[connID]
	if c == nil {
		return nil
	}
	out := make([]json.RawMessage, len(c.events))
	for i, e := range c.events {
		out[i] = e
	}
	return out
}

// dropLocked forgets c: its streams end and its turns stop silently.
func (s *Server) dropLocked(c *conn) {
	select {
	case <-c.gone:
	default:
		close(c.gone)
	}
	for _, as := range c.sessions {
		if as.cancel != nil {
			as.cancel(errGone)
		}
	}
}

// push adds a message the agent sends on c; a message of a connection
// that is gone is dropped.
func (s *Server) push(c *conn, msg []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-c.gone:
		return
	default:
	}
	c.events = append(c.events, msg)
	close(c.changed)
	c.changed = make(chan struct{})
}

// waitHang waits while the server hangs.
func (s *Server) waitHang(ctx context.Context) error {
	for {
		s.mu.Lock()
		h := s.hang
		s.mu.Unlock()
		if h == nil {
			return nil
		}
		select {
		case <-h:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// RoundTrip answers req as a Sandbox Agent server would.
func (s *Server) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		var err error
		body, err = io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
	}
	if err := s.waitHang(req.Context()); err != nil {
		return nil, err
	}
	s.mu.Lock()
	closed := s.closed
	refuse := req.Method == http.MethodPost && s.failPosts > 0
	if refuse {
		s.failPosts--
	}
	s.mu.Unlock()
	if closed || refuse {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	}
	if tr := httptrace.ContextClientTrace(req.Context()); tr != nil && tr.WroteRequest != nil {
		tr.WroteRequest(httptrace.WroteRequestInfo{})
	}
	path := req.URL.EscapedPath()
	switch {
	case path == "/v1/health" && req.Method == http.MethodGet:
		s.mu.Lock()
		s.health++
		bad := s.unhealthy
		s.mu.Unlock()
		if bad {
			return respond(req, http.StatusServiceUnavailable, "application/json", []byte(`{"status":"unhealthy"}`)), nil
		}
		return respond(req, http.StatusOK, "application/json", []byte(`{"status":"ok"}`)), nil
	case path == "/v1/acp" && req.Method == http.MethodGet:
		return s.list(req), nil
	case strings.HasPrefix(path, "/v1/acp/"):
		id, err := url.PathUnescape(strings.TrimPrefix(path, "/v1/acp/"))
		if err != nil || id == "" || strings.Contains(id, "/") {
			return problem(req, http.StatusNotFound, "not found"), nil
		}
		switch req.Method {
		case http.MethodPost:
			return s.post(req, id, body), nil
		case http.MethodGet:
			return s.stream(req, id), nil
		case http.MethodDelete:
			s.mu.Lock()
			if c := s.conns[id]; c != nil {
				s.dropLocked(c)
				delete(s.conns, id)
			}
			s.deleted = append(s.deleted, id)
			s.mu.Unlock()
			return respond(req, http.StatusNoContent, "", nil), nil
		}
	}
	return problem(req, http.StatusNotFound, "no such route"), nil
}

func respond(req *http.Request, status int, ctype string, body []byte) *http.Response {
	h := http.Header{}
	if ctype != "" {
		h.Set("Content-Type", ctype)
	}
	return &http.Response{
		Status:     fmt.Sprintf("%d %s", status, http.StatusText(status)),
		StatusCode: status, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)),
		Request: req,
	}
}

func problem(req *http.Request, status int, detail string) *http.Response {
	b, _ := json.Marshal(map[string]any{
		"type":  "urn:sandbox-agent:error:" + strings.ReplaceAll(strings.ToLower(http.StatusText(status)), " ", "_"),
		"title": http.StatusText(status), "status": status, "detail": detail,
	})
	return respond(req, status, "application/problem+json", b)
}

func (s *Server) list(req *http.Request) *http.Response {
	s.mu.Lock()
	type info struct {
		ServerID    string `json:"serverId"`
		Agent       string `json:"agent"`
		CreatedAtMs int64  `json:"createdAtMs"`
	}
	out := []info{}
	for _, c := range s.conns {
		out = append(out, info{c.id, c.agent, c.createdAt.UnixMilli()})
	}
	s.mu.Unlock()
	b, _ := json.Marshal(map[string]any{"servers": out})
	return respond(req, http.StatusOK, "application/json", b)
}

// envelope is a JSON-RPC message.
type envelope struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id,omitempty"`
	Method  string          `json:"method,omitempty"`
	Params  json.RawMessage `json:"params,omitempty"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   json.RawMessage `json:"error,omitempty"`
}

func response(id json.RawMessage, result any) []byte {
	r, _ := json.Marshal(result)
	b, _ := json.Marshal(envelope{JSONRPC: "2.0", ID: id, Result: r})
	return b
}

func rpcError(id json.RawMessage, code int, msg string) []byte {
	e, _ := json.Marshal(map[string]any{"code": code, "message": msg})
	b, _ := json.Marshal(envelope{JSONRPC: "2.0", ID: id, Error: e})
	return b
}

func notification(method string, params any) []byte {
	p, _ := json.Marshal(params)
	b, _ := json.Marshal(envelope{JSONRPC: "2.0", Method: method, Params: p})
	return b
}

func (s *Server) post(req *http.Request, id string, body []byte) *http.Response {
	agent := req.URL.Query().Get("agent")
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return problem(req, http.StatusBadRequest, "body is not a JSON-RPC message")
	}
	s.mu.Lock()
	c := s.conns[id]
	if c == nil {
		if agent == "" {
			s.mu.Unlock()
			return problem(req, http.StatusBadRequest, "missing required 'agent' query parameter for a new connection")
		}
		c = &conn{id: id, agent: agent, createdAt: time.Now(), changed: make(chan struct{}), gone: make(chan struct{}),
			sessions: map[string]*agentSession{}, waiting: map[string]chan json.RawMessage{}}
		s.conns[id] = c
	}
	s.received = append(s.received, Message{Conn: id, Method: env.Method, ID: string(env.ID), Raw: slices.Clone(body)})
	s.mu.Unlock()

	switch {
	case env.Method == "" && len(env.ID) > 0: // the client answers a request of the agent
		s.mu.Lock()
		ch := c.waiting[string(env.ID)]
		delete(c.waiting, string(env.ID))
		s.mu.Unlock()
		if ch != nil {
			ch <- slices.Clone(body)
		}
		return respond(req, http.StatusAccepted, "", nil)
	case len(env.ID) == 0: // a notification
		if env.Method == "session/cancel" {
			var p struct {
				SessionID string `json:"sessionId"`
			}
			_ = json.Unmarshal(env.Params, &p)
			s.mu.Lock()
			if as := c.sessions[p.SessionID]; as != nil && as.cancel != nil {
				as.cancel(errCancelled)
			}
			s.mu.Unlock()
		}
		return respond(req, http.StatusAccepted, "", nil)
	}

	var answer []byte
	switch env.Method {
	case "initialize":
		s.mu.Lock()
		methods := append([]any{}, s.authMethods...)
		s.mu.Unlock()
		answer = response(env.ID, map[string]any{"protocolVersion": 1, "agentCapabilities": map[string]any{"loadSession": false}, "authMethods": methods})
	case "authenticate":
		s.mu.Lock()
		c.authed = true
		s.mu.Unlock()
		answer = response(env.ID, map[string]any{})
	case "session/new":
		s.mu.Lock()
		if len(s.authMethods) > 0 && !c.authed {
			s.mu.Unlock()
			answer = rpcError(env.ID, -32000, "Authentication required")
			break
		}
		s.seq++
		sid := fmt.Sprintf("agent-session-%d", s.seq)
		c.sessions[sid] = &agentSession{id: sid}
		s.mu.Unlock()
		answer = response(env.ID, map[string]any{"sessionId": sid, "modes": map[string]any{"currentModeId": "ask",
			"availableModes": []any{map[string]any{"id": "ask", "name": "Ask"}, map[string]any{"id": "code", "name": "Code"}}}})
	case "session/set_mode":
		var p struct{ SessionID, ModeID string }
		_ = json.Unmarshal(env.Params, &p)
		answer = rpcError(env.ID, -32602, "unknown mode "+p.ModeID)
		if p.ModeID == "ask" || p.ModeID == "code" {
			answer = response(env.ID, map[string]any{})
		}
	case "session/prompt":
		done, errMsg := s.startTurn(c, env)
		if done == nil {
			answer = errMsg
			break
		}
		// The turn pushes its response on the stream itself: it comes
		// there also when this POST is abandoned.
		select {
		case answer = <-done:
			return respond(req, http.StatusOK, "application/json", answer)
		case <-req.Context().Done():
			return respond(req, http.StatusGatewayTimeout, "", nil)
		}
	default:
		answer = rpcError(env.ID, -32601, "method not found: "+env.Method)
	}
	s.push(c, answer)
	return respond(req, http.StatusOK, "application/json", answer)
}

// PermissionOptions are the options of a [permission] prompt's request.
// The turn goes on after a selected option, its reply starting with a
// chunk "permission: <optionId>\n"; after cancelled it ends cancelled.
var PermissionOptions = []any{
	map[string]any{"optionId": "allow-once", "name": "Allow once", "kind": "allow_once"},
	map[string]any{"optionId": "allow-always", "name": "Always allow", "kind": "allow_always"},
	map[string]any{"optionId": "reject-once", "name": "Reject", "kind": "reject_once"},
}

var directiveRE = regexp.MustCompile(`\[(?:chunks=(\d+)|delay=(\d+)ms|(hang)|(permission))\]`)

type script struct {
	chunks     []string
	delay      time.Duration
	hang       bool
	permission bool
}

// Reply is the text the agent answers to a prompt of these text blocks.
func Reply(blocks ...string) string {
	return "You said: " + strings.TrimSpace(directiveRE.ReplaceAllString(strings.Join(blocks, ""), ""))
}

func parse(blocks []string) script {
	if p := (Prompt{Blocks: blocks}); p.Speaker() != "" {
		blocks = blocks[1:] // the speaker label is not what was said
	}
	sc := script{delay: DefaultDelay}
	n := DefaultChunks
	// Directives count in the last block only, the user's own text: a
	// restored session's history block holds earlier prompts, whose
	// [hang] must not hang this one.
	last := ""
	if len(blocks) > 0 {
		last = blocks[len(blocks)-1]
	}
	for _, m := range directiveRE.FindAllStringSubmatch(last, -1) {
		switch {
		case m[1] != "":
			n, _ = strconv.Atoi(m[1])
		case m[2] != "":
			ms, _ := strconv.Atoi(m[2])
			sc.delay = time.Duration(ms) * time.Millisecond
		case m[3] != "":
			sc.hang = true
		case m[4] != "":
			sc.permission = true
		}
	}
	r := []rune(Reply(blocks...))
	n = max(1, min(n, len(r)))
	for i := range n {
		sc.chunks = append(sc.chunks, string(r[i*len(r)/n:(i+1)*len(r)/n]))
	}
	return sc
}

// startTurn starts the turn of a session/prompt request. It returns the
// channel its response comes on, or nil and the error response.
func (s *Server) startTurn(c *conn, env envelope) (<-chan []byte, []byte) {
	var p struct {
		SessionID string `json:"sessionId"`
		Prompt    []struct {
			Type, Text string
		} `json:"prompt"`
	}
	if err := json.Unmarshal(env.Params, &p); err != nil {
		return nil, rpcError(env.ID, -32602, "invalid params")
	}
	var blocks []string
	for _, b := range p.Prompt {
		if b.Type == "text" {
			blocks = append(blocks, b.Text)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prompts = append(s.prompts, Prompt{Conn: c.id, SessionID: p.SessionID, ID: string(env.ID), Blocks: blocks})
	as := c.sessions[p.SessionID]
	switch {
	case as == nil:
		return nil, rpcError(env.ID, -32602, "unknown session "+p.SessionID)
	case as.cancel != nil:
		return nil, rpcError(env.ID, -32000, "session is busy")
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	as.cancel = cancel
	done := make(chan []byte, 1)
	s.turns.Add(1)
	go func() {
		defer s.turns.Done()
		defer cancel(nil)
		answer := s.turn(ctx, c, as.id, env.ID, parse(blocks))
		s.mu.Lock()
		as.cancel = nil
		s.mu.Unlock()
		if answer != nil {
			s.push(c, answer)
			done <- answer
		}
	}()
	return done, nil
}

// turn streams a prompt's updates and returns its response (nil when the
// connection went away).
func (s *Server) turn(ctx context.Context, c *conn, sid string, id json.RawMessage, sc script) []byte {
	stopped := func() []byte {
		if errors.Is(context.Cause(ctx), errCancelled) {
			return response(id, map[string]any{"stopReason": "cancelled"})
		}
		return nil
	}
	if sc.permission {
		s.mu.Lock()
		s.seq++
		pid := strconv.Itoa(1_000_000 + s.seq)
		ch := make(chan json.RawMessage, 1)
		c.waiting[pid] = ch
		s.mu.Unlock()
		req, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": json.RawMessage(pid), "method": "session/request_permission",
			"params": map[string]any{"sessionId": sid, "toolCall": map[string]any{"toolCallId": "tool-" + pid, "title": "Write file", "kind": "edit"},
				"options": PermissionOptions}})
		s.push(c, req)
		var answer []byte
		select {
		case answer = <-ch:
		case <-ctx.Done():
			return stopped()
		}
		var r struct {
			Result struct {
				Outcome struct{ Outcome, OptionID string }
			}
		}
		_ = json.Unmarshal(answer, &r)
		if r.Result.Outcome.Outcome != "selected" {
			return response(id, map[string]any{"stopReason": "cancelled"})
		}
		s.push(c, notification("session/update", map[string]any{"sessionId": sid,
			"update": map[string]any{"sessionUpdate": "agent_message_chunk", "content": map[string]any{"type": "text", "text": "permission: " + r.Result.Outcome.OptionID + "\n"}}}))
	}
	if sc.hang {
		<-ctx.Done()
		return stopped()
	}
	for _, chunk := range sc.chunks {
		t := time.NewTimer(sc.delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return stopped()
		}
		s.push(c, notification("session/update", map[string]any{"sessionId": sid,
			"update": map[string]any{"sessionUpdate": "agent_message_chunk", "content": map[string]any{"type": "text", "text": chunk}}}))
	}
	return response(id, map[string]any{"stopReason": "end_turn"})
}

func (s *Server) stream(req *http.Request, id string) *http.Response {
	s.mu.Lock()
	c := s.conns[id]
	if c != nil {
		s.attaches = append(s.attaches, Attach{Conn: id, LastEventID: req.Header.Get("Last-Event-ID")})
	}
	s.mu.Unlock()
	if c == nil {
		return problem(req, http.StatusNotFound, "unknown connection "+id)
	}
	next := 0
	if last := req.Header.Get("Last-Event-ID"); last != "" {
		next, _ = strconv.Atoi(last)
	}
	b := &streamBody{s: s, c: c, next: next, ctx: req.Context(), closed: make(chan struct{})}
	resp := respond(req, http.StatusOK, "text/event-stream", nil)
	resp.Header.Set("Cache-Control", "no-cache")
	resp.Body, resp.ContentLength = b, -1
	return resp
}

// streamBody is an SSE stream read straight from its connection's buffer.
type streamBody struct {
	s    *Server
	c    *conn
	next int // index of the next message to send
	ctx  context.Context
	buf  []byte

	once   sync.Once
	closed chan struct{}
}

var errBodyClosed = errors.New("acptest: read on a closed body")

func (b *streamBody) Read(p []byte) (int, error) {
	for len(b.buf) == 0 {
		if err := b.s.waitHang(b.ctx); err != nil {
			return 0, err
		}
		b.s.mu.Lock()
		evs, changed, gone := b.c.events, b.c.changed, b.c.gone
		b.s.mu.Unlock()
		b.next = max(b.next, len(evs)-ReplayBuffer)
		select {
		case <-gone:
			return 0, io.EOF
		case <-b.closed:
			return 0, errBodyClosed
		default:
		}
		if b.next < len(evs) {
			b.buf = fmt.Appendf(b.buf, "id: %d\ndata: %s\n\n", b.next+1, evs[b.next])
			b.next++
			continue
		}
		t := time.NewTimer(Heartbeat)
		select {
		case <-changed:
		case <-gone:
		case <-b.closed:
		case <-b.ctx.Done():
			t.Stop()
			return 0, b.ctx.Err()
		case <-t.C:
			b.buf = append(b.buf, ": heartbeat\n\n"...)
		}
		t.Stop()
	}
	n := copy(p, b.buf)
	b.buf = b.buf[n:]
	return n, nil
}

func (b *streamBody) Close() error {
	b.once.Do(func() { close(b.closed) })
	return nil
}
