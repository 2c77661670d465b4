package chaos

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tandem-dev/tandem/eventlog"
	"github.com/tandem-dev/tandem/internal/sandboxtest/mockagent"
)

// The checker reads only what the clients observed (the writers' answers,
// the subscribers' recordings), what the agent received (its prompt log),
// and what Redis holds at the end. Its rules:
//
//   - Stream: eventIndex is 1..n without gap and n is the stream's head;
//     the writer epoch (ep) never decreases along the stream and is never
//     above the fence, so nothing landed under a stale epoch; each ACP
//     connection's agent messages carry consecutive ACP event ids (none
//     lost or repeated across owner changes), the first of them id 1 (the
//     connection's start was not lost), and for the connection the
//     stream's state names, the last of them is the state's source
//     position (where the next owner resumes is what the stream holds).
//   - One epoch, one writer: epochs are fencing tokens handed out once per
//     acquisition, so one epoch value announced (session.status
//     owner_changed {node, epoch}) by two nodes in a workspace, or in two
//     different owner_changed events of one session, is a violation; what
//     the clients received counts as much as what Redis kept.
//   - Prompts: every prompt answered 2xx has exactly one chat.user (its
//     promptId is the inbox id of the answer, its text the text sent), one
//     turn_started and one turn_ended, or it ended with stopReason
//     "delivery_unknown" (the owner could not tell whether it reached the
//     agent and said so: at most one chat.user and turn_started, exactly
//     one turn_ended). A prompt never answered 2xx appears at most once.
//     No prompt text appears in two chat.user entries. A prompt answered
//     2xx while a lossy restart's window was open (snapshot to restart)
//     may have been lost with Redis's tail: it is held to "at most once"
//     only.
//   - Delivery ("reached the agent at most once"): the agent logs every
//     session/prompt it reads. Every prompt is logged at most once, ever
//     (delivery_unknown included: it is never re-sent silently). An
//     answered prompt is logged exactly once unless its turn ended with
//     stopReason "error" while a sandbox kill was in progress (the sandbox
//     lost the turn with the connection, and the user saw it fail), and a
//     turn that ended end_turn carries the agent's whole reply to what it
//     received (the agent_message_chunk texts between turn_started and
//     turn_ended).
//   - Subscribers: what each one received, across all its reconnects, is
//     the stream after the cursor it started from: same events (byte for
//     byte), in order, no gap, no duplicate, up to the head. A reset is
//     allowed only after a lossy restart, one per lossy restart; before a
//     reset a client may have received events Redis no longer holds (the
//     lost tail), after it the client continues at or before the first
//     event it had not received intact, and from there must match Redis.
//     Anything received that Redis does not hold with no reset after it is
//     a violation.

// entry is a stream entry as Redis holds it.
type entry struct {
	ev   eventlog.Event
	body map[string]any
	sum  uint64 // hash of the event as the API renders it
}

// stream is one session stream at the end of the campaign.
type stream struct {
	ws, sid string
	gen     string
	head    uint64
	fence   uint64
	entries []entry
	// conn and src are the state's ACP connection and the last source
	// position the stream recorded.
	conn, src string
}

func (s *stream) key() string { return s.ws + "/" + s.sid }

