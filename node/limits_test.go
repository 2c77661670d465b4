package node_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-dev/tandem/eventlog"
	"github.com/tandem-dev/tandem/httpapi"
	"github.com/tandem-dev/tandem/internal/nodetest"
	"github.com/tandem-dev/tandem/internal/redistest"
	"github.com/tandem-dev/tandem/internal/ssetest"
	"github.com/tandem-dev/tandem/node"
)

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

// A flood of prompts from one user is limited (429 with Retry-After)
// without slowing another user's stream. The figures are logged; the test
// asserts the limit and the stream's completeness, not speed.
func TestPromptFloodIsLimited(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	n := jwtNode(t, rs.URL(), nil)
	l := eventlog.New(rs.Client(t), eventlog.Config{})
	admin := map[string]string{"Authorization": "Bearer " + token(t, "root", "admin", []string{"*"}, nil)}
	send(t, "PUT", n.URL+"/v1/workspaces/flood", "", admin)
	ep := holdWorkspace(t, l, "calm", "s")

	// carol follows the calm workspace, where events come at 50/s.
	carol := http.Header{"Authorization": {"Bearer " + token(t, "carol", "viewer", []string{"calm"}, nil)}}
	c, err := ssetest.Dial(context.Background(), n.URL+"/v1/workspaces/calm/sessions/s/events/stream", "", carol)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var mu sync.Mutex
	var lat []time.Duration
	phase := func() []time.Duration { mu.Lock(); defer mu.Unlock(); out := lat; lat = nil; return out }
	received := make(chan int, 1)
	go func() {
		n := 0
		for {
			ev, err := c.Next()
			if err != nil {
				received <- n
				return
			}
			if ev.Type == "" || ev.Type == "presence" {
				continue
			}
			var created int64
			fmt.Sscanf(ev.Data[strings.Index(ev.Data, `"createdAt":`)+12:], "%d", &created)
			mu.Lock()
			lat = append(lat, time.Since(time.UnixMilli(created)))
			mu.Unlock()
			n++
		}
	}()
	appended := 0
	tick := func(d time.Duration) {
		end := time.Now().Add(d)
		for time.Now().Before(end) {
			appendN(t, l, "calm", "s", ep, appended, 1, 100)
			appended++
			time.Sleep(20 * time.Millisecond)
		}
	}
	tick(2 * time.Second)
	before := phase()

	// mallory floods the other workspace from 8 connections.
	mallory := "Bearer " + token(t, "mallory", "member", []string{"flood"}, nil)
	var ok, limited, noRetryAfter, other atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("POST", n.URL+"/v1/workspaces/flood/sessions/default/prompt", strings.NewReader(`{"text":"spam"}`))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", mallory)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					other.Add(1)
					continue
				}
				resp.Body.Close()
				switch resp.StatusCode {
				case 202:
					ok.Add(1)
				case 429:
					limited.Add(1)
					if resp.Header.Get("Retry-After") == "" {
						noRetryAfter.Add(1)
					}
				default:
					other.Add(1)
				}
			}
		}()
	}
	tick(3 * time.Second)
	during := phase()
	close(stop)
	wg.Wait()
	took := time.Since(start)
	total := ok.Load() + limited.Load() + other.Load()
	t.Logf("flood: %d prompts in %v (%.0f/s): %d accepted, %d refused with 429, %d other", total, took.Round(time.Millisecond), float64(total)/took.Seconds(), ok.Load(), limited.Load(), other.Load())
	t.Logf("carol's stream, append→receive: before p50 %v p99 %v (%d events); during the flood p50 %v p99 %v (%d events)",
		percentile(before, .5), percentile(before, .99), len(before), percentile(during, .5), percentile(during, .99), len(during))
	// Rate 2/s with a burst of 10: at most 10 + 2/s, with a little slack for
	// the clock.
	if max := int64(10 + 2*took.Seconds() + 2); ok.Load() > max {
		t.Errorf("%d prompts accepted in %v; the limit allows about %d", ok.Load(), took, max)
	}
	if limited.Load() == 0 || noRetryAfter.Load() > 0 || other.Load() > 0 {
		t.Errorf("429s: %d (without Retry-After: %d), other outcomes: %d", limited.Load(), noRetryAfter.Load(), other.Load())
	}
	// Another user of the flooded workspace is not limited by mallory.
	bob := map[string]string{"Authorization": "Bearer " + token(t, "bob", "member", []string{"flood"}, nil)}
	if code, body := send(t, "POST", n.URL+"/v1/workspaces/flood/sessions/default/prompt", `{"text":"hi"}`, bob); code != 202 {
		t.Errorf("bob after the flood: %d %s", code, body)
	}
	c.Close()
	if got := <-received; got != appended {
		t.Errorf("carol received %d of %d events", got, appended)
	}
}

