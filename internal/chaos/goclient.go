package chaos

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/tandem-dev/tandem/streamclient"
)

// goClient is a subscriber on r3labs/sse's client through streamclient:
// unlimited reconnects, a clean close means reconnect, Last-Event-ID.
type goClient struct {
	rec    *recording
	url    string
	cursor string
	broken bool // Config.Break == client-gap

	mu   sync.Mutex
	conn net.Conn // the connection of the current stream
}

// drop resets the TCP connection of the client's current stream.
func (g *goClient) drop() bool {
	g.mu.Lock()
	c := g.conn
	g.mu.Unlock()
	if c == nil {
		return false
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // RST, not FIN: a connection that breaks
	}
	c.Close()
	return true
}

// run follows the stream until ctx ends.
func (g *goClient) run(ctx context.Context) {
	dialer := &net.Dialer{Timeout: 2 * time.Second}
	hc := &http.Client{Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, addr)
			if err == nil {
				g.mu.Lock()
				g.conn = c
				g.mu.Unlock()
			}
			return c, err
		},
	}}
	skip := false
	cfg := streamclient.Config{
		URL:        g.url,
		Cursor:     g.cursor,
		HTTPClient: hc,
		Retry:      250 * time.Millisecond,
		OnConnect: func(string) {
			g.rec.connected()
			// The deliberately broken client loses the first event after
			// each reconnect, as one that skips gap filling would.
			skip = g.broken && g.rec.connects > 1
		},
	}
	err := streamclient.Follow(ctx, cfg, func(ev streamclient.Event) error {
		if skip && ev.Type != "reset" {
			skip = false
			return nil
		}
		g.rec.add(ev.Type, ev.Data)
		return nil
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		g.rec.gaveUp("stream ended: " + err.Error())
	}
}
