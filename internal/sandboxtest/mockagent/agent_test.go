package mockagent

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// msg is one message read from the agent, decoded loosely for assertions.
type msg struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params struct {
		SessionID string `json:"sessionId"`
		Update    struct {
			SessionUpdate string          `json:"sessionUpdate"`
			ToolCallID    string          `json:"toolCallId"`
			Kind          string          `json:"kind"`
			Status        string          `json:"status"`
			Content       json.RawMessage `json:"content"` // an object for chunks, a list for tool calls
		} `json:"update"`
	} `json:"params"`
	Result json.RawMessage `json:"result"`
	Error  *rpcError       `json:"error"`
	raw    string
}

// harness drives Serve over a pair of pipes, as a stdio client would.
type harness struct {
	t    testing.TB
	in   *io.PipeWriter
	msgs chan msg
	done chan error
}

func start(t testing.TB) *harness {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	h := &harness{t: t, in: inW, msgs: make(chan msg, 1024), done: make(chan error, 1)}
	go func() {
		err := Serve(inR, outW)
		outW.Close()
		h.done <- err
	}()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(h.msgs)
		sc := bufio.NewScanner(outR)
		for sc.Scan() {
			var m msg
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Errorf("agent wrote a line that is not JSON: %q", sc.Text())
				continue
			}
			m.raw = sc.Text()
			h.msgs <- m
		}
	}()
	t.Cleanup(func() {
		inW.Close()
		if err := <-h.done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		wg.Wait()
	})
	return h
}