func readStream(ctx context.Context, rdb *redis.Client, ws, sid string) (*stream, error) {
	log := eventlog.New(rdb, eventlog.Config{})
	s := &stream{ws: ws, sid: sid}
	fence, err := log.CurrentEpoch(ctx, ws)
	if err != nil {
		return nil, err
	}
	s.fence = fence
	// The raw entries, so that a gap in the stream is seen as such (Read
	// would turn it into a reset).
	msgs, err := rdb.XRange(ctx, eventlog.StreamKey(ws, sid), "-", "+").Result()
	if err != nil {
		return nil, err
	}
	head, err := log.Head(ctx, ws, sid)
	if err != nil {
		return nil, err
	}
	s.gen, s.head = head.Gen, head.Index
	st, err := log.State(ctx, ws, sid)
	if err != nil {
		return nil, err
	}
	s.conn, s.src = st["conn"], st["src"]
	for _, m := range msgs {
		idx, err := strconv.ParseUint(m.ID[:len(m.ID)-2], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("entry id %s", m.ID)
		}
		tag, _ := m.Values["tk"].(string) // the entry's tag, which its cursor carries
		ev := eventlog.Event{
			ID: eventlog.Cursor{Gen: s.gen, Index: idx, Tag: tag}.String(), Index: idx, SessionID: sid, Tag: tag,
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
	for _, s := range sortedStreams(in.streams) {
		checkStream(v, s)
	}
	checkEpochs(v, in)
	checkPrompts(v, in)
	var lossy []time.Time
	for _, f := range in.faults {
		if lossyKind(f.kind) {
			lossy = append(lossy, f.at)
		}
	}
	for _, r := range in.subs {
		checkSubscriber(v, r, in.streams[r.ws+"/"+r.sid], lossy)
	}
	return v
}

func sortedStreams(m map[string]*stream) []*stream {
	var out []*stream
	for _, s := range m {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key() < out[j].key() })
	return out
}

// ownerChange reads an owner_changed status: its node and its epoch in
// text form (a number read without loss of precision, or a string).
func ownerChange(data []byte) (node, epoch string, ok bool) {
	var b struct {
		Status string `json:"status"`
		Detail struct {
			Node  string `json:"node"`
			Epoch any    `json:"epoch"`
		} `json:"detail"`
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	if d.Decode(&b) != nil || b.Status != "owner_changed" || b.Detail.Epoch == nil {
		return "", "", false
	}
	return b.Detail.Node, fmt.Sprint(b.Detail.Epoch), true
}

// checkEpochs: one epoch value, one acquisition, one node.
func checkEpochs(v *violations, in checkInput) {
	nodes := map[string]map[string]bool{}  // ws epoch -> nodes
	events := map[string]map[uint64]bool{} // ws/sid epoch -> distinct owner_changed events
	seen := func(ws, key string, data []byte, sum uint64) {
		node, ep, ok := ownerChange(data)
		if !ok {
			return
		}
		k := ws + " " + ep
		if nodes[k] == nil {
			nodes[k] = map[string]bool{}
		}
		nodes[k][node] = true
		k = key + " " + ep
		if events[k] == nil {
			events[k] = map[uint64]bool{}
		}
		events[k][sum] = true
	}
	for _, s := range sortedStreams(in.streams) {
		for _, e := range s.entries {
			if e.ev.Type == "session.status" && str(e.body, "status") == "owner_changed" {
				seen(s.ws, s.key(), e.ev.AppendJSON(nil), e.sum)
			}
		}
	}
	for _, r := range in.subs {
		r.mu.Lock()
		for _, e := range r.events {
			if e.data != nil {
				seen(r.ws, r.ws+"/"+r.sid, e.data, e.sum)
			}
		}
		r.mu.Unlock()
	}
	var keys []string
	for k := range nodes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if len(nodes[k]) > 1 {
			var ns []string
			for n := range nodes[k] {
				ns = append(ns, n)
			}
			sort.Strings(ns)
			v.add("epoch reused", "workspace %s, epoch %s: announced by nodes %v", strings.Fields(k)[0], strings.Fields(k)[1], ns)
		}
	}
	keys = keys[:0]
	for k := range events {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if len(events[k]) > 1 {
			v.add("epoch reused", "session %s, epoch %s: %d different owner_changed events", strings.Fields(k)[0], strings.Fields(k)[1], len(events[k]))
		}
	}
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
			case acp[conn] == 0 && n != 1:
				v.add("acp ids", "%s: connection %s: first ACP id %d at eventIndex %d, not 1", s.key(), conn, n, e.ev.Index)
			case acp[conn] != 0 && n != acp[conn]+1:
				v.add("acp ids", "%s: connection %s: ACP ids %d then %d at eventIndex %d", s.key(), conn, acp[conn], n, e.ev.Index)
			}
			if err == nil {
				acp[conn] = n
			}
		}
	}
	// The last id: where the state says the next owner resumes is the last
	// message the stream holds of that connection.
	if s.conn != "" && acp[s.conn] != 0 && s.src != strconv.Itoa(acp[s.conn]) {
		v.add("acp ids", "%s: connection %s: the stream's last ACP id is %d, its state's source position %q", s.key(), s.conn, acp[s.conn], s.src)
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
	reply                 strings.Builder // agent_message_chunk texts of the turn
}

// chunkText is the text of an agent_message_chunk session/update envelope.
func chunkText(body map[string]any) (string, bool) {
	p, _ := body["payload"].(map[string]any)
	params, _ := p["params"].(map[string]any)
	u, _ := params["update"].(map[string]any)
	if str(p, "method") != "session/update" || str(u, "sessionUpdate") != "agent_message_chunk" {
		return "", false
	}
	c, _ := u["content"].(map[string]any)
	return str(c, "text"), true
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
	for _, s := range sortedStreams(in.streams) {
		var open *turnInfo // the turn between its turn_started and turn_ended
		for _, e := range s.entries {
			at := time.UnixMilli(e.ev.CreatedAt)
			switch e.ev.Type {
			case "session.event":
				if open != nil && str(e.body, "sender") == "agent" {
					if t, ok := chunkText(e.body); ok {
						open.reply.WriteString(t)
					}
				}
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
					open = ti(id)
				case "turn_ended":
					ti(id).ended++
					ti(id).endAt = at
					ti(id).stopReason = str(d, "stopReason")
					open = nil
				}
			}
		}
	}
	delivered := map[string]int{}
	agentText := map[string]string{}
	for _, r := range in.received {
		delivered[r.token]++
		agentText[r.token] = r.text
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
		if lostWithRedis(p, in.faults) {
			// Its inbox entry may be gone with Redis's tail: at most once.
			if t != nil && (t.users > 1 || t.started > 1 || t.ended > 1) {
				v.add("turn", "prompt %s (answered 2xx during a lossy restart): %d chat.user, %d turn_started, %d turn_ended", p.token, t.users, t.started, t.ended)
			}
			continue
		}
		if t != nil && t.stopReason == "delivery_unknown" {
			// The owner could not tell whether the agent got it, and
			// said so: one turn_ended, never answered besides.
			if t.users > 1 || t.started > 1 || t.ended != 1 {
				v.add("turn", "prompt %s (delivery_unknown): %d chat.user, %d turn_started, %d turn_ended", p.token, t.users, t.started, t.ended)
			}
			continue
		}
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
			if want := mockagent.Reply(agentText[p.token]); t.stopReason == "end_turn" && t.reply.String() != want {
				v.add("agent output", "prompt %s: the turn's reply in the stream is %q, the agent's %q", p.token, clip(t.reply.String()), clip(want))
			}
			continue
		}
		if n == 0 && t.stopReason == "error" && sandboxFaultDuring(in.faults, t.startAt, t.endAt, in.slack) {
			continue // lost with the sandbox, and the user was told
		}
		v.add("delivered once", "prompt %s (stopReason %q) reached the agent %d times", p.token, t.stopReason, n)
	}
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:40] + "…" + s[len(s)-40:]
	}
	return s
}

