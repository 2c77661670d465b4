package chaos

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tandem-dev/tandem/eventlog"
)

// The checker reads only what the clients observed (the writers' answers,
// the subscribers' recordings), what the agent received (its prompt log),
// and what Redis holds at the end. Its rules:
//
//   - Stream: eventIndex is 1..n without gap and n is the stream's head;
//     the writer epoch (ep) never decreases along the stream and is never
//     above the fence, so nothing landed under a stale epoch; each ACP
//     connection's messages carry consecutive ACP event ids (none lost or
//     repeated across owner changes).
//   - Prompts: every prompt answered 2xx has exactly one chat.user (its
//     promptId is the inbox id of the answer, its text the text sent), one
//     turn_started and one turn_ended. A prompt never answered 2xx appears
//     at most once. No prompt text appears in two chat.user entries.
//   - Delivery ("reached the agent exactly once"): the agent logs every
//     session/prompt it reads. Every prompt is logged at most once, ever:
//     in particular a prompt delivered before the Sandbox Agent server was
//     killed must not be sent again after the session is restored. It is
//     logged exactly once unless its turn ended with stopReason "error"
//     while a sandbox kill was in progress: the sandbox lost the turn with
//     the connection, and the user saw the turn fail (turn_ended error).
//     A turn that failed with no sandbox fault around it is a violation.
//   - Subscribers: what each one received, across all its reconnects, is
//     exactly the stream after the cursor it started from: same events
//     (byte for byte), in order, no gap, no duplicate, no reset, up to the
//     head.

// entry is a stream entry as Redis holds it.
type entry struct {
	ev   eventlog.Event
	body map[string]any
	sum  uint64 // hash of the event as the API renders it
}

// stream is one session stream at the end of the campaign.
type stream struct {
	ws      string
	gen     string
	head    uint64
	fence   uint64
	entries []entry
}

func readStream(ctx context.Context, rdb *redis.Client, ws string) (*stream, error) {
	log := eventlog.New(rdb, eventlog.Config{})
	s := &stream{ws: ws}
	fence, err := log.CurrentEpoch(ctx, ws)
	if err != nil {
		return nil, err
	}
	s.fence = fence
	// The raw entries, so that a gap in the stream is seen as such (Read
	// would turn it into a reset).
	msgs, err := rdb.XRange(ctx, eventlog.StreamKey(ws, "default"), "-", "+").Result()
	if err != nil {
		return nil, err
	}
	head, err := log.Head(ctx, ws, "default")
	if err != nil {
		return nil, err
	}
	s.gen, s.head = head.Gen, head.Index
	for _, m := range msgs {
		idx, err := strconv.ParseUint(m.ID[:len(m.ID)-2], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("entry id %s", m.ID)
		}
		ev := eventlog.Event{
			ID: eventlog.Cursor{Gen: s.gen, Index: idx}.String(), Index: idx, SessionID: "default",
		}
		ev.Type, _ = m.Values["t"].(string)
		d, _ := m.Values["d"].(string)
		ev.Body = []byte(d)
		ev.CreatedAt, _ = strconv.ParseInt(fmt.Sprint(m.Values["ts"]), 10, 64)
		ev.Epoch, _ = strconv.ParseUint(fmt.Sprint(m.Values["ep"]), 10, 64)
		ev.Source, _ = m.Values["src"].(string)
		e := entry{ev: ev, sum: dataSum(ev.AppendJSON(nil))}
		_ = json.Unmarshal(ev.Body, &e.body)
		s.entries = append(s.entries, e)
	}
	return s, nil
}

// agentPrompt is one line of the agent's prompt log.
type agentPrompt struct {
	token string
	text  string
}

func readPromptLog(path string) ([]agentPrompt, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []agentPrompt
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var l struct{ Text string }
		if json.Unmarshal(sc.Bytes(), &l) != nil {
			continue
		}
		p := agentPrompt{text: l.Text}
		if m := tokenRE.FindAllStringSubmatch(l.Text, -1); len(m) > 0 {
			p.token = m[len(m)-1][1]
		}
		out = append(out, p)
	}
	return out, sc.Err()
}

