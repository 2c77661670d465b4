package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tandem-dev/tandem/eventlog"
	"github.com/tandem-dev/tandem/internal/proc"
	"github.com/tandem-dev/tandem/internal/sandboxtest/mockagent"
)

// cli runs the tandem binary as a client command and collects its output
// lines.
type cli struct {
	p      *proc.Proc
	mu     sync.Mutex
	lines  []string
	stderr lockedBuffer
}

func startCLI(t *testing.T, args ...string) *cli {
	t.Helper()
	c := &cli{}
	cmd := exec.Command(tandemBinary(t), args...)
	cmd.Env = append(os.Environ(), "GORACE=halt_on_error=1")
	cmd.Stderr = &c.stderr
	cmd.Stdout = proc.Lines(func(l []byte) {
		c.mu.Lock()
		c.lines = append(c.lines, string(l))
		c.mu.Unlock()
	})
	var err error
	if c.p, err = proc.Start(cmd); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.p.Kill()
		if t.Failed() {
			t.Logf("stderr of tandem %s:\n%s", args[0], c.stderr.tail(4000))
		}
	})
	return c
}

func (c *cli) output() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.lines...)
}

func (c *cli) waitLines(t *testing.T, what string, within time.Duration, cond func([]string) bool) []string {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if l := c.output(); cond(l) {
			return l
		}
		time.Sleep(20 * time.Millisecond)
	}
	l := c.output()
	t.Fatalf("%s: not within %v; %d lines, the last: %q", what, within, len(l), l[max(0, len(l)-3):])
	return nil
}

// stop interrupts the command as Ctrl-C would and wants exit status 0.
func (c *cli) stop(t *testing.T) {
	t.Helper()
	c.p.Signal(syscall.SIGINT)
	select {
	case <-c.p.Done():
		if err := c.p.Err(); err != nil {
			t.Fatalf("tandem exited with %v after an interrupt; stderr:\n%s", err, c.stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("tandem did not exit within 10s of an interrupt")
	}
}

// holdSession makes the test the owner of ws (no node takes it) with the
// session sid, and returns the epoch to append with.
func holdSession(t *testing.T, rdb redis.UniversalClient, l *eventlog.Log, ws, sid string) uint64 {
	t.Helper()
	ctx := context.Background()
	tag := "{ws:" + ws + "}"
	if err := rdb.Set(ctx, tag+":lock", "test", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	rdb.HSet(ctx, tag+":meta", "sandboxUrl", "http://127.0.0.1:9", "agent", "mock", "createdAt", 1)
	rdb.HSet(ctx, tag+":session:"+sid, "id", sid, "agent", "mock", "createdAt", 1)
	rdb.ZAdd(ctx, tag+":sessions", redis.Z{Score: 1, Member: sid})
	ep, err := l.AcquireEpoch(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	return ep
}

// `tandem tail --json` follows a session while its only node is stopped
// with SIGTERM, then with SIGKILL, and started again on the same address,
// with events appended all along: what it prints is the stream, line for
// line, without a gap or a duplicate.
func TestCLITailSurvivesNodeRestarts(t *testing.T) {
	e := newEnv(t)
	n := e.node("a", nil)
	const ws, sid = "cli", "s"
	ep := holdSession(t, e.rdb, e.log, ws, sid)
	seq := 0
	appendSome := func(k int) {
		t.Helper()
		for i := 0; i < k; i++ {
			body := fmt.Sprintf(`{"userId":"u%d","text":"line %d"}`, seq%3, seq)
			if _, err := e.log.Append(context.Background(), ws, sid, ep, eventlog.Record{Type: "chat.user", Body: json.RawMessage(body)}); err != nil {
				t.Fatal(err)
			}
			seq++
		}
	}
	atLeast := func(k int) func([]string) bool { return func(l []string) bool { return len(l) >= k } }

	appendSome(40)
	tail := startCLI(t, "tail", "--json", "--url", n.URL(), ws, sid)
	tail.waitLines(t, "the history", 20*time.Second, atLeast(40))
	appendSome(40)
	tail.waitLines(t, "live events", 10*time.Second, atLeast(80))

	n.term()
	appendSome(40) // while no node runs
	n.start()
	appendSome(20)
	tail.waitLines(t, "events after a graceful restart", 20*time.Second, atLeast(140))

	n.kill()
	appendSome(40)
	n.start()
	appendSome(20)
	tail.waitLines(t, "events after a crash", 20*time.Second, atLeast(200))
	time.Sleep(300 * time.Millisecond) // a duplicate would show up by now
	tail.stop(t)

	got := tail.output()
	var want []string
	after := eventlog.Cursor{}
	for {
		evs, _, err := e.log.Read(context.Background(), ws, sid, after, eventlog.MaxPage)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			break
		}
		for _, ev := range evs {
			want = append(want, string(ev.AppendJSON(nil)))
		}
		after, _ = eventlog.ParseCursor(evs[len(evs)-1].ID)
	}
	if len(got) != len(want) {
		t.Errorf("tail printed %d lines, the stream has %d events", len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			t.Fatalf("line %d:\n got %s\nwant %s", i, got[i], want[i])
		}
	}
	if s := tail.stderr.String(); strings.Count(s, "connection lost") < 2 || strings.Contains(s, "DATA RACE") {
		t.Errorf("stderr of tail:\n%s", s)
	}
}

// `tandem prompt` is accepted once per idempotency key; `tandem tail`
// shows the conversation: the prompt as "ann: …", the agent's reply on one
// line, and the end of the turn.
func TestCLIPromptAndTail(t *testing.T) {
	e := newEnv(t)
	n := e.node("a", nil)
	call(t, "PUT", n.URL()+"/v1/workspaces/room", nil, nil, nil)
	text := "hello from the terminal [chunks=5] [delay=20ms]"
	runPrompt := func() string {
		t.Helper()
		cmd := exec.Command(tandemBinary(t), "prompt", "--url", n.URL(), "--user", "ann", "--idempotency-key", "k1", "room", text)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("tandem prompt: %v: %s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	id := runPrompt()
	if again := runPrompt(); again != id || id == "" {
		t.Fatalf("the same idempotency key gave ids %q and %q", id, again)
	}
	tail := startCLI(t, "tail", "--url", n.URL(), "--user", "ann", "room")
	lines := tail.waitLines(t, "the end of the turn", 20*time.Second, func(l []string) bool {
		return strings.Contains(strings.Join(l, "\n"), "── turn ended")
	})
	tail.stop(t)
	got := strings.Join(lines, "\n")
	t.Logf("tandem tail printed:\n%s", got)
	for _, want := range []string{"ann: " + text, "── turn started for ann", "agent: " + mockagent.Reply(text)} {
		if !strings.Contains(got, want+"\n") {
			t.Errorf("no line %q in:\n%s", want, got)
		}
	}
	if n := e.promptsReceived(t)[text]; n != 1 {
		t.Errorf("the agent received the prompt %d times", n)
	}
	// A rejected prompt: the problem is printed and the status is 1.
	out, err := exec.Command(tandemBinary(t), "prompt", "--url", n.URL(), "nope", "hi").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "404 workspace_not_found") {
		t.Errorf("prompt to a missing workspace: %v: %s", err, out)
	}
}
