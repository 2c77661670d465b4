package proc

import (
	"bytes"
	"io"
	"sync"
)

// Lines returns a writer that calls fn with each complete line written to
// it, without its newline; fn must not keep line. Given as cmd.Stdout, it
// replaces a StdoutPipe and its scanner: exec.Cmd.Wait (and so Proc.Done)
// waits until every line was handed to fn, where a pipe read after Wait may
// lose the last ones. A last line without a newline is not delivered.
func Lines(fn func(line []byte)) io.Writer { return &lineWriter{fn: fn} }

type lineWriter struct {
	mu  sync.Mutex
	buf []byte
	fn  func([]byte)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.fn(w.buf[:i])
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) == 0 {
		w.buf = nil // let a large burst's array go
	}
	return len(p), nil
}
