package chaos

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"
)

// echoServer answers every line with the same line, on 127.0.0.1.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

func startProxy(t *testing.T) *faultProxy {
	t.Helper()
	p, err := startFaultProxy(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// roundTrip sends a line and reads it back within limit; it returns the
// time taken, or an error.
func roundTrip(c net.Conn, r *bufio.Reader, line string, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	c.SetDeadline(start.Add(limit))
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		return 0, err
	}
	got, err := r.ReadString('\n')
	if err != nil {
		return 0, err
	}
	if got != line+"\n" {
		return 0, io.ErrUnexpectedEOF
	}
	return time.Since(start), nil
}

func dialProxy(t *testing.T, p *faultProxy) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.Addr(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

func TestFaultProxyForwards(t *testing.T) {
	p := startProxy(t)
	c, r := dialProxy(t, p)
	for i := 0; i < 3; i++ {
		if _, err := roundTrip(c, r, "hello", time.Second); err != nil {
			t.Fatalf("round trip %d: %v", i, err)
		}
	}
}

func TestFaultProxyLatency(t *testing.T) {
	p := startProxy(t)
	c, r := dialProxy(t, p)
	p.SetLatency(150 * time.Millisecond)
	d, err := roundTrip(c, r, "slow", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// Both directions are delayed.
	if d < 300*time.Millisecond {
		t.Fatalf("round trip took %v with 150ms each way", d)
	}
	p.SetLatency(0)
	d, err = roundTrip(c, r, "fast", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if d > 150*time.Millisecond {
		t.Fatalf("round trip took %v without latency", d)
	}
}

func TestFaultProxyHoldDeliversLate(t *testing.T) {
	p := startProxy(t)
	c, r := dialProxy(t, p)
	p.PartitionHold()
	if _, err := roundTrip(c, r, "held", 300*time.Millisecond); err == nil {
		t.Fatal("an answer came through a held partition")
	}
	// The request was held, not lost: after Heal its answer arrives.
	p.Heal()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	got, err := r.ReadString('\n')
	if err != nil || got != "held\n" {
		t.Fatalf("after heal: %q, %v", got, err)
	}
	if _, err := roundTrip(c, r, "again", time.Second); err != nil {
		t.Fatalf("after heal: %v", err)
	}
}

func TestFaultProxyDrop(t *testing.T) {
	p := startProxy(t)
	c, r := dialProxy(t, p)
	if _, err := roundTrip(c, r, "before", time.Second); err != nil {
		t.Fatal(err)
	}
	p.PartitionDrop()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := r.ReadString('\n'); err == nil {
		t.Fatal("the connection survived a drop partition")
	}
	// New connections are reset while partitioned: the dial itself may
	// see the reset, or the first round trip does.
	if c2, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		defer c2.Close()
		if _, err := roundTrip(c2, bufio.NewReader(c2), "during", 500*time.Millisecond); err == nil {
			t.Fatal("a new connection got through a drop partition")
		}
	}
	p.Heal()
	c3, r3 := dialProxy(t, p)
	if _, err := roundTrip(c3, r3, "after", time.Second); err != nil {
		t.Fatalf("after heal: %v", err)
	}
}

func TestFaultProxyCloseEndsConnections(t *testing.T) {
	p, err := startFaultProxy(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	c, r := dialProxy(t, p)
	if _, err := roundTrip(c, r, "x", time.Second); err != nil {
		t.Fatal(err)
	}
	p.PartitionHold()
	done := make(chan error, 1)
	go func() { done <- p.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Close did not return")
	}
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := r.ReadString('\n'); err == nil {
		t.Fatal("connection open after Close")
	}
	if p.Close() == nil {
		t.Fatal("a second Close reported nothing")
	}
}
