package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tandem-dev/tandem/eventlog"
	"github.com/tandem-dev/tandem/internal/redistest"
	"github.com/tandem-dev/tandem/internal/sandboxtest/mockagent"
	"github.com/tandem-dev/tandem/internal/ssetest"
)

// Redis restarts from a snapshot older than its last acknowledged writes
// (RDB; an AOF with appendfsync everysec loses its last second the same
// way) while a node owns the workspace and a client follows it. Before
// issue 13 the owner appended the next events under the lost entries'
// indexes, the node's ring dropped them as "already have it", the client
// resuming from a lost entry skipped them without a reset, and the agent's
// lost output was gone. Now:
//   - the agent's lost messages come back (re-attached from the last
//     persisted position), the stream stays gapless, and no prompt
//     reaches the agent twice;
//   - the client that saw lost entries gets one reset, and what it holds
//     after it is what Redis holds.
func TestLossyRedisRestart(t *testing.T) {
	e := &env{t: t}
	e.redis = redistest.Start(t, redistest.Options{}) // no AOF: SAVE is the snapshot
	e.redisURL = e.redis.URL()
	e.rdb = e.redis.Client(t)
	e.startPeers()
	n := e.node("solo", nil)
	const ws = "lossy"
	call(t, "PUT", n.URL()+"/v1/workspaces/"+ws, nil, nil, nil)
	c := follow(t, n, ws, "default")
	one := prompt(t, n, ws, "default", "one [chunks=3]", nil)
	c.waitFor(t, "the first turn", 20*time.Second, turnEnded(one.ID))
	if _, err := e.redis.Do(context.Background(), "SAVE"); err != nil {
		t.Fatal(err)
	}
	twoText := "two [chunks=4]"
	two := prompt(t, n, ws, "default", twoText, nil)
	c.waitFor(t, "the second turn", 20*time.Second, turnEnded(two.ID))
	seen := len(c.snapshot())

	e.redis.Kill()
	e.redis.Restart(t) // from the snapshot: the second turn is gone from Redis
	if got := readStream(t, e.rdb, ws, "default"); len(got) == 0 || agentReplyEnded(got, two.ID) {
		t.Fatalf("the restart kept the second turn (%d entries): the fault did not lose writes", len(got))
	}

	threeText := "three [chunks=2]"
	three := acceptWhenUp(t, n, ws, threeText)
	deadline := time.Now().Add(60 * time.Second)
	for {
		entries := readStream(t, e.rdb, ws, "default")
		if _, ended := agentReply(entries, three.ID); ended {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the third turn did not end within 60s of the restart: %v", describeEntries(entries))
		}
		time.Sleep(100 * time.Millisecond)
	}
	entries := readStream(t, e.rdb, ws, "default")
	checkStream(t, entries)
	if reply, _ := agentReply(entries, three.ID); reply != mockagent.Reply(threeText) {
		t.Fatalf("third reply %q", reply)
	}
	// The second turn's agent messages were lost with Redis's writes and
	// came back from Sandbox Agent's connection.
	if got := strings.Count(joinRaw(entries), "agent_message_chunk"); got < 3+4+2 {
		t.Fatalf("%d agent chunks in the stream after the restart; the lost ones did not come back: %v", got, describeEntries(entries))
	}
	for text, k := range e.promptsReceived(t) {
		if k != 1 {
			t.Fatalf("the agent received %q %d times", text, k)
		}
	}
	// The client: the entries it was sent beyond what Redis kept were
	// named by cursors Redis no longer holds: one reset, then Redis's
	// stream.
	got := c.waitFor(t, "the client to catch up", 20*time.Second, func(evs []ssetest.Event) bool {
		return len(evs) > 0 && evs[len(evs)-1].ID != "" && idIndex(evs[len(evs)-1].ID) == entries[len(entries)-1].Index
	})
	resets := 0
	last := -1
	for i, ev := range got {
		if ev.Type == "reset" {
			resets++
			last = i
		}
	}
	if resets != 1 || last < seen-1 {
		t.Fatalf("the client got %d resets (last at %d of %d events, %d seen before the restart); want one after the lost entries", resets, last, len(got), seen)
	}
	after := got[last+1:]
	if len(after) != len(entries) {
		t.Fatalf("after the reset the client has %d events, Redis %d", len(after), len(entries))
	}
	for i, ev := range after {
		if idIndex(ev.ID) != entries[i].Index || ev.Type != entries[i].Type {
			t.Fatalf("after the reset, event %d is %s %s; Redis has %d %s", i, ev.ID, ev.Type, entries[i].Index, entries[i].Type)
		}
	}
}

// acceptWhenUp sends a prompt, again while the node answers 503 (Redis
// coming back).
func acceptWhenUp(t *testing.T, n *node, ws, text string) accepted {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var acc accepted
		code := call(t, "POST", n.URL()+"/v1/workspaces/"+ws+"/sessions/default/prompt", map[string]string{"text": text}, nil, &acc)
		if code == 202 {
			return acc
		}
		if time.Now().After(deadline) {
			t.Fatalf("prompt: %d", code)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func agentReplyEnded(entries []streamEntry, promptID string) bool {
	_, ended := agentReply(entries, promptID)
	return ended
}

func joinRaw(entries []streamEntry) string {
	var b strings.Builder
	for _, e := range entries {
		b.WriteString(e.Raw)
	}
	return b.String()
}

func describeEntries(entries []streamEntry) []string {
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = e.Type
		if s, ok := e.Body["status"].(string); ok {
			out[i] += ":" + s
		}
	}
	return out
}

// idIndex is the eventIndex of an event id.
func idIndex(id string) uint64 {
	var n uint64
	for i := 0; i < len(id) && id[i] >= '0' && id[i] <= '9'; i++ {
		n = n*10 + uint64(id[i]-'0')
	}
	return n
}

// Redis lost a session's stream and its state altogether: the next prompt
// is answered in a new generation, after history_rewound.
func TestLostStreamAndState(t *testing.T) {
	e := newEnv(t)
	first := e.node("first", nil)
	const ws = "gone"
	call(t, "PUT", first.URL()+"/v1/workspaces/"+ws, nil, nil, nil)
	zero := prompt(t, first, ws, "default", "zero [chunks=2]", nil)
	waitOwner(t, first, ws, "", 10*time.Second)
	n := e.node("solo", nil)
	c := follow(t, n, ws, "default")
	c.waitFor(t, "the zeroth turn", 20*time.Second, turnEnded(zero.ID))
	// The second node takes the workspace over mid-turn.
	one := prompt(t, n, ws, "default", "one [chunks=20] [delay=100ms]", nil)
	time.Sleep(500 * time.Millisecond)
	first.kill()
	c.waitFor(t, "the first turn", 30*time.Second, turnEnded(one.ID))
	if err := e.rdb.Del(context.Background(), eventlog.StreamKey(ws, "default"), eventlog.StateKey(ws, "default")).Err(); err != nil {
		t.Fatal(err)
	}
	two := prompt(t, n, ws, "default", "two [chunks=2]", nil)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, ended := agentReply(readStream(t, e.rdb, ws, "default"), two.ID); ended {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the second turn did not end: %v", describeEntries(readStream(t, e.rdb, ws, "default")))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