// checkInput is everything the checker looks at.
type checkInput struct {
	streams  map[string]*stream
	prompts  []prompt
	received []agentPrompt
	subs     []*recording
	faults   []fault
	slack    time.Duration // around a sandbox fault's window
}

// violations collects what broke, a few examples per rule.
type violations struct {
	n       int
	byRule  map[string]int
	samples []string
}

func (v *violations) add(rule, format string, args ...any) {
	v.n++
	if v.byRule == nil {
		v.byRule = map[string]int{}
	}
	v.byRule[rule]++
	if v.byRule[rule] <= 3 {
		v.samples = append(v.samples, rule+": "+fmt.Sprintf(format, args...))
	}
}

func str(m map[string]any, k string) string { s, _ := m[k].(string); return s }

func detail(e entry) map[string]any { d, _ := e.body["detail"].(map[string]any); return d }

func check(in checkInput) *violations {
	v := &violations{}
	for _, s := range in.streams {
		checkStream(v, s)
	}
	checkPrompts(v, in)
	for _, r := range in.subs {
		checkSubscriber(v, r, in.streams[r.ws])
	}
	return v
}

func checkStream(v *violations, s *stream) {
	var lastEp uint64
	acp := map[string]int{}
	for i, e := range s.entries {
		if e.ev.Index != uint64(i+1) {
			v.add("eventIndex", "%s: entry %d has eventIndex %d", s.ws, i+1, e.ev.Index)
			break
		}
		if e.ev.Epoch < lastEp {
			v.add("stale epoch", "%s: eventIndex %d written with epoch %d after epoch %d", s.ws, e.ev.Index, e.ev.Epoch, lastEp)
		}
		if e.ev.Epoch > s.fence {
			v.add("stale epoch", "%s: eventIndex %d has epoch %d above the fence %d", s.ws, e.ev.Index, e.ev.Epoch, s.fence)
		}
		lastEp = max(lastEp, e.ev.Epoch)
		if e.ev.Type == "session.event" && str(e.body, "sender") == "agent" {
			n, err := strconv.Atoi(e.ev.Source)
			conn := str(e.body, "connectionId")
			switch {
			case err != nil:
				v.add("acp ids", "%s: agent message at eventIndex %d has no ACP event id", s.ws, e.ev.Index)
			case acp[conn] != 0 && n != acp[conn]+1:
				v.add("acp ids", "%s: connection %s: ACP ids %d then %d at eventIndex %d", s.ws, conn, acp[conn], n, e.ev.Index)
			}
			acp[conn] = n
		}
	}
	if n := uint64(len(s.entries)); n != s.head {
		v.add("eventIndex", "%s: %d entries, head says %d", s.ws, n, s.head)
	}
}

// turnInfo is what the stream says about one prompt.
type turnInfo struct {
	users, started, ended int
	text                  string
	stopReason            string
	startAt, endAt        time.Time
}

