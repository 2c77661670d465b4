package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tandem-dev/tandem/internal/redistest"
	"github.com/tandem-dev/tandem/internal/sandboxtest"
	"github.com/tandem-dev/tandem/internal/sandboxtest/mockagent"
	"github.com/tandem-dev/tandem/internal/ssetest"
)

// sandboxPid finds the sandbox-agent server listening on port.
func sandboxPid(t testing.TB, port int) int {
	t.Helper()
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) > 1 && strings.HasSuffix(args[0], "sandbox-agent") && args[1] == "server" && strings.Contains(string(b), "\x00"+strconv.Itoa(port)+"\x00") {
			return pid
		}
	}
	t.Fatalf("no sandbox-agent server on port %d", port)
	return 0
}

func statuses(entries []streamEntry) []string {
	var out []string
	for _, e := range entries {
		if e.Type == "session.status" {
			out = append(out, e.Body["status"].(string))
		}
	}
	return out
}

// The Sandbox Agent server stops answering: after 3 failed health checks
// the local provider restarts it, the session is restored, and the next
// prompt gets an answer; session.status entries record it all.
func TestSandboxRestartedByLocalProvider(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{AppendOnly: true})
	rdb := rs.Client(t)
	promptLog := filepath.Join(t.TempDir(), "prompts.jsonl")
	port := redistest.FreePort(t)
	n := startNode(t, "solo", nodeOpts{redis: rs.URL(), env: map[string]string{
		"TANDEM_SANDBOX":           "local",
		"TANDEM_SANDBOX_AGENT_BIN": sandboxtest.Binary(t),
		"TANDEM_AGENT_LAUNCHER":    sandboxtest.LoggingLauncher(t, promptLog),
		"TANDEM_SANDBOX_DATA_DIR":  t.TempDir(),
		"TANDEM_SANDBOX_PORT":      strconv.Itoa(port),
	}})
	call(t, "PUT", n.URL()+"/v1/workspaces/w5", nil, nil, nil)
	c := follow(t, n, "w5", "default")
	first := prompt(t, n, "w5", "default", "before the crash [chunks=2]", nil)
	c.waitFor(t, "the first answer", 15*time.Second, turnEnded(first.ID))

	// A hung server: alive, but answering nothing.
	pid := sandboxPid(t, port)
	syscall.Kill(pid, syscall.SIGSTOP)
	defer syscall.Kill(pid, syscall.SIGCONT)
	c.waitFor(t, "sandbox_unhealthy, sandbox_recovered and session_restored", 30*time.Second, func(evs []ssetest.Event) bool {
		s := ""
		for _, ev := range evs {
			s += ev.Data
		}
		return strings.Contains(s, `"status":"sandbox_unhealthy"`) && strings.Contains(s, `"status":"sandbox_recovered"`) && strings.Contains(s, `"status":"session_restored"`)
	})
	if newPid := sandboxPid(t, port); newPid == pid {
		t.Fatal("the sandbox server was not restarted")
	}
	second := prompt(t, n, "w5", "default", "after the restart [chunks=2]", nil)
	c.waitFor(t, "the answer after the restart", 15*time.Second, turnEnded(second.ID))
	entries := readStream(t, rdb, "w5", "default")
	checkStream(t, entries)
	reply, _ := agentReply(entries, second.ID)
	// The restored session's first prompt carries the history.
	if !strings.Contains(reply, "before the crash") || !strings.HasSuffix(reply, "after the restart") {
		t.Fatalf("reply after the restore %q: no history, or not the prompt", reply)
	}
	var unhealthy *streamEntry
	for i := range entries {
		if entries[i].Body["status"] == "sandbox_unhealthy" {
			unhealthy = &entries[i]
		}
	}
	if d, _ := unhealthy.Body["detail"].(map[string]any); d == nil || d["failures"] != 3.0 {
		t.Errorf("sandbox_unhealthy detail %v: want 3 failures", unhealthy.Body["detail"])
	}
	t.Logf("statuses: %v", statuses(entries))
}