// lostWithRedis reports whether p was accepted while a lossy restart's
// window was open, between the snapshot Redis went back to and the
// restart: answered 2xx then, or accepted by Redis then (its inbox id is
// Redis's clock at the XADD, on this machine's clock) and answered later,
// a reply that reached the writer after the restart.
func lostWithRedis(p prompt, faults []fault) bool {
	accepted := time.Time{}
	if ms, _, ok := strings.Cut(p.id, "-"); ok {
		if n, err := strconv.ParseInt(ms, 10, 64); err == nil {
			accepted = time.UnixMilli(n)
		}
	}
	in := func(t time.Time, f fault) bool {
		return !t.IsZero() && !t.Before(f.snapAt.Add(-time.Millisecond)) && !t.After(f.end)
	}
	for _, f := range faults {
		if lossyKind(f.kind) && !f.snapAt.IsZero() && (in(p.acked2xx, f) || in(accepted, f)) {
			return true
		}
	}
	return false
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

func checkSubscriber(v *violations, r *recording, s *stream, lossy []time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s == nil {
		v.add("subscriber", "%s: no stream for %s/%s", r.id, r.ws, r.sid)
		return
	}
	for _, b := range r.bad {
		v.add("subscriber", "%s (%s): %s", r.id, r.kind, b)
	}
	// One reset per lossy restart before it, at most.
	for k, m := range r.resets {
		before := 0
		for _, at := range lossy {
			if at.Before(m.at) {
				before++
			}
		}
		if before < k+1 {
			v.add("subscriber reset", "%s (%s, %s/%s): reset %d (%s) with %d lossy restarts before it", r.id, r.kind, r.ws, r.sid, k+1, m.data, before)
		}
	}
	// Segments between resets. good is the last eventIndex up to which the
	// client has received the stream intact and without gap.
	good := r.start
	from := 0
	for k := 0; k <= len(r.resets); k++ {
		to := len(r.events)
		if k < len(r.resets) {
			to = r.resets[k].pos
		}
		reset := k < len(r.resets) // a reset follows this segment
		seg := r.events[from:to]
		from = to
		if len(seg) == 0 {
			continue
		}
		first := seg[0].idx
		switch {
		case k == 0 && first != r.start+1:
			v.add("subscriber", "%s (%s, %s/%s): got eventIndex %d where %d was due: a gap", r.id, r.kind, r.ws, r.sid, first, r.start+1)
			return
		case k > 0 && first > good+1:
			v.add("subscriber", "%s (%s, %s/%s): continued at eventIndex %d after a reset, having the stream intact only to %d: a gap", r.id, r.kind, r.ws, r.sid, first, good)
			return
		}
		diverged := false
		for i, got := range seg {
			if i > 0 && got.idx != seg[i-1].idx+1 {
				what := "a gap"
				if got.idx <= seg[i-1].idx {
					what = "a duplicate or reordering"
				}
				v.add("subscriber", "%s (%s, %s/%s): got eventIndex %d where %d was due: %s", r.id, r.kind, r.ws, r.sid, got.idx, seg[i-1].idx+1, what)
				return
			}
			match := got.idx <= uint64(len(s.entries)) && s.entries[got.idx-1].sum == got.sum && s.entries[got.idx-1].ev.Type == got.typ
			if !match {
				if !reset {
					what := "differs from the stream"
					if got.idx > uint64(len(s.entries)) {
						what = "is not in the stream"
					}
					v.add("subscriber", "%s (%s, %s/%s): eventIndex %d %s, and no reset followed", r.id, r.kind, r.ws, r.sid, got.idx, what)
					return
				}
				diverged = true // the lost tail; the reset after it says so
			}
			if match && !diverged && got.idx == good+1 {
				good = got.idx
			}
		}
	}
	if good != s.head {
		v.add("subscriber", "%s (%s, %s/%s): has the stream intact up to eventIndex %d, the stream's head is %d", r.id, r.kind, r.ws, r.sid, good, s.head)
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
