package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tandem-dev/tandem/internal/sandboxtest/mockagent"
	"github.com/tandem-dev/tandem/internal/ssetest"
)

// Redis refuses appends for a moment in the middle of a turn (as when it
// restarts, or runs out of memory) while the owner keeps its lock: the
// owner fails to persist some agent messages and re-attaches to the same
// ACP connection. It must resume right after the last message the stream holds:
// none lost (messages read before the failure but not persisted are not
// appended later), none repeated (the resume position is the stream's, not
// the one the owner loaded when it took the workspace). Found by the fault
// campaign.
func TestAppendsFailMidTurn(t *testing.T) {
	e := newEnv(t)
	n := e.node("solo", nil)
	call(t, "PUT", n.URL()+"/v1/workspaces/w9", nil, nil, nil)
	c := follow(t, n, "w9", "default")
	first := prompt(t, n, "w9", "default", "warm up [chunks=4]", nil)
	c.waitFor(t, "the first turn", 15*time.Second, turnEnded(first.ID))
	// Messages come fast, so that some wait in the owner's queue when an
	// append fails.
	text := strings.Repeat("without losing or repeating a word, ", 10) + "[chunks=300] [delay=8ms]"
	acc := prompt(t, n, "w9", "default", text, nil)
	c.waitFor(t, "the first chunks", 10*time.Second, func(evs []ssetest.Event) bool {
		return strings.Count(ssetestData(evs), "agent_message_chunk") >= 4+20
	})
	// Appends fail for a moment while the lock stays extended: Redis is
	// out of memory (the append script declares writes, the lock's
	// extension does not). Long and short moments: after a short one,
	// messages read before the failure still wait in the owner's queue.
	for _, d := range []time.Duration{400, 3, 20, 1, 60, 8} {
		if _, err := e.redis.Do(context.Background(), "CONFIG", "SET", "maxmemory", "1"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(d * time.Millisecond)
		if _, err := e.redis.Do(context.Background(), "CONFIG", "SET", "maxmemory", "0"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(150 * time.Millisecond)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, ended := agentReply(readStream(t, e.rdb, "w9", "default"), acc.ID); ended {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the turn did not end within 30s of the restarts")
		}
		time.Sleep(100 * time.Millisecond)
	}
	entries := readStream(t, e.rdb, "w9", "default")
	checkStream(t, entries)
	reply, _ := agentReply(entries, acc.ID)
	if want := mockagent.Reply(text); reply != want {
		t.Fatalf("reply %q, want %q", reply, want)
	}
	if n := e.promptsReceived(t)[text]; n != 1 {
		t.Fatalf("the agent received the prompt %d times", n)
	}
}
