package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

var httpc = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}

// call makes a JSON request and decodes the answer.
func call(ctx context.Context, method, u string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("X-User-Id", "bench")
	resp, err := httpc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %s %s", method, u, resp.Status, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

func createWorkspace(ctx context.Context, base, ws string) error {
	return call(ctx, "PUT", base+"/v1/workspaces/"+ws, nil, nil)
}

// benchAppend has the node append count events through the owner path.
func benchAppend(ctx context.Context, base, ws, sid string, count, batch, size int, rate float64) (int, float64, error) {
	return benchAppendSessions(ctx, base, ws, sid, count, batch, size, 0, rate)
}

// benchAppendSessions is benchAppend spread over sessions sessions, one
// part per session in each call.
func benchAppendSessions(ctx context.Context, base, ws, sid string, count, batch, size, sessions int, rate float64) (int, float64, error) {
	var out struct {
		Appended int
		Seconds  float64
	}
	err := call(ctx, "POST", base+"/v1/workspaces/"+ws+"/sessions/"+sid+"/bench/append",
		map[string]any{"count": count, "batch": batch, "size": size, "sessions": sessions, "rate": rate}, &out)
	return out.Appended, out.Seconds, err
}

// sseConn is a raw SSE connection: it reads frames with as little work as
// possible, so that the load generator stays light.
type sseConn struct {
	c  net.Conn
	br *bufio.Reader
}

// dialSSE opens a stream; lastID is sent as Last-Event-ID when not "".
func dialSSE(ctx context.Context, base, ws, sid, lastID string) (*sseConn, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: 10 * time.Second}
	c, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, err
	}
	req := "GET /v1/workspaces/" + ws + "/sessions/" + sid + "/events/stream HTTP/1.1\r\nHost: " + u.Host +
		"\r\nAccept: text/event-stream\r\nX-User-Id: bench\r\n"
	if lastID != "" {
		req += "Last-Event-ID: " + lastID + "\r\n"
	}
	req += "\r\n"
	if _, err := c.Write([]byte(req)); err != nil {
		c.Close()
		return nil, err
	}
	br := bufio.NewReaderSize(c, 16<<10)
	status, err := br.ReadString('\n')
	if err != nil {
		c.Close()
		return nil, err
	}
	if !strings.Contains(status, " 200 ") {
		c.Close()
		return nil, fmt.Errorf("stream: %s", strings.TrimSpace(status))
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			c.Close()
			return nil, err
		}
		if line == "\r\n" || line == "\n" {
			break
		}
	}
	return &sseConn{c: c, br: br}, nil
}

// event is what the load generator keeps of a frame.
type event struct {
	id        string
	typ       string
	index     uint64
	createdAt int64
	chunk     bool // an agent_message_chunk
	turnEnded bool // a turn_ended status
}

var (
	keyIndex   = []byte(`"eventIndex":`)
	keyCreated = []byte(`"createdAt":`)
)

// next reads the next event with an id (skipping comments, retry and
// events without id).
func (s *sseConn) next() (event, error) {
	var ev event
	for {
		line, err := s.br.ReadSlice('\n')
		if err != nil {
			return ev, err
		}
		switch {
		case len(line) <= 1:
			if ev.id != "" {
				return ev, nil
			}
			ev = event{}
		case bytes.HasPrefix(line, []byte("id: ")):
			ev.id = string(bytes.TrimSpace(line[4:]))
		case bytes.HasPrefix(line, []byte("event: ")):
			ev.typ = string(bytes.TrimSpace(line[7:]))
		case bytes.HasPrefix(line, []byte("data: ")):
			ev.index = uint64(numberAfter(line, keyIndex))
			ev.createdAt = numberAfter(line, keyCreated)
			ev.chunk = bytes.Contains(line, []byte(`"agent_message_chunk"`))
			ev.turnEnded = bytes.Contains(line, []byte(`"status":"turn_ended"`))
		}
	}
}

func numberAfter(b, key []byte) int64 {
	i := bytes.Index(b, key)
	if i < 0 {
		return 0
	}
	b = b[i+len(key):]
	j := 0
	for j < len(b) && b[j] >= '0' && b[j] <= '9' {
		j++
	}
	n, _ := strconv.ParseInt(string(b[:j]), 10, 64)
	return n
}

func (s *sseConn) close() { s.c.Close() }
