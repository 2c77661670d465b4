package e2e

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// switchProxy is a loopback TCP proxy in front of one node at a time, the
// smallest stand-in for a load balancer that moves a browser to another
// node. Its target can be moved, or taken away: then it answers every
// request 502 Bad Gateway, as nginx does while its upstream is down.
// Moving or removing the target closes the connections to the old one;
// a connection whose upstream dies is closed too.
type switchProxy struct {
	ln     net.Listener
	mu     sync.Mutex
	target string // host:port, "" = down
	conns  map[*proxied]struct{}
	wg     sync.WaitGroup
}

type proxied struct{ client, upstream net.Conn }

func (p *proxied) close() {
	p.client.Close()
	p.upstream.Close()
}

func startSwitchProxy(t testing.TB, target string) *switchProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &switchProxy{ln: ln, target: target, conns: map[*proxied]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *switchProxy) URL() string { return "http://" + p.ln.Addr().String() }

// setTarget moves the proxy to target ("" = down) and closes every
// connection it holds.
func (p *switchProxy) setTarget(target string) {
	p.mu.Lock()
	p.target = target
	old := p.conns
	p.conns = map[*proxied]struct{}{}
	p.mu.Unlock()
	for c := range old {
		c.close()
	}
}

func (p *switchProxy) close() {
	p.ln.Close()
	p.setTarget("")
	p.wg.Wait()
}

func (p *switchProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.handle(c)
		}()
	}
}

func (p *switchProxy) handle(client net.Conn) {
	p.mu.Lock()
	target := p.target
	p.mu.Unlock()
	var up net.Conn
	if target != "" {
		up, _ = net.DialTimeout("tcp", target, 2*time.Second)
	}
	if up == nil {
		badGateway(client)
		return
	}
	pc := &proxied{client: client, upstream: up}
	p.mu.Lock()
	if p.target != target { // moved while dialling
		p.mu.Unlock()
		pc.close()
		return
	}
	p.conns[pc] = struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, client); done <- struct{}{} }()
	go func() { io.Copy(client, up); done <- struct{}{} }()
	<-done // either side ended: end both
	pc.close()
	<-done
	p.mu.Lock()
	delete(p.conns, pc)
	p.mu.Unlock()
}

// badGateway reads one request (so that closing does not reset it) and
// answers 502.
func badGateway(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	req, err := http.ReadRequest(bufio.NewReader(c))
	if err != nil {
		return
	}
	io.Copy(io.Discard, io.LimitReader(req.Body, 1<<20))
	io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nContent-Length: 12\r\nConnection: close\r\n\r\nbad gateway\n")
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
	io.Copy(io.Discard, io.LimitReader(c, 1<<16))
}
