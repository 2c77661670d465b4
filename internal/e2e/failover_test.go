package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandem-dev/tandem/eventlog"
	"github.com/tandem-dev/tandem/internal/redistest"
	"github.com/tandem-dev/tandem/internal/sandboxtest/mockagent"
	"github.com/tandem-dev/tandem/internal/ssetest"
)

type attempt struct {
	start, end time.Time
	code       int
}

// prober sends a prompt every interval through one node (or a load
// balancer: base is its URL) until stopped,
// each with its own Idempotency-Key and retried with it until accepted,
// and records when prompts were refused.
type prober struct {
	mu       sync.Mutex
	accepted map[string]string // text -> inbox id
	order    []string          // texts in the order they were accepted
	attempts []attempt
	codes    map[int]int
	stop     chan struct{}
	done     chan struct{}
}

func startProber(t *testing.T, base, ws string, every time.Duration) *prober {
	p := &prober{accepted: map[string]string{}, codes: map[int]int{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for i := 0; ; i++ {
			text := fmt.Sprintf("probe %d [chunks=1]", i)
			for try := 0; ; try++ {
				var a accepted
				start := time.Now()
				code := tryCall("POST", base+"/v1/workspaces/"+ws+"/sessions/default/prompt",
					map[string]string{"text": text}, map[string]string{"Idempotency-Key": text}, &a)
				p.mu.Lock()
				p.codes[code]++
				p.attempts = append(p.attempts, attempt{start, time.Now(), code})
				if code == 202 {
					p.accepted[text] = a.ID
					p.order = append(p.order, text)
				}
				p.mu.Unlock()
				if code == 202 || try == 200 {
					break
				}
				select {
				case <-p.stop:
					return
				case <-time.After(every):
				}
			}
			select {
			case <-p.stop:
				return
			case <-time.After(every):
			}
		}
	}()
	t.Cleanup(p.halt)
	return p
}

func (p *prober) halt() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
}

// unavailable reports, for a client that retries every interval, how long
// after since its first attempt that started after since was accepted, and
// the slowest accepted attempt.
func (p *prober) unavailable(since time.Time) (first, slowest time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	first = -1
	for _, a := range p.attempts {
		if a.code != 202 {
			continue
		}
		slowest = max(slowest, a.end.Sub(a.start))
		if first < 0 && a.start.After(since) {
			first = a.end.Sub(since)
		}
	}
	return first, slowest
}

// tryCall is call that reports a transport error as status 0 instead of
// failing the test.
func tryCall(method, url string, body any, hdr map[string]string, out any) int {
	b, _ := json.Marshal(body)
	req, err := http.NewRequest(method, url, bytes.NewReader(b))
	if err != nil {
		return 0
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil {
		json.Unmarshal(raw, out)
	}
	return resp.StatusCode
}

// The master of a workspace's slot is killed in the middle of a turn,
// while prompts keep coming through the other node: a replica takes over
// the slot, the prompts refused meanwhile are accepted on retry, the turn
// finishes, every ACP message is in the stream exactly once without a gap,
// and every accepted prompt reaches the agent once and has its chat.user
// entry. The test measures how long prompts were refused and how long the
// stream stood still.
func TestRedisMasterFailoverMidTurn(t *testing.T) {
	e := newClusterEnv(t, redistest.ClusterOptions{Masters: 3, ReplicasPerMaster: 1})
	// Unlimited prompts: the prober must measure Redis, not the rate limit.
	unlimited := map[string]string{"TANDEM_PROMPT_RATE": "-1"}
	a := e.node("a", unlimited)
	b := e.node("b", unlimited)
	const ws = "fo"
	call(t, "PUT", a.URL()+"/v1/workspaces/"+ws, nil, nil, nil)
	call(t, "POST", a.URL()+"/v1/workspaces/"+ws+"/sessions", map[string]string{"id": "default"}, nil, nil)
	waitOwner(t, a, ws, "", 5*time.Second)
	cb := follow(t, b, ws, "default")
	text := "a long answer [chunks=60] [delay=50ms]"
	acc := prompt(t, a, ws, "default", text, nil)
	cb.waitFor(t, "the first chunks", 10*time.Second, func(evs []ssetest.Event) bool {
		return strings.Count(fmt.Sprint(evs), "agent_message_chunk") >= 5
	})
	p := startProber(t, b.URL(), ws, 100*time.Millisecond)
	time.Sleep(300 * time.Millisecond)

	master := e.cluster.MasterFor(t, eventlog.FenceKey(ws))
	killed := time.Now()
	master.Kill()
	e.cluster.WaitHealthy(t)
	promoted := time.Since(killed)

	cb.waitFor(t, "the end of the long turn", 30*time.Second, turnEnded(acc.ID))
	// Let the prober get a few prompts through after the failover.
	deadline := time.Now().Add(20 * time.Second)
	for {
		p.mu.Lock()
		n := len(p.accepted)
		p.mu.Unlock()
		if n >= 10 && time.Since(killed) > 4*time.Second {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d probes accepted", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.halt()
	p.mu.Lock()
	probes := p.accepted
	last := p.order[len(p.order)-1]
	p.mu.Unlock()
	cb.waitFor(t, "the turn of the last probe", 30*time.Second, turnEnded(probes[last]))

	entries := readStream(t, e.rdb, ws, "default")
	checkStream(t, entries)
	if reply, _ := agentReply(entries, acc.ID); reply != mockagent.Reply(text) {
		t.Fatalf("reply %q, want %q", reply, mockagent.Reply(text))
	}
	received := e.promptsReceived(t)
	users := chatUsers(entries)
	if received[text] != 1 {
		t.Errorf("the long prompt reached the agent %d times", received[text])
	}
	for tx, id := range probes {
		if received[tx] != 1 || users[id] != 1 {
			t.Errorf("accepted prompt %q: reached the agent %d times, %d chat.user entries", tx, received[tx], users[id])
		}
	}

	// How long the stream stood still: the longest pause between two
	// entries appended around the kill, by Redis's clock.
	msgs, err := e.rdb.XRange(context.Background(), eventlog.StreamKey(ws, "default"), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	var times []int64
	for _, m := range msgs {
		ts, _ := strconv.ParseInt(fmt.Sprint(m.Values["ts"]), 10, 64)
		times = append(times, ts)
	}
	var stall time.Duration
	for i := 1; i < len(times); i++ {
		if times[i] >= killed.UnixMilli()-1000 {
			stall = max(stall, time.Duration(times[i]-times[i-1])*time.Millisecond)
		}
	}
	firstOK, slowest := p.unavailable(killed)
	var owners []string
	for _, en := range entries {
		if en.Type == "session.status" && en.Body["status"] == "owner_changed" {
			owners = append(owners, fmt.Sprint(en.Body["detail"]))
		}
	}
	codes := fmt.Sprint(p.codes)
	t.Logf("master killed; replica promoted and cluster healthy after %v; a prompt sent after the kill was first accepted %v after it (slowest 202: %v; statuses %s); longest pause of the stream %v; %d probes accepted; ownership records %v",
		promoted.Round(time.Millisecond), firstOK.Round(time.Millisecond), slowest.Round(time.Millisecond), codes, stall, len(probes), owners)
}
