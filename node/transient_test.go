package node_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tandem-dev/tandem/eventlog"
	"github.com/tandem-dev/tandem/fanout"
	"github.com/tandem-dev/tandem/httpapi"
	"github.com/tandem-dev/tandem/internal/nodetest"
	"github.com/tandem-dev/tandem/internal/redistest"
	"github.com/tandem-dev/tandem/internal/ssetest"
)

// reconnectBody is what a stream the node cannot serve for a moment is
// answered with (guarantee 7): retry: and why, no id:.
const reconnectBody = "retry: 1000\n\n: unavailable, reconnect\n\n"

// getStream makes a stream request as an EventSource does and reads the
// whole answer, which must end by itself within 10 s.
func getStream(t *testing.T, url, lastEventID string) (*http.Response, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("Accept", "text/event-stream")
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: the answer did not end by itself: %v (read %q)", url, err, b)
	}
	return resp, string(b)
}

func checkReconnect(t *testing.T, what string, resp *http.Response, body string) {
	t.Helper()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: status %d %q, want 200 (an EventSource gives up on anything else)", what, resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("%s: Content-Type %q", what, ct)
	}
	if body != reconnectBody {
		t.Fatalf("%s: body %q, want %q", what, body, reconnectBody)
	}
}

// While Redis is down, a stream request is answered 200 with retry: and
// ended, the paging route 503 problem+json; once Redis is back the client
// resumes from the Last-Event-ID it kept.
func TestStreamWhileRedisDownGetsRetry(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{AppendOnly: true})
	n := nodetest.Start(t, rs.URL(), nil)
	l := eventlog.New(rs.Client(t), eventlog.Config{})
	ep := holdWorkspace(t, l, "t1", "s")
	evs := appendN(t, l, "t1", "s", ep, 0, 5, 5)
	url := streamURL(n, "t1", "s")

	rs.Kill()
	for _, sid := range []string{"s", "default"} { // GetSession and Exists both need Redis
		resp, body := getStream(t, streamURL(n, "t1", sid), evs[2].ID)
		checkReconnect(t, "stream of "+sid+" while Redis is down", resp, body)
	}
	resp, err := http.Get(n.URL + "/v1/workspaces/t1/sessions/s/events")
	if err != nil {
		t.Fatal(err)
	}
	var p struct{ Type string }
	json.NewDecoder(resp.Body).Decode(&p)
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Content-Type") != "application/problem+json" || p.Type != "urn:tandem:error:unavailable" {
		t.Fatalf("paging route while Redis is down: %d %s %s, want 503 problem+json unavailable", resp.StatusCode, resp.Header.Get("Content-Type"), p.Type)
	}

	rs.Restart(t)
	deadline := time.Now().Add(10 * time.Second)
	var c *ssetest.Conn
	for {
		if c, err = ssetest.Dial(context.Background(), url, evs[2].ID, nil); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream after Redis came back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	defer c.Close()
	var got []ssetest.Event
	if err := collect(c, evs[4].ID, time.Now().Add(10*time.Second), &got); err != nil {
		t.Fatal(err)
	}
	checkReceived(t, "resumed after Redis came back", got, evs[3:])
}

// A draining node: streams it holds end cleanly after their retry:
// preamble, and a stream request that reaches its hub once it is closed
// is answered 200 with retry: rather than 503.
func TestStreamWhileDrainingGetsRetry(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	rdb := rs.Client(t)
	l := eventlog.New(rdb, eventlog.Config{})
	holdWorkspace(t, l, "t2", "s")

	t.Run("open stream ends cleanly", func(t *testing.T) {
		n := nodetest.Start(t, rs.URL(), nil)
		c, err := ssetest.Dial(context.Background(), streamURL(n, "t2", "s"), "", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		first, err := c.Next()
		if err != nil || first.Retry == "" {
			t.Fatalf("first field = %+v, %v; want retry:", first, err)
		}
		stopped := make(chan struct{})
		go func() { n.Stop(t); close(stopped) }()
		done := make(chan error, 1)
		go func() {
			for i := 0; i < 1000; i++ {
				if _, err := c.Next(); err != nil {
					done <- err
					return
				}
			}
			done <- errors.New("1000 fields and no end")
		}()
		select {
		case err := <-done:
			if !errors.Is(err, io.EOF) {
				t.Fatalf("stream ended with %v, want a clean end (EOF)", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("stream still open 5 s into the drain")
		}
		<-stopped
	})

	t.Run("request reaching a closed hub", func(t *testing.T) {
		hub := fanout.New(l, fanout.Config{})
		hub.SetDoorbell(eventlog.NewBell(rdb, hub))
		ctx, cancel := context.WithCancel(context.Background())
		ran := make(chan error, 1)
		go func() { ran <- hub.Run(ctx) }()
		cancel() // the drain begins: the hub closes first
		if err := <-ran; err != nil {
			t.Fatal(err)
		}
		api := httpapi.New(httpapi.Deps{Events: l, Streams: hub, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))}, httpapi.Config{})
		srv := httptest.NewServer(api)
		defer srv.Close()
		resp, body := getStream(t, srv.URL+"/v1/workspaces/t2/sessions/s/events/stream", "3.abc")
		checkReconnect(t, "stream on a draining node", resp, body)
	})
}