func (h *harness) send(v any) {
	h.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.in.Write(append(b, '\n')); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) request(id any, method string, params any) {
	h.t.Helper()
	h.send(map[string]any{"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

func (h *harness) next() msg {
	h.t.Helper()
	select {
	case m, ok := <-h.msgs:
		if !ok {
			h.t.Fatal("agent output ended")
		}
		return m
	case <-time.After(5 * time.Second):
		h.t.Fatal("no message from the agent within 5s")
	}
	panic("unreachable")
}

// response reads messages up to the response with this id, returning it and
// the notifications before it.
func (h *harness) response(id string) (msg, []msg) {
	h.t.Helper()
	var before []msg
	for {
		m := h.next()
		if m.Method == "" && string(m.ID) == id {
			return m, before
		}
		before = append(before, m)
	}
}

func (h *harness) newSession() string {
	h.t.Helper()
	h.request("s", "session/new", map[string]any{"cwd": "/tmp", "mcpServers": []any{}})
	m, _ := h.response(`"s"`)
	var r struct {
		SessionID string `json:"sessionId"`
	}
	if err := json.Unmarshal(m.Result, &r); err != nil || r.SessionID == "" {
		h.t.Fatalf("session/new answered %s", m.raw)
	}
	return r.SessionID
}

func text(blocks ...string) []map[string]any {
	var out []map[string]any
	for _, b := range blocks {
		out = append(out, map[string]any{"type": "text", "text": b})
	}
	return out
}

func stopReason(t testing.TB, m msg) string {
	t.Helper()
	var r struct {
		StopReason string `json:"stopReason"`
	}
	if err := json.Unmarshal(m.Result, &r); err != nil || m.Error != nil {
		t.Fatalf("not a prompt result: %s", m.raw)
	}
	return r.StopReason
}

func chunkTexts(t testing.TB, sessionID string, ms []msg) []string {
	t.Helper()
	var out []string
	for _, m := range ms {
		if m.Method != "session/update" || m.Params.SessionID != sessionID {
			continue
		}
		if m.Params.Update.SessionUpdate == "agent_message_chunk" {
			var c contentBlock
			if err := json.Unmarshal(m.Params.Update.Content, &c); err != nil || c.Type != "text" {
				t.Fatalf("chunk content %s", m.raw)
			}
			out = append(out, c.Text)
		}
	}
	return out
}

func TestInitialize(t *testing.T) {
	h := start(t)
	h.request(1, "initialize", map[string]any{"protocolVersion": 1, "clientCapabilities": map[string]any{}})
	m, _ := h.response("1")
	var r struct {
		ProtocolVersion   int `json:"protocolVersion"`
		AgentCapabilities struct {
			LoadSession *bool `json:"loadSession"`
		} `json:"agentCapabilities"`
	}
	if err := json.Unmarshal(m.Result, &r); err != nil {
		t.Fatal(err)
	}
	if r.ProtocolVersion != 1 || r.AgentCapabilities.LoadSession == nil || *r.AgentCapabilities.LoadSession {
		t.Fatalf("initialize answered %s", m.raw)
	}
	h.request(2, "authenticate", map[string]any{"methodId": "x"})
	if m, _ := h.response("2"); m.Error != nil {
		t.Fatalf("authenticate answered %s", m.raw)
	}
}

func TestPrompt(t *testing.T) {
	tests := []struct {
		name   string
		blocks []string
		want   string
		chunks int
		tool   bool
	}{
		{"Defaults", []string{"hello world"}, "You said: hello world", DefaultChunks, false},
		{"Chunks", []string{"[chunks=2][delay=0ms] hi there"}, "You said: hi there", 2, false},
		{"OneChunk", []string{"[chunks=1] x"}, "You said: x", 1, false},
		{"MoreChunksThanRunes", []string{"[chunks=500][delay=0ms]é"}, "You said: é", len([]rune("You said: é")), false},
		{"Tool", []string{"[tool] [delay=1ms] run it"}, "You said: run it", DefaultChunks, true},
		{"Diff", []string{"[diff] [delay=1ms] edit it"}, "You said: edit it", DefaultChunks, true},
		{"ReplayedHistory", []string{"Previous conversation:\nUser: [chunks=9] a\n\n", "[chunks=3] now b"}, "You said: Previous conversation:\nUser:  a\n\n now b", 3, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := start(t)
			sid := h.newSession()
			h.request(7, "session/prompt", map[string]any{"sessionId": sid, "prompt": text(tt.blocks...)})
			m, before := h.response("7")
			if got := stopReason(t, m); got != "end_turn" {
				t.Fatalf("stopReason %q", got)
			}
			chunks := chunkTexts(t, sid, before)
			if len(chunks) != tt.chunks {
				t.Errorf("%d chunks %q, want %d", len(chunks), chunks, tt.chunks)
			}
			if got := strings.Join(chunks, ""); got != tt.want {
				t.Errorf("reply %q, want %q", got, tt.want)
			}
			if got := Reply(tt.blocks...); got != tt.want {
				t.Errorf("Reply() = %q, want %q", got, tt.want)
			}
			var kinds []string
			for _, b := range before {
				kinds = append(kinds, b.Params.Update.SessionUpdate)
			}
			if strings.Contains(tt.blocks[0], "[diff]") {
				if len(kinds) < 2 || kinds[0] != "tool_call" || kinds[1] != "tool_call_update" || before[0].Params.Update.Kind != "edit" ||
					!strings.Contains(string(before[1].Params.Update.Content), `"type":"diff"`) || !strings.Contains(string(before[1].Params.Update.Content), `"path":"notes.md"`) {
					t.Errorf("updates %v (%s), want an edit with its diff first", kinds, before[1].Params.Update.Content)
				}
			} else if tt.tool {
				if len(kinds) < 2 || kinds[0] != "tool_call" || kinds[1] != "tool_call_update" || before[1].Params.Update.Status != "completed" ||
					before[0].Params.Update.ToolCallID != before[1].Params.Update.ToolCallID {
					t.Errorf("updates %v, want a tool call first", kinds)
				}
			} else if len(before) != len(chunks) {
				t.Errorf("updates %v, want only chunks", kinds)
			}
		})
	}
}

func TestCancel(t *testing.T) {
	h := start(t)
	sid := h.newSession()
	h.request(1, "session/prompt", map[string]any{"sessionId": sid, "prompt": text("[chunks=40][delay=25ms] long answer to cancel")})
	if m := h.next(); m.Method != "session/update" {
		t.Fatalf("want a first update, got %s", m.raw)
	}
	h.send(map[string]any{"jsonrpc": "2.0", "method": "session/cancel", "params": map[string]any{"sessionId": sid}})
	m, before := h.response("1")
	if got := stopReason(t, m); got != "cancelled" {
		t.Fatalf("stopReason %q, want cancelled", got)
	}
	if n := len(before) + 1; n >= 40 {
		t.Fatalf("%d updates despite the cancel", n)
	}
	// The session takes a new prompt once the cancelled turn has answered.
	h.request(2, "session/prompt", map[string]any{"sessionId": sid, "prompt": text("[delay=0ms]again")})
	if m, _ := h.response("2"); stopReason(t, m) != "end_turn" {
		t.Fatalf("second prompt answered %s", m.raw)
	}
}

func TestConcurrentSessions(t *testing.T) {
	h := start(t)
	const n = 4
	sids := make([]string, n)
	for i := range sids {
		sids[i] = h.newSession()
	}
	for i, sid := range sids {
		h.request(fmt.Sprintf("p%d", i), "session/prompt", map[string]any{"sessionId": sid, "prompt": text(fmt.Sprintf("[chunks=8][delay=5ms] session %d", i))})
	}
	// Answered while the turns run.
	h.request("init", "initialize", map[string]any{"protocolVersion": 1})
	var all []msg
	answered := map[string]string{}
	for len(answered) < n {
		m := h.next()
		all = append(all, m)
		if m.Method == "" && strings.HasPrefix(string(m.ID), `"p`) {
			answered[string(m.ID)] = stopReason(t, m)
		}
	}
	for i, sid := range sids {
		if got, want := strings.Join(chunkTexts(t, sid, all), ""), fmt.Sprintf("You said: session %d", i); got != want {
			t.Errorf("session %d: reply %q, want %q", i, got, want)
		}
		if answered[fmt.Sprintf(`"p%d"`, i)] != "end_turn" {
			t.Errorf("session %d: %v", i, answered)
		}
	}
}

func TestErrors(t *testing.T) {
	h := start(t)
	sid := h.newSession()
	tests := []struct {
		name string
		line string
		code int
	}{
		{"ErrMethodNotFound", `{"jsonrpc":"2.0","id":1,"method":"session/load","params":{}}`, codeMethodNotFound},
		{"ErrUnknownSession", `{"jsonrpc":"2.0","id":2,"method":"session/prompt","params":{"sessionId":"nope","prompt":[]}}`, codeInvalidParams},
		{"ErrInvalidParams", `{"jsonrpc":"2.0","id":3,"method":"session/prompt","params":[1]}`, codeInvalidParams},
		{"ErrParse", `{"jsonrpc":`, codeParseError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.in.Write([]byte(tt.line + "\n"))
			m := h.next()
			if m.Error == nil || m.Error.Code != tt.code {
				t.Fatalf("answered %s, want error %d", m.raw, tt.code)
			}
		})
	}
	t.Run("ErrBusy", func(t *testing.T) {
		h.request(10, "session/prompt", map[string]any{"sessionId": sid, "prompt": text("[delay=10ms]first")})
		h.request(11, "session/prompt", map[string]any{"sessionId": sid, "prompt": text("second")})
		m, _ := h.response("11")
		if m.Error == nil || m.Error.Code != codeBusy {
			t.Fatalf("answered %s, want busy", m.raw)
		}
		if m, _ := h.response("10"); stopReason(t, m) != "end_turn" {
			t.Fatalf("first prompt answered %s", m.raw)
		}
	})
	t.Run("IgnoresNotificationsAndResponses", func(t *testing.T) {
		h.in.Write([]byte(`{"jsonrpc":"2.0","method":"whatever"}` + "\n" + `{"jsonrpc":"2.0","id":5,"result":{}}` + "\n"))
		h.request(12, "nope", nil)
		if m := h.next(); string(m.ID) != "12" {
			t.Fatalf("want only the answer to 12, got %s", m.raw)
		}
	})
}

func TestServeEndsRunningTurns(t *testing.T) {
	inR, inW := io.Pipe()
	var out strings.Builder
	var mu sync.Mutex
	done := make(chan error, 1)
	go func() {
		done <- Serve(inR, writerFunc(func(b []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return out.Write(b) }))
	}()
	fmt.Fprintln(inW, `{"jsonrpc":"2.0","id":1,"method":"session/new","params":{"cwd":"/"}}`)
	time.Sleep(20 * time.Millisecond)
	mu.Lock()
	var r struct {
		Result struct{ SessionID string } `json:"result"`
	}
	json.Unmarshal([]byte(out.String()), &r)
	mu.Unlock()
	fmt.Fprintf(inW, `{"jsonrpc":"2.0","id":2,"method":"session/prompt","params":{"sessionId":%q,"prompt":[{"type":"text","text":"[delay=10000ms]x"}]}}`+"\n", r.Result.SessionID)
	inW.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Serve did not return when its input ended")
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(out.String(), `"stopReason":"cancelled"`) {
		t.Fatalf("turn not cancelled: %s", out.String())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

func FuzzChunks(f *testing.F) {
	f.Add("hello", "[chunks=3]")
	f.Add("[tool][delay=5ms]héllo wörld", "")
	f.Add("", "[chunks=0]")
	f.Fuzz(func(t *testing.T, a, b string) {
		if !utf8.ValidString(a + b) {
			t.Skip("prompt texts come from JSON strings, which are valid UTF-8")
		}
		s := parse([]string{a, b})
		if got := strings.Join(s.chunks, ""); got != Reply(a, b) {
			t.Fatalf("chunks %q do not make up the reply %q", s.chunks, Reply(a, b))
		}
		for _, c := range s.chunks {
			if c == "" {
				t.Fatalf("empty chunk in %q", s.chunks)
			}
		}
	})
}

func TestCrash(t *testing.T) {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- Serve(inR, outW); outW.Close() }()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(outR)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	fmt.Fprintln(inW, `{"jsonrpc":"2.0","id":1,"method":"session/new","params":{"cwd":"/"}}`)
	var r struct {
		Result struct{ SessionID string } `json:"result"`
	}
	json.Unmarshal([]byte(<-lines), &r)
	fmt.Fprintf(inW, `{"jsonrpc":"2.0","id":2,"method":"session/prompt","params":{"sessionId":%q,"prompt":[{"type":"text","text":"[delay=5ms][chunks=100] long"}]}}`+"\n", r.Result.SessionID)
	<-lines // the turn is running
	fmt.Fprintln(inW, `{"jsonrpc":"2.0","id":3,"method":"session/new","params":{"cwd":"/"}}`)
	fmt.Fprintf(inW, `{"jsonrpc":"2.0","id":4,"method":"session/prompt","params":{"sessionId":%q,"prompt":[{"type":"text","text":"[crash]"}]}}`+"\n", r.Result.SessionID)
	select {
	case err := <-done:
		if !errors.Is(err, ErrCrash) {
			t.Fatalf("Serve returned %v, want ErrCrash", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Serve did not return")
	}
	for l := range lines {
		if strings.Contains(l, `"stopReason"`) || strings.Contains(l, `"id":4`) {
			t.Fatalf("answered after the crash: %s", l)
		}
	}
}
