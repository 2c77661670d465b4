package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/tandem-dev/tandem/internal/retry"
)

// prompt is one prompt a writer sent, with what the server said.
type prompt struct {
	ws, sid, user, key, text, token string
	silent                          bool   // the agent says nothing for over 10 s
	id                              string // inbox id from the 2xx answer
	acked                           bool   // a 2xx came back
	conflict                        string // a second 2xx with another id
	attempts                        int
	rejected                        string // a 4xx that retrying cannot fix
	sent, acked2xx                  time.Time
}

// tokenRE finds the token of a campaign prompt in a text; the last match in
// what the agent received is the prompt itself (a restored session's first
// prompt starts with the replayed history, which holds earlier ones).
var tokenRE = regexp.MustCompile(`chaos\[([A-Za-z0-9_.-]+#\d+)\]`)

// writer sends prompts to one workspace through the load balancer, each with
// its own Idempotency-Key, retrying on errors as a careful client would:
// with the same key, with backoff, until a 2xx or its bound.
type writer struct {
	ws, user, lb string
	rng          *rand.Rand
	hc           *http.Client
	// side is a second session of the workspace ("" for none): one prompt
	// in five goes there, and one in four of those is a silent turn.
	side string
	// idle: bursts of 1–3 prompts with pauses longer than the nodes' idle
	// timeout in between, so that the owner lets the workspace go.
	idle bool
	// quiet leaves out silent turns and cancels (Config.NoSilent).
	quiet bool

	mu      sync.Mutex
	prompts []*prompt
	retries int // requests that failed and were retried
	retryAt []time.Time
	cancels int // cancel requests answered 2xx
}

// Silent turns: the scripted agent waits this long before its only update
// ([chunks=1] [delay=…]), longer than the 10 s after which a new owner
// decides whether a prompt it found in flight reached the agent.
const (
	silentMin = 11 * time.Second
	silentMax = 13 * time.Second
)

// Bounds of one prompt's retries.
const (
	promptRetryFor = 60 * time.Second
	promptAttempts = 300
)

// run sends prompts until ctx ends; a prompt being retried when ctx ends is
// still retried to its bound (stop bounds that wait).
func (w *writer) run(ctx, stop context.Context) {
	burst := 0
	for n := 1; ctx.Err() == nil; n++ {
		// Every draw is made whatever the options, so that a seed keeps
		// its sequence.
		chunks := 2 + w.rng.Intn(7)
		delay := 10 + w.rng.Intn(60)
		toSide, silent, cancel := w.rng.Intn(5) == 0, w.rng.Intn(4) == 0, w.rng.Intn(12) == 0
		silence := silentMin + time.Duration(w.rng.Int63n(int64(silentMax-silentMin)))
		cancelAfter := time.Duration(300+w.rng.Intn(600)) * time.Millisecond
		p := &prompt{
			ws: w.ws, sid: "default", user: w.user,
			key:   fmt.Sprintf("%s-%d-%x", w.ws, n, w.rng.Uint32()),
			token: w.ws + "#" + strconv.Itoa(n),
		}
		if w.side != "" && toSide {
			p.sid = w.side
		}
		switch {
		case w.quiet:
			silent, cancel = false, false
		case w.idle:
			cancel = false
		case p.sid == "default":
			silent = false // keep the followed session's backlog short
		default:
			cancel = false
		}
		switch {
		case silent:
			p.silent = true
			p.text = fmt.Sprintf("chaos[%s] hello %d [chunks=1] [delay=%dms]", p.token, n, silence.Milliseconds())
		case cancel:
			// A turn long enough to be cancelled while it runs.
			p.text = fmt.Sprintf("chaos[%s] hello %d [chunks=8] [delay=150ms]", p.token, n)
		default:
			p.text = fmt.Sprintf("chaos[%s] hello %d [chunks=%d] [delay=%dms]", p.token, n, chunks, delay)
		}
		w.mu.Lock()
		w.prompts = append(w.prompts, p)
		w.mu.Unlock()
		w.send(stop, p)
		if cancel && p.acked {
			select {
			case <-ctx.Done():
			case <-time.After(cancelAfter):
				w.cancel(stop, p.sid)
			}
		}
		pause := time.Duration(300+w.rng.Intn(1200)) * time.Millisecond
		if w.idle {
			burst++
			if burst >= 1+w.rng.Intn(3) {
				burst = 0
				pause = 10*time.Second + time.Duration(w.rng.Intn(6000))*time.Millisecond
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
	}
}

// cancel asks, once, to cancel the running turn of session sid.
func (w *writer) cancel(ctx context.Context, sid string) {
	url := w.lb + "/v1/workspaces/" + w.ws + "/sessions/" + sid + "/cancel"
	req, _ := http.NewRequestWithContext(ctx, "POST", url, nil)
	req.Header.Set("X-User-Id", w.user)
	resp, err := w.hc.Do(req)
	if err != nil {
		return
	}
	resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		w.mu.Lock()
		w.cancels++
		w.mu.Unlock()
	}
}

func (w *writer) send(ctx context.Context, p *prompt) {
	body, _ := json.Marshal(map[string]string{"text": p.text})
	url := w.lb + "/v1/workspaces/" + w.ws + "/sessions/" + p.sid + "/prompt"
	p.sent = time.Now()
	backoff := retry.Exponential(100*time.Millisecond, 2*time.Second)
	for p.attempts < promptAttempts && time.Since(p.sent) < promptRetryFor && ctx.Err() == nil {
		p.attempts++
		req, _ := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-User-Id", w.user)
		req.Header.Set("Idempotency-Key", p.key)
		resp, err := w.hc.Do(req)
		if err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
			resp.Body.Close()
			switch {
			case resp.StatusCode >= 200 && resp.StatusCode < 300:
				var a struct{ ID string }
				_ = json.Unmarshal(b, &a)
				w.mu.Lock()
				if p.acked && a.ID != p.id {
					p.conflict = a.ID
				}
				p.id, p.acked, p.acked2xx = a.ID, true, time.Now()
				w.mu.Unlock()
				return
			case resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != 408 && resp.StatusCode != 429:
				w.mu.Lock()
				p.rejected = fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(b))
				w.mu.Unlock()
				return
			}
		}
		w.mu.Lock()
		w.retries++
		w.retryAt = append(w.retryAt, time.Now())
		w.mu.Unlock()
		// Jitter of up to the wait again, drawn from the writer's seeded
		// source: a seed replays the campaign's draws.
		wait := backoff.NextBackOff()
		select {
		case <-ctx.Done():
		case <-time.After(wait + time.Duration(w.rng.Int63n(int64(wait)))):
		}
	}
}

func (w *writer) snapshot() ([]prompt, int, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]prompt, len(w.prompts))
	for i, p := range w.prompts {
		out[i] = *p
	}
	return out, w.retries, w.cancels
}

// retriesIn counts the failed requests in [from, to].
func (w *writer) retriesIn(from, to time.Time) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, t := range w.retryAt {
		if !t.Before(from) && !t.After(to) {
			n++
		}
	}
	return n
}
