package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/tandem-dev/tandem/internal/proc"
)

// nodeClients is one Node.js process (internal/chaos/node/client.mjs) running every
// WHATWG EventSource subscriber; the driver opens and drops them with JSON
// lines on its stdin and reads what they receive from its stdout.
type nodeClients struct {
	p    *proc.Proc
	in   io.WriteCloser
	inMu sync.Mutex

	mu   sync.Mutex
	recs map[string]*recording

	closeOnce sync.Once
}

func startNodeClients(cfg Config) (*nodeClients, error) {
	cmd := exec.Command(cfg.NodeBin, filepath.Base(cfg.NodeClient))
	cmd.Dir = filepath.Dir(cfg.NodeClient)
	errLog, err := os.Create(filepath.Join(cfg.Dir, "logs", "node-clients.log"))
	if err != nil {
		return nil, err
	}
	defer errLog.Close() // the child has its own copy
	cmd.Stderr = errLog
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	n := &nodeClients{in: in, recs: make(map[string]*recording)}
	cmd.Stdout = proc.Lines(n.line)
	if n.p, err = proc.Start(cmd); err != nil {
		return nil, fmt.Errorf("node clients: %w", err)
	}
	return n, nil
}

// line dispatches one line of the process's stdout to its recording.
func (n *nodeClients) line(b []byte) {
	var m struct {
		C, K, ID, T, D, Msg string
		Code                int
	}
	if json.Unmarshal(b, &m) != nil {
		return
	}
	n.mu.Lock()
	r := n.recs[m.C]
	n.mu.Unlock()
	if r == nil {
		return
	}
	switch m.K {
	case "open":
		r.connected()
	case "ev":
		r.add(m.T, []byte(m.D))
	case "fatal":
		r.gaveUp(fmt.Sprintf("EventSource gave up: %d %s", m.Code, m.Msg))
	}
}

func (n *nodeClients) send(v any) error {
	b, _ := json.Marshal(v)
	n.inMu.Lock()
	defer n.inMu.Unlock()
	_, err := n.in.Write(append(b, '\n'))
	return err
}

// open starts a subscriber that records into r.
func (n *nodeClients) open(r *recording, url, cursor string) error {
	n.mu.Lock()
	n.recs[r.id] = r
	n.mu.Unlock()
	return n.send(map[string]string{"op": "open", "client": r.id, "url": url, "cursor": cursor})
}

// drop resets the TCP connection of a subscriber's current stream.
func (n *nodeClients) drop(id string) bool {
	return n.send(map[string]string{"op": "drop", "client": id}) == nil
}

// close ends every subscriber and the process, bounded in time. Calls
// after the first do nothing.
func (n *nodeClients) close(ctx context.Context) {
	n.closeOnce.Do(func() { n.closeNow(ctx) })
}

func (n *nodeClients) closeNow(ctx context.Context) {
	_ = n.send(map[string]string{"op": "close"})
	n.in.Close()
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-n.p.Done():
	case <-t.C:
		n.p.Kill()
	case <-ctx.Done():
		n.p.Kill()
	}
}
