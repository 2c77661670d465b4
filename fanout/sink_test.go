package fanout

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tandem-dev/tandem/eventlog"
)

// The real sinks, on real connections: what openSink writes before the
// first event, and that the hub reads and writes them as it does fakes.

// realHub is startHub with the hub's own opener.
func realHub(t *testing.T) *testHub {
	th := startHub(t, Config{})
	th.open = openSink
	return th
}

// readBlock reads one SSE block (up to a blank line) without its newlines.
func readBlock(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	var lines []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("read: %v (after %q)", err, lines)
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			return strings.Join(lines, "\n")
		}
		lines = append(lines, line)
	}
}

func eventBlock(gen string, idx uint64) string {
	c := eventlog.Cursor{Gen: gen, Index: idx}.String()
	return "id: " + c + "\nevent: chat.user\ndata: "
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestHijackedTCPConnection(t *testing.T) {
	th := realHub(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "https://a.example")
		if err := th.Serve(w, r, Stream{Workspace: "w", Session: "s", User: "ann"}); err != nil {
			t.Errorf("Serve: %v", err)
		}
	}))
	t.Cleanup(srv.Close)
	th.log.append("w", "s", 2)

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /stream HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache", "X-Accel-Buffering": "no",
		"Access-Control-Allow-Origin": "https://a.example",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if resp.StatusCode != http.StatusOK || len(resp.TransferEncoding) != 0 || !resp.Close || resp.Header.Get("Date") == "" {
		t.Fatalf("head %d %v close %v %v: want 200, not chunked, Connection: close, dated", resp.StatusCode, resp.TransferEncoding, resp.Close, resp.Header)
	}
	if got := readBlock(t, br); got != "retry: 2000" {
		t.Fatalf("first block %q, want the retry: preamble", got)
	}
	for i := uint64(1); i <= 2; i++ {
		if got := readBlock(t, br); !strings.HasPrefix(got, eventBlock("g1", i)) {
			t.Fatalf("block %q, want event %d", got, i)
		}
	}
	// Attached: Serve returned, and live events come from the workers.
	waitUntil(t, "the client to be attached", func() bool {
		f := th.lookup("w", "s")
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.attached) == 1
	})
	th.ring("w", "s", 2)
	for i := uint64(3); i <= 4; i++ {
		if got := readBlock(t, br); !strings.HasPrefix(got, eventBlock("g1", i)) {
			t.Fatalf("block %q, want event %d", got, i)
		}
	}
	// The client leaves: the sweeper sees it by peeking at the socket.
	conn.Close()
	waitUntil(t, "the client that left to be forgotten", func() bool { return len(th.Presence()) == 0 })
}

func TestHijackedTLSConnection(t *testing.T) {
	th := realHub(t)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := th.Serve(w, r, Stream{Workspace: "w", Session: "s", User: "ann"}); err != nil {
			t.Errorf("Serve: %v", err)
		}
	}))
	t.Cleanup(srv.Close)
	th.log.append("w", "s", 1)
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if got := readBlock(t, br); got != "retry: 2000" {
		t.Fatalf("first block %q", got)
	}
	if got := readBlock(t, br); !strings.HasPrefix(got, eventBlock("g1", 1)) {
		t.Fatalf("block %q, want event 1", got)
	}
	th.ring("w", "s", 1)
	if got := readBlock(t, br); !strings.HasPrefix(got, eventBlock("g1", 2)) {
		t.Fatalf("block %q, want event 2", got)
	}
	// A TLS connection cannot be written without blocking: it is never
	// attached, its own goroutine follows the feed.
	f := th.lookup("w", "s")
	f.mu.Lock()
	n := len(f.attached)
	f.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d clients attached, want 0", n)
	}
	th.stop()
	if _, err := br.ReadString('\n'); err == nil {
		t.Fatal("stream still open after Run ended")
	}
}

// lockedRecorder is a ResponseRecorder that the test reads while the
// hub writes it; it cannot be hijacked, as an HTTP/2 response cannot.
type lockedRecorder struct {
	mu  sync.Mutex
	rec *httptest.ResponseRecorder
}

func (l *lockedRecorder) Header() http.Header { return l.rec.Header() }
func (l *lockedRecorder) WriteHeader(code int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rec.WriteHeader(code)
}
func (l *lockedRecorder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rec.Write(p)
}
func (l *lockedRecorder) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rec.Flush()
}
func (l *lockedRecorder) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rec.Body.String()
}

func TestResponseThatCannotBeHijacked(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := startHub(t, Config{})
		th.open = openSink
		th.log.append("w", "s", 1)
		w := &lockedRecorder{rec: httptest.NewRecorder()}
		ctx, cancel := context.WithCancel(context.Background())
		r := httptest.NewRequest(http.MethodGet, "/stream", nil).WithContext(ctx)
		done := make(chan error, 1)
		go func() { done <- th.Serve(w, r, Stream{Workspace: "w", Session: "s", User: "ann"}) }()
		synctest.Wait()
		th.ring("w", "s", 1)
		synctest.Wait()
		time.Sleep(15 * time.Second)
		synctest.Wait()
		want := "retry: 2000\n\n" + eventBlock("g1", 1)
		if got := w.text(); !strings.HasPrefix(got, want) || !strings.Contains(got, eventBlock("g1", 2)) || !strings.HasSuffix(got, ": keepalive\n\n") {
			t.Fatalf("body %q: want retry:, events 1 and 2, a keepalive", got)
		}
		if w.rec.Code != http.StatusOK || w.rec.Header().Get("Content-Type") != "text/event-stream; charset=utf-8" || !w.rec.Flushed {
			t.Fatalf("response %d %v flushed %v", w.rec.Code, w.rec.Header(), w.rec.Flushed)
		}
		// The request's context ends the stream.
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if got := th.Presence(); len(got) != 0 {
			t.Fatalf("presence %v after the request ended", got)
		}
	})
}
