package chaos

import (
	"errors"
	"net"
	"sync"
	"time"
)

// faultProxy is a TCP proxy on 127.0.0.1 between one node and Redis that can
// partition them and add latency. Each accepted connection gets its own
// connection to the target and two pumps; what a pump reads is delivered in
// order, each chunk no earlier than its read time plus the latency then in
// force.
//
// Partitions come in two modes:
//
//   - drop: every connection is closed with a reset at once and new ones are
//     reset as soon as they are accepted, as when a host goes away;
//   - hold: connections stay open but nothing is delivered either way until
//     Heal; then whatever was held is delivered, late, in order (a client
//     that gave up and retried on another connection meanwhile sees its
//     first request executed after all).
//
// Every pump ends with its connection; Close ends them all.
type faultProxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	latency time.Duration
	hold    bool
	drop    bool
	healed  chan struct{} // closed by Heal; replaced by each hold
	conns   map[*proxyConn]struct{}
	closed  bool
	wg      sync.WaitGroup
	dialFor time.Duration
}

type proxyConn struct{ client, server net.Conn }

func (c *proxyConn) reset() {
	for _, x := range []net.Conn{c.client, c.server} {
		if x == nil {
			continue
		}
		if tc, ok := x.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		x.Close()
	}
}

// startFaultProxy listens on a free port of 127.0.0.1 and forwards to
// target (host:port, on loopback).
func startFaultProxy(target string) (*faultProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &faultProxy{ln: ln, target: target, conns: map[*proxyConn]struct{}{}, healed: make(chan struct{}), dialFor: 2 * time.Second}
	close(p.healed)
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's host:port.
func (p *faultProxy) Addr() string { return p.ln.Addr().String() }

func (p *faultProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		p.mu.Lock()
		drop, closed := p.drop, p.closed
		p.mu.Unlock()
		if drop || closed {
			(&proxyConn{client: c}).reset()
			continue
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *faultProxy) serve(client net.Conn) {
	defer p.wg.Done()
	p.mu.Lock()
	target := p.target
	p.mu.Unlock()
	server, err := net.DialTimeout("tcp", target, p.dialFor)
	if err != nil {
		(&proxyConn{client: client}).reset()
		return
	}
	pc := &proxyConn{client: client, server: server}
	p.mu.Lock()
	if p.closed || p.drop {
		p.mu.Unlock()
		pc.reset()
		return
	}
	p.conns[pc] = struct{}{}
	p.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pump(pc, client, server) }()
	go func() { defer wg.Done(); p.pump(pc, server, client) }()
	wg.Wait()
	p.mu.Lock()
	delete(p.conns, pc)
	p.mu.Unlock()
}

type chunk struct {
	b  []byte
	at time.Time // deliver no earlier than this
}

// pump copies from src to dst through a queue, so that reading goes on
// while delivery waits for a latency or a held partition. When either side
// ends, both connections are closed.
func (p *faultProxy) pump(pc *proxyConn, src, dst net.Conn) {
	q := make(chan chunk, 256)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTimer(time.Hour)
		defer t.Stop()
		for c := range q {
			if d := time.Until(c.at); d > 0 {
				t.Reset(d)
				<-t.C
			}
			p.mu.Lock()
			healed := p.healed
			p.mu.Unlock()
			<-healed // a held partition; Heal and Close release it
			if _, err := dst.Write(c.b); err != nil {
				break
			}
		}
		pc.reset()
		for range q { // let the reader finish
		}
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			lat := p.latency
			p.mu.Unlock()
			q <- chunk{b: append([]byte(nil), buf[:n]...), at: time.Now().Add(lat)}
		}
		if err != nil {
			break
		}
	}
	close(q)
	<-done
}

// SetTarget makes new connections go to target and resets the current
// ones (their clients redial, to target), as when a service address moves
// to a new master.
func (p *faultProxy) SetTarget(target string) {
	p.mu.Lock()
	p.target = target
	conns := make([]*proxyConn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.reset()
	}
}

// SetLatency delays every chunk read from now on by d (0: none).
func (p *faultProxy) SetLatency(d time.Duration) {
	p.mu.Lock()
	p.latency = d
	p.mu.Unlock()
}

// PartitionDrop resets every connection and refuses new ones until Heal.
func (p *faultProxy) PartitionDrop() {
	p.mu.Lock()
	p.drop = true
	conns := make([]*proxyConn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.reset()
	}
}

// PartitionHold stops delivering in both directions until Heal; new
// connections are accepted and held too.
func (p *faultProxy) PartitionHold() {
	p.mu.Lock()
	if !p.hold {
		p.hold = true
		p.healed = make(chan struct{})
	}
	p.mu.Unlock()
}

// Heal ends a partition of either mode; held bytes are delivered.
func (p *faultProxy) Heal() {
	p.mu.Lock()
	p.drop = false
	if p.hold {
		p.hold = false
		close(p.healed)
	}
	p.mu.Unlock()
}

// Close stops listening, resets every connection and waits for the pumps.
func (p *faultProxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return errors.New("fault proxy: closed twice")
	}
	p.closed = true
	p.mu.Unlock()
	p.Heal()
	err := p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.reset()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}