func checkPrompts(v *violations, in checkInput) {
	turns := map[string]*turnInfo{}   // promptId -> turn
	textUses := map[string][]string{} // token -> promptIds of its chat.user entries
	ti := func(id string) *turnInfo {
		if turns[id] == nil {
			turns[id] = &turnInfo{}
		}
		return turns[id]
	}
	for _, s := range in.streams {
		for _, e := range s.entries {
			at := time.UnixMilli(e.ev.CreatedAt)
			switch e.ev.Type {
			case "chat.user":
				id := s.ws + "/" + str(e.body, "promptId")
				t := ti(id)
				t.users++
				t.text = str(e.body, "text")
				if m := tokenRE.FindStringSubmatch(t.text); m != nil {
					textUses[m[1]] = append(textUses[m[1]], id)
				}
			case "session.status":
				d := detail(e)
				id := s.ws + "/" + str(d, "promptId")
				switch str(e.body, "status") {
				case "turn_started":
					ti(id).started++
					ti(id).startAt = at
				case "turn_ended":
					ti(id).ended++
					ti(id).endAt = at
					ti(id).stopReason = str(d, "stopReason")
				}
			}
		}
	}
	delivered := map[string]int{}
	for _, r := range in.received {
		delivered[r.token]++
	}
	for token, ids := range textUses {
		if len(ids) > 1 {
			v.add("chat.user once", "prompt %s has %d chat.user entries (promptIds %v)", token, len(ids), ids)
		}
	}
	for _, p := range in.prompts {
		if p.conflict != "" {
			v.add("idempotency", "prompt %s answered with ids %s and %s", p.token, p.id, p.conflict)
		}
		if p.rejected != "" {
			v.add("accepted", "prompt %s rejected: %s", p.token, p.rejected)
		}
		n := delivered[p.token]
		if n > 1 {
			v.add("delivered once", "prompt %s reached the agent %d times", p.token, n)
		}
		if !p.acked {
			continue
		}
		t := turns[p.ws+"/"+p.id]
		if t == nil || t.users != 1 {
			users := 0
			if t != nil {
				users = t.users
			}
			v.add("chat.user once", "prompt %s (id %s, 2xx) has %d chat.user entries", p.token, p.id, users)
			continue
		}
		if t.text != p.text {
			v.add("chat.user once", "prompt %s: chat.user text %q, sent %q", p.token, t.text, p.text)
		}
		if t.started != 1 || t.ended != 1 {
			v.add("turn", "prompt %s: %d turn_started, %d turn_ended", p.token, t.started, t.ended)
			continue
		}
		if n == 1 {
			continue
		}
		if n == 0 && t.stopReason == "error" && sandboxFaultDuring(in.faults, t.startAt, t.endAt, in.slack) {
			continue // lost with the sandbox, and the user was told
		}
		v.add("delivered once", "prompt %s (stopReason %q) reached the agent %d times", p.token, t.stopReason, n)
	}
}

// sandboxFaultDuring reports whether a sandbox kill overlapped [from, to].
func sandboxFaultDuring(faults []fault, from, to time.Time, slack time.Duration) bool {
	for _, f := range faults {
		if f.kind == FaultSandbox && !f.at.After(to.Add(slack)) && !f.end.Add(slack).Before(from) {
			return true
		}
	}
	return false
}

func checkSubscriber(v *violations, r *recording, s *stream) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s == nil {
		v.add("subscriber", "%s: no stream for %s", r.id, r.ws)
		return
	}
	if r.resets > 0 {
		v.add("subscriber", "%s (%s) got %d reset events", r.id, r.kind, r.resets)
	}
	for _, b := range r.bad {
		v.add("subscriber", "%s (%s): %s", r.id, r.kind, b)
	}
	want := r.start + 1
	for _, got := range r.events {
		if got.idx != want {
			what := "a gap"
			if got.idx < want {
				what = "a duplicate or reordering"
			}
			v.add("subscriber", "%s (%s, %s): got eventIndex %d where %d was due: %s", r.id, r.kind, r.ws, got.idx, want, what)
			return
		}
		if want > uint64(len(s.entries)) {
			v.add("subscriber", "%s (%s, %s): got eventIndex %d, not in the stream", r.id, r.kind, r.ws, got.idx)
			return
		}
		e := s.entries[want-1]
		if got.sum != e.sum || got.typ != e.ev.Type {
			v.add("subscriber", "%s (%s, %s): eventIndex %d differs from the stream", r.id, r.kind, r.ws, got.idx)
			return
		}
		want++
	}
	if want-1 != s.head {
		v.add("subscriber", "%s (%s, %s): ended at eventIndex %d, the stream's head is %d", r.id, r.kind, r.ws, want-1, s.head)
	}
}

// quantile returns the q-quantile (nearest rank) of ds.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(q*float64(len(s))+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}
