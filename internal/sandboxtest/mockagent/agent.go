package mockagent

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// JSON-RPC error codes the agent answers with.
const (
	codeParseError     = -32700
	codeInvalidRequest = -32600
	codeMethodNotFound = -32601
	codeInvalidParams  = -32602
	codeBusy           = -32000
)

type envelope struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id,omitempty"`
	Method  string          `json:"method,omitempty"`
	Params  json.RawMessage `json:"params,omitempty"`
	Result  any             `json:"result,omitempty"`
	Error   *rpcError       `json:"error,omitempty"`
}

type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

type contentBlock struct {
	Type string `json:"type"`
	Text string `json:"text,omitempty"`
}

// ErrCrash is returned by Serve for a prompt with the [crash] directive; the
// command exits at once with a failure status.
var ErrCrash = errors.New("mockagent: crash requested")

// agent is one stdio connection's state.
type agent struct {
	wmu  sync.Mutex // serialises writes to out
	out  io.Writer
	dead bool // after [crash]: nothing more is written

	promptLog io.Writer

	mu       sync.Mutex
	sessions map[string]*session
	toolSeq  int

	reqs requests // the agent's own requests (permission.go)

	turns sync.WaitGroup
}

type session struct {
	cancel context.CancelFunc // of the running turn; nil when idle
	mode   string
	model  string
}

// Serve runs the agent on one connection: requests are read from in, one JSON
// message per line, and answers and updates written to out. It returns when in
// ends (nil) or fails, or with ErrCrash after a [crash] prompt (having written
// nothing more), after cancelling the running turns and waiting for them.
func Serve(in io.Reader, out io.Writer) error { return ServeLogged(in, out, nil) }