// A user may hold a bounded number of streams on a node; more get 429.
func TestStreamsPerUserAreBounded(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	n := jwtNode(t, rs.URL(), func(c *node.Config) { c.Fanout.MaxStreamsPerUser = 3 })
	l := eventlog.New(rs.Client(t), eventlog.Config{})
	holdWorkspace(t, l, "w", "s")
	hdr := http.Header{"Authorization": {"Bearer " + token(t, "ann", "viewer", []string{"w"}, nil)}}
	url := n.URL + "/v1/workspaces/w/sessions/s/events/stream"
	var conns []*ssetest.Conn
	for i := 0; i < 3; i++ {
		c, err := ssetest.Dial(context.Background(), url, "", hdr)
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		conns = append(conns, c)
	}
	if _, err := ssetest.Dial(context.Background(), url, "", hdr); err == nil || !strings.Contains(err.Error(), "429") {
		t.Fatalf("a fourth stream: %v, want 429", err)
	}
	other := http.Header{"Authorization": {"Bearer " + token(t, "bob", "viewer", []string{"w"}, nil)}}
	if c, err := ssetest.Dial(context.Background(), url, "", other); err != nil {
		t.Fatalf("another user's stream: %v", err)
	} else {
		c.Close()
	}
	conns[0].Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := ssetest.Dial(context.Background(), url, "", hdr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a stream after one was closed: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, c := range conns[1:] {
		c.Close()
	}
}

// Workspaces may point only at the default sandbox and allowed hosts.
func TestSandboxAllowList(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	n := nodetest.Start(t, rs.URL(), func(c *node.Config) { c.SandboxAllow = []string{"*.sandbox.test:2468", "box.example"} })
	for _, tc := range []struct {
		url  string
		want int
	}{
		{"http://127.0.0.1:9", 201},                 // the default sandbox
		{"http://a.sandbox.test:2468", 201},         // allowed pattern with port
		{"https://box.example", 201},                // allowed host, any port
		{"http://a.sandbox.test:22", 403},           // wrong port
		{"http://169.254.169.254", 403},             // cloud metadata
		{"http://127.0.0.1:6379", 403},              // Redis itself
		{"http://localhost:9", 403},                 // the default, by another name
		{"http://evil.test/?x=a.sandbox.test", 400}, // query refused outright
	} {
		ws := "sb" + url.PathEscape(fmt.Sprint(len(tc.url)))
		code, body := send(t, "PUT", n.URL+"/v1/workspaces/"+ws+fmt.Sprint(tc.want), `{"sandbox":{"baseUrl":"`+tc.url+`"}}`, nil)
		if code != tc.want && !(tc.want == 201 && code == 200) {
			t.Errorf("sandbox %s: %d %s, want %d", tc.url, code, body, tc.want)
		}
	}
}

// Browser apps on other origins are refused unless configured; the
// configured ones get CORS headers.
func TestCORS(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	off := nodetest.Start(t, rs.URL(), nil)
	on := nodetest.Start(t, rs.URL(), func(c *node.Config) { c.HTTP = httpapi.Config{CORSOrigins: []string{"https://app.example"}} })
	pre := func(base, origin string) http.Header {
		req, _ := http.NewRequest("OPTIONS", base+"/v1/workspaces/w", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "PUT")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header
	}
	if h := pre(off.URL, "https://app.example"); h.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("CORS is on by default: %v", h)
	}
	if h := pre(on.URL, "https://app.example"); h.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Errorf("configured origin: %v", h)
	}
	if h := pre(on.URL, "https://evil.example"); h.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("other origin allowed: %v", h)
	}
}

// A client that sends its body too slowly is answered 400 after the body
// read timeout, and a stream open meanwhile is not cut by it.
func TestSlowBodyIsCut(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	n := nodetest.Start(t, rs.URL(), func(c *node.Config) { c.HTTP = httpapi.Config{BodyReadTimeout: 500 * time.Millisecond} })
	send(t, "PUT", n.URL+"/v1/workspaces/w", "", nil)
	stream, err := ssetest.Dial(context.Background(), n.URL+"/v1/workspaces/w/sessions/default/events/stream", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	conn, err := net.Dial("tcp", n.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/workspaces/w/sessions/default/prompt HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"te")
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	status, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.Contains(status, "400") {
		t.Fatalf("slow body: %q, %v", status, err)
	}
	t.Logf("slow body cut after %v", time.Since(start).Round(10*time.Millisecond))
	time.Sleep(700 * time.Millisecond)
	done := make(chan error, 1)
	go func() {
		for {
			ev, err := stream.Next()
			if err != nil || (ev.Type != "" && ev.Type != "presence") {
				done <- err
				return
			}
		}
	}()
	select {
	case err := <-done:
		t.Fatalf("the stream ended: %v", err)
	case <-time.After(300 * time.Millisecond): // still open, nothing to read
	}
}
