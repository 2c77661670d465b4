package fanout

import (
	"errors"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/tandem-dev/tandem/sse"
)

// sink is where a client's bytes go. Only one goroutine writes to a sink
// at a time (the client's owner); gone and close may be called from any
// goroutine, also during a write.
type sink interface {
	// nonBlocking reports whether tryWrite can write without blocking;
	// clients of sinks that cannot stay in their follow loop.
	nonBlocking() bool
	// tryWrite writes a prefix of p without blocking and returns its
	// length; a short count without error means the socket buffer is full.
	tryWrite(p []byte) (int, error)
	// write writes all of p, giving up when no byte was accepted for the
	// write timeout.
	write(p []byte) error
	// gone reports whether the client has closed the connection, without
	// blocking; false when it cannot tell.
	gone() bool
	close()
}

// writeChunk bounds one blocking write, so that the write timeout measures
// a lack of progress, not a slow but steady reader.
const writeChunk = 16 << 10

// tcpSink is a hijacked TCP connection, written with raw non-blocking
// writes on the fast path.
//
// It is written by hand on purpose. net.Conn's Write parks its goroutine
// until the socket drains, so writing to a slow client that way needs a
// goroutine per client, each with its stack and buffers; a raw write that
// never waits (syscall.RawConn.Write whose callback always returns true)
// lets one worker write each event to every caught-up client and hand only
// the ones whose socket is full to a goroutine of their own. That is why a
// caught-up connection has no goroutine and no buffer and an idle one costs
// about 5 KiB (BENCHMARKS.md). gone peeks at the socket the same way,
// because nothing else notices an attached client that left until the
// next write. tryWrite's partial writes and EAGAIN are what the hub's
// detach is built on (deliver.go); TestHijackedTCPConnection and node's
// TestStreamSlowClientDoesNotSlowFastOne exercise them on real sockets.
type tcpSink struct {
	conn    *net.TCPConn
	raw     syscall.RawConn
	timeout time.Duration
}

func (s *tcpSink) nonBlocking() bool { return true }

func (s *tcpSink) tryWrite(p []byte) (int, error) {
	var n int
	var werr error
	err := s.raw.Write(func(fd uintptr) bool {
		for {
			n, werr = syscall.Write(int(fd), p)
			if werr != syscall.EINTR {
				return true // never wait for the socket to drain
			}
		}
	})
	if err != nil {
		return 0, err
	}
	if werr == syscall.EAGAIN {
		return 0, nil
	}
	if werr != nil {
		return 0, werr
	}
	return n, nil
}

func (s *tcpSink) write(p []byte) error { return writeChunks(s.conn, p, s.timeout) }
func (s *tcpSink) close()               { s.conn.Close() }

// gone peeks at the socket: a client of an event stream sends nothing after
// its request, so a readable end of file (or a reset) means it left. The
// peek leaves any bytes where they are.
func (s *tcpSink) gone() bool {
	var n int
	var rerr error
	var b [1]byte
	err := s.raw.Read(func(fd uintptr) bool {
		n, _, rerr = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return true // never wait
	})
	if err != nil {
		return true // closed on our side
	}
	if rerr == syscall.EAGAIN || rerr == syscall.EINTR {
		return false
	}
	return rerr != nil || n == 0
}

// connSink is a hijacked connection of another kind (TLS): blocking only.
type connSink struct {
	conn    net.Conn
	timeout time.Duration
}

func (s *connSink) nonBlocking() bool              { return false }
func (s *connSink) tryWrite(p []byte) (int, error) { return 0, nil }
func (s *connSink) write(p []byte) error           { return writeChunks(s.conn, p, s.timeout) }
func (s *connSink) close()                         { s.conn.Close() }
func (s *connSink) gone() bool                     { return false }

func writeChunks(c net.Conn, p []byte, timeout time.Duration) error {
	for len(p) > 0 {
		n := min(len(p), writeChunk)
		if err := c.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
			return err
		}
		if _, err := c.Write(p[:n]); err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// responseSink is a response that cannot be hijacked (HTTP/2): the handler
// goroutine writes and flushes it for the stream's whole life.
type responseSink struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
}

func (s *responseSink) nonBlocking() bool              { return false }
func (s *responseSink) tryWrite(p []byte) (int, error) { return 0, nil }
func (s *responseSink) close()                         {}
func (s *responseSink) gone() bool                     { return false } // the request's context ends instead

func (s *responseSink) write(p []byte) error {
	for len(p) > 0 {
		n := min(len(p), writeChunk)
		_ = s.rc.SetWriteDeadline(time.Now().Add(s.timeout)) // not every writer supports it
		if _, err := s.w.Write(p[:n]); err != nil {
			return err
		}
		p = p[n:]
	}
	return s.rc.Flush()
}

// opener takes over the response of a stream: it writes the response head
// and the retry: preamble and returns where the client's bytes go from
// then on. The hub works only against the sink it returns.
type opener func(w http.ResponseWriter, retry, timeout time.Duration) (sink, error)

var _ opener = openSink

// openSink takes over the response: it hijacks the connection when it can
// and writes the response head and the retry: preamble.
func openSink(w http.ResponseWriter, retry, timeout time.Duration) (sink, error) {
	sse.SetHeaders(w.Header())
	preamble := sse.AppendRetry(nil, retry)
	rc := http.NewResponseController(w)
	conn, brw, err := rc.Hijack()
	if err != nil {
		if !errors.Is(err, http.ErrNotSupported) {
			return nil, err
		}
		w.WriteHeader(http.StatusOK)
		s := &responseSink{w: w, rc: rc, timeout: timeout}
		if err := s.write(preamble); err != nil {
			return nil, err
		}
		return s, nil
	}
	// The body is delimited by the connection's close: no chunked
	// encoding, so every client's bytes are the shared frames themselves.
	head := sse.AppendResponseHead(nil, w.Header(), time.Now())
	head = append(head, preamble...)
	if brw != nil && brw.Writer.Buffered() > 0 {
		_ = brw.Flush()
	}
	var s sink
	if tc, ok := conn.(*net.TCPConn); ok {
		raw, err := tc.SyscallConn()
		if err != nil {
			conn.Close()
			return nil, err
		}
		s = &tcpSink{conn: tc, raw: raw, timeout: timeout}
	} else {
		s = &connSink{conn: conn, timeout: timeout}
	}
	if err := s.write(head); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}