// An idle workspace is released after the idle timeout and re-activated by
// the next prompt, with its history intact.
func TestIdleWorkspaceReleasedAndReactivated(t *testing.T) {
	e := newEnv(t)
	n := e.node("solo", map[string]string{"TANDEM_IDLE_TIMEOUT": "1s"})
	call(t, "PUT", n.URL()+"/v1/workspaces/w6", nil, nil, nil)
	first := prompt(t, n, "w6", "default", "remember me [chunks=2]", nil)
	c := follow(t, n, "w6", "default")
	c.waitFor(t, "the first answer", 15*time.Second, turnEnded(first.ID))
	c.cancel()
	<-c.done
	deadline := time.Now().Add(15 * time.Second)
	for getWS(t, n, "w6").Owner != nil {
		if time.Now().After(deadline) {
			t.Fatal("the idle workspace was not released")
		}
		time.Sleep(100 * time.Millisecond)
	}
	before := readStream(t, e.rdb, "w6", "default")
	second := prompt(t, n, "w6", "default", "and now? [chunks=2]", nil)
	c2 := follow(t, n, "w6", "default")
	evs := c2.waitFor(t, "the second answer", 15*time.Second, turnEnded(second.ID))
	after := readStream(t, e.rdb, "w6", "default")
	checkStream(t, after)
	if len(after) <= len(before) {
		t.Fatal("nothing appended after re-activation")
	}
	for i := range before {
		if before[i].Raw != after[i].Raw {
			t.Fatalf("history changed at eventIndex %d", i+1)
		}
	}
	if len(evs) < len(after)-1 {
		t.Fatalf("a new client got %d events, the stream holds %d", len(evs), len(after))
	}
	reply, _ := agentReply(after, second.ID)
	if !strings.Contains(reply, "remember me") {
		t.Fatalf("the re-activated session's answer %q lacks the history", reply)
	}
	if got := e.promptsReceived(t); got["remember me [chunks=2]"] != 1 {
		t.Fatalf("prompts received: %v", got)
	}
}

// Prompts that arrive during a turn queue, in order; a cancel ends the
// running turn with stopReason cancelled; a retried request with the same
// Idempotency-Key is a no-op.
func TestQueueCancelIdempotency(t *testing.T) {
	e := newEnv(t)
	n := e.node("solo", nil)
	call(t, "PUT", n.URL()+"/v1/workspaces/w7", nil, nil, nil)
	c := follow(t, n, "w7", "default")
	long := prompt(t, n, "w7", "default", "long [chunks=100] [delay=50ms]", nil)
	var ids []string
	for i := 0; i < 3; i++ {
		ids = append(ids, prompt(t, n, "w7", "default", "queued "+strconv.Itoa(i)+" [chunks=2]", map[string]string{"Idempotency-Key": "k" + strconv.Itoa(i)}).ID)
	}
	// The same key again: the same prompt, nothing new.
	again := prompt(t, n, "w7", "default", "queued 1 [chunks=2]", map[string]string{"Idempotency-Key": "k1"})
	if again.ID != ids[1] {
		t.Fatalf("retried prompt got id %s, first got %s", again.ID, ids[1])
	}
	c.waitFor(t, "the long turn to stream", 10*time.Second, func(evs []ssetest.Event) bool {
		return strings.Count(ssetestData(evs), "agent_message_chunk") >= 3
	})
	if code := call(t, "POST", n.URL()+"/v1/workspaces/w7/sessions/default/cancel", nil, nil, nil); code != 202 {
		t.Fatalf("cancel: %d", code)
	}
	c.waitFor(t, "all turns", 20*time.Second, turnEnded(ids[2]))
	entries := readStream(t, e.rdb, "w7", "default")
	checkStream(t, entries)
	var order []string
	var stops []string
	for _, en := range entries {
		if en.Type == "session.status" {
			d, _ := en.Body["detail"].(map[string]any)
			switch en.Body["status"] {
			case "turn_started":
				order = append(order, d["promptId"].(string))
			case "turn_ended":
				stops = append(stops, d["stopReason"].(string))
				if len(order) != len(stops) {
					t.Fatal("a turn ended that was not the running one")
				}
			}
		}
	}
	want := append([]string{long.ID}, ids...)
	if strings.Join(order, ",") != strings.Join(want, ",") {
		t.Fatalf("turns ran in order %v, want %v", order, want)
	}
	if stops[0] != "cancelled" {
		t.Fatalf("the cancelled turn ended with %q", stops[0])
	}
	for _, s := range stops[1:] {
		if s != "end_turn" {
			t.Fatalf("stop reasons %v", stops)
		}
	}
	if got := e.promptsReceived(t)["queued 1 [chunks=2]"]; got != 1 {
		t.Fatalf("the idempotent prompt reached the agent %d times", got)
	}
	reply, _ := agentReply(entries, ids[0])
	if reply != mockagent.Reply("queued 0 [chunks=2]") {
		t.Fatalf("reply %q", reply)
	}
}

func ssetestData(evs []ssetest.Event) string {
	var b strings.Builder
	for _, ev := range evs {
		b.WriteString(ev.Data)
	}
	return b.String()
}
