package chaos

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// nodeClients is one Node.js process (internal/chaos/node/client.mjs) running every
// WHATWG EventSource subscriber; the driver opens and drops them with JSON
// lines on its stdin and reads what they receive from its stdout.
type nodeClients struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	inMu sync.Mutex
	done chan struct{} // closed when stdout ended

	mu   sync.Mutex
	recs map[string]*recording

	closeOnce sync.Once
}

func startNodeClients(cfg Config) (*nodeClients, error) {
	cmd := exec.Command(cfg.NodeBin, filepath.Base(cfg.NodeClient))
	cmd.Dir = filepath.Dir(cfg.NodeClient)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	errLog, err := os.Create(filepath.Join(cfg.Dir, "logs", "node-clients.log"))
	if err != nil {
		return nil, err
	}
	cmd.Stderr = errLog
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("node clients: %w", err)
	}
	n := &nodeClients{cmd: cmd, in: in, done: make(chan struct{}), recs: make(map[string]*recording)}
	go n.read(out, errLog)
	return n, nil
}

// read dispatches the process's lines to the recordings until stdout ends.
func (n *nodeClients) read(out io.Reader, errLog *os.File) {
	defer close(n.done)
	defer errLog.Close()
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var m struct {
			C, K, ID, T, D, Msg string
			Code                int
		}
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			continue
		}
		n.mu.Lock()
		r := n.recs[m.C]
		n.mu.Unlock()
		if r == nil {
			continue
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
	_ = n.cmd.Wait()
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
	case <-n.done:
	case <-t.C:
		_ = syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
		<-n.done
	case <-ctx.Done():
		_ = syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
		<-n.done
	}
}