// ServeLogged is Serve that also writes one JSON line {"sessionId", "id",
// "text"} to promptLog for every session/prompt it receives, before it
// answers it: what the agent received, for tests that check that each
// prompt reached it exactly once. Lines are written whole, one write each.
func ServeLogged(in io.Reader, out, promptLog io.Writer) error {
	a := &agent{out: out, promptLog: promptLog, sessions: make(map[string]*session)}
	r := bufio.NewReader(in)
	var err error
	for {
		var line []byte
		line, err = r.ReadBytes('\n')
		if line = bytes.TrimSpace(line); len(line) > 0 && a.handle(line) {
			a.wmu.Lock()
			a.dead = true
			a.wmu.Unlock()
			err = ErrCrash
		}
		if err != nil {
			break
		}
	}
	a.mu.Lock()
	for _, s := range a.sessions {
		if s.cancel != nil {
			s.cancel()
		}
	}
	a.mu.Unlock()
	a.turns.Wait()
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// handle answers one message; it returns true for a prompt asking to crash.
func (a *agent) handle(line []byte) (crash bool) {
	var env envelope
	if err := json.Unmarshal(line, &env); err != nil {
		a.write(envelope{ID: json.RawMessage("null"), Error: &rpcError{codeParseError, "parse error: " + err.Error()}})
		return
	}
	if env.Method == "" {
		if len(env.ID) == 0 {
			a.write(envelope{ID: json.RawMessage("null"), Error: &rpcError{codeInvalidRequest, "invalid request"}})
		}
		a.answered(line, env.ID) // a response to a request of the agent
		return
	}
	if len(env.ID) == 0 {
		a.notification(env)
		return
	}
	switch env.Method {
	case "initialize":
		a.result(env.ID, map[string]any{
			"protocolVersion": 1,
			"agentCapabilities": map[string]any{
				"loadSession":        false,
				"promptCapabilities": map[string]any{"image": false, "audio": false, "embeddedContext": false},
			},
			"authMethods": []any{},
			"agentInfo":   map[string]any{"name": "tandem-mockagent", "version": "1"},
		})
	case "authenticate":
		a.result(env.ID, map[string]any{})
	case "session/new":
		var p struct {
			Cwd string `json:"cwd"`
		}
		if err := json.Unmarshal(env.Params, &p); err != nil {
			a.fail(env.ID, codeInvalidParams, "invalid params: "+err.Error())
			return
		}
		if fi, err := os.Stat(p.Cwd); err != nil || !fi.IsDir() {
			a.fail(env.ID, codeInvalidParams, "cwd "+strconv.Quote(p.Cwd)+" is not a directory")
			return
		}
		id := newSessionID()
		a.mu.Lock()
		a.sessions[id] = &session{mode: Modes[0]["id"].(string), model: Models[0]["modelId"].(string)}
		a.mu.Unlock()
		a.result(env.ID, map[string]any{"sessionId": id,
			"modes":  map[string]any{"currentModeId": Modes[0]["id"], "availableModes": Modes},
			"models": map[string]any{"currentModelId": Models[0]["modelId"], "availableModels": Models}})
	case "session/set_mode":
		a.setMode(env, false)
	case "session/set_model":
		a.setMode(env, true)
	case "session/prompt":
		return a.prompt(env)
	default:
		a.fail(env.ID, codeMethodNotFound, "method not found: "+env.Method)
	}
	return false
}

func (a *agent) notification(env envelope) {
	if env.Method != "session/cancel" {
		return
	}
	var p struct {
		SessionID string `json:"sessionId"`
	}
	if json.Unmarshal(env.Params, &p) != nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if s := a.sessions[p.SessionID]; s != nil && s.cancel != nil {
		s.cancel()
	}
}

// speakerRE is a speaker label block: "[name]" alone.
var speakerRE = regexp.MustCompile(`^\[[^\[\]\n]{1,200}\]$`)

func (a *agent) prompt(env envelope) (crash bool) {
	var p struct {
		SessionID string         `json:"sessionId"`
		Prompt    []contentBlock `json:"prompt"`
	}
	if err := json.Unmarshal(env.Params, &p); err != nil {
		a.fail(env.ID, codeInvalidParams, "invalid params: "+err.Error())
		return
	}
	var texts []string
	for _, b := range p.Prompt {
		if b.Type == "text" {
			texts = append(texts, b.Text)
		}
	}
	// A first block "[name]" names the speaker (Tandem's speakerLabels):
	// logged as such, not part of what the agent answers.
	speaker := ""
	if len(texts) > 1 && speakerRE.MatchString(texts[0]) {
		speaker, texts = texts[0][1:len(texts[0])-1], texts[1:]
	}
	if a.promptLog != nil {
		l := map[string]any{"sessionId": p.SessionID, "id": env.ID, "text": strings.Join(texts, "")}
		if speaker != "" {
			l["speaker"] = speaker
		}
		line, _ := json.Marshal(l)
		a.wmu.Lock()
		_, _ = a.promptLog.Write(append(line, '\n'))
		a.wmu.Unlock()
	}
	sc := parse(texts)
	if sc.crash {
		return true
	}

	a.mu.Lock()
	s := a.sessions[p.SessionID]
	switch {
	case s == nil:
		a.mu.Unlock()
		a.fail(env.ID, codeInvalidParams, "unknown session: "+p.SessionID)
		return
	case s.cancel != nil:
		a.mu.Unlock()
		a.fail(env.ID, codeBusy, "a turn is already running in session "+p.SessionID)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	a.toolSeq++
	toolID := fmt.Sprintf("call_%d", a.toolSeq)
	a.turns.Add(1)
	a.mu.Unlock()

	go func() {
		defer a.turns.Done()
		if sc.permission {
			choice := a.askPermission(ctx, p.SessionID, toolID)
			if choice == "" {
				a.notify("session/update", map[string]any{"sessionId": p.SessionID, "update": map[string]any{"sessionUpdate": "agent_message_chunk", "content": contentBlock{Type: "text", Text: "permission: cancelled"}}})
				a.mu.Lock()
				s.cancel = nil
				a.mu.Unlock()
				cancel()
				a.result(env.ID, map[string]any{"stopReason": "cancelled"})
				return
			}
			sc.chunks = append([]string{"permission: " + choice + "\n"}, sc.chunks...)
		}
		if sc.modes {
			a.mu.Lock()
			mode, model := s.mode, s.model
			a.mu.Unlock()
			sc.chunks = append([]string{"mode: " + mode + ", model: " + model + "\n"}, sc.chunks...)
		}
		stop := a.turn(ctx, p.SessionID, toolID, sc)
		// Go idle before answering, so that a prompt sent right after the
		// answer is not refused as busy.
		a.mu.Lock()
		s.cancel = nil
		a.mu.Unlock()
		cancel()
		a.result(env.ID, map[string]any{"stopReason": stop})
	}()
	return false
}

// turn sends the updates of one turn and returns its stop reason.
func (a *agent) turn(ctx context.Context, sessionID, toolID string, sc script) string {
	var updates []map[string]any
	if sc.tool {
		updates = append(updates,
			map[string]any{"sessionUpdate": "tool_call", "toolCallId": toolID, "title": "Mock tool", "kind": "other", "status": "pending"},
			map[string]any{"sessionUpdate": "tool_call_update", "toolCallId": toolID, "status": "completed",
				"content": []any{map[string]any{"type": "content", "content": contentBlock{Type: "text", Text: "ok"}}}},
		)
	}
	if sc.diff {
		id := toolID + "_edit"
		updates = append(updates,
			map[string]any{"sessionUpdate": "tool_call", "toolCallId": id, "title": "Edit " + DiffPath, "kind": "edit", "status": "in_progress",
				"locations": []any{map[string]any{"path": DiffPath}}},
			map[string]any{"sessionUpdate": "tool_call_update", "toolCallId": id, "status": "completed",
				"content": []any{map[string]any{"type": "diff", "path": DiffPath, "oldText": DiffOld, "newText": DiffNew}}},
		)
	}
	for _, c := range sc.chunks {
		updates = append(updates, map[string]any{"sessionUpdate": "agent_message_chunk", "content": contentBlock{Type: "text", Text: c}})
	}
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for _, u := range updates {
		if sc.delay > 0 {
			t.Reset(sc.delay)
			select {
			case <-t.C:
			case <-ctx.Done():
				return "cancelled"
			}
		}
		if ctx.Err() != nil {
			return "cancelled"
		}
		a.notify("session/update", map[string]any{"sessionId": sessionID, "update": u})
	}
	return "end_turn"
}

func (a *agent) result(id json.RawMessage, v any) { a.write(envelope{ID: id, Result: v}) }

func (a *agent) fail(id json.RawMessage, code int, msg string) {
	a.write(envelope{ID: id, Error: &rpcError{code, msg}})
}

func (a *agent) notify(method string, params any) {
	b, err := json.Marshal(params)
	if err != nil {
		panic(err) // params are built here from plain values
	}
	a.write(envelope{Method: method, Params: b})
}

// write sends one message on its own line. Errors are dropped: they mean the
// client is gone, and Serve ends when its input does.
func (a *agent) write(env envelope) {
	env.JSONRPC = "2.0"
	b, err := json.Marshal(env)
	if err != nil {
		panic(err)
	}
	a.wmu.Lock()
	defer a.wmu.Unlock()
	if !a.dead {
		_, _ = a.out.Write(append(b, '\n'))
	}
}

func newSessionID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "mock_" + hex.EncodeToString(b[:])
}
