package chaos

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/tandem-dev/tandem/eventlog"
)

// history builds a stream of one prompt's turn, as an owner writes it, and
// what a writer, the agent and a subscriber saw of it.
type history struct {
	s      *stream
	p      prompt
	agent  []agentPrompt
	sub    *recording
	faults []fault
}

func (h *history) add(typ string, epoch uint64, src string, body map[string]any) {
	b, _ := json.Marshal(body)
	idx := uint64(len(h.s.entries) + 1)
	ev := eventlog.Event{ID: eventlog.Cursor{Gen: h.s.gen, Index: idx}.String(), Index: idx, SessionID: "default",
		CreatedAt: 1_700_000_000_000 + int64(idx), Type: typ, Body: b, Epoch: epoch, Source: src}
	e := entry{ev: ev, body: body, sum: dataSum(ev.AppendJSON(nil))}
	h.s.entries = append(h.s.entries, e)
	h.s.head = idx
}

func newHistory() *history {
	h := &history{s: &stream{ws: "w", gen: "abc", fence: 2}}
	h.p = prompt{ws: "w", token: "w#1", text: "chaos[w#1] hi", id: "1-0", acked: true}
	h.add("chat.user", 1, "", map[string]any{"promptId": "1-0", "text": h.p.text, "userId": "u"})
	h.add("session.status", 1, "", map[string]any{"status": "turn_started", "detail": map[string]any{"promptId": "1-0"}})
	h.add("session.event", 1, "5", map[string]any{"sender": "agent", "connectionId": "c"})
	h.add("session.event", 2, "6", map[string]any{"sender": "agent", "connectionId": "c"})
	h.add("session.status", 2, "", map[string]any{"status": "turn_ended", "detail": map[string]any{"promptId": "1-0", "stopReason": "end_turn"}})
	h.agent = []agentPrompt{{token: "w#1", text: h.p.text}}
	h.sub = &recording{id: "sub", ws: "w"}
	for _, e := range h.s.entries {
		h.sub.add(e.ev.Type, e.ev.AppendJSON(nil))
	}
	return h
}

func (h *history) check() *violations {
	return check(checkInput{streams: map[string]*stream{"w": h.s}, prompts: []prompt{h.p}, received: h.agent,
		subs: []*recording{h.sub}, faults: h.faults, slack: time.Second})
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		rule string // "" for no violation
		brk  func(h *history)
	}{
		{"OK", "", func(h *history) {}},
		{"StaleEpoch", "stale epoch", func(h *history) {
			h.s.entries[4].ev.Epoch = 1
			h.s.entries[3].ev.Epoch = 2
			h.s.entries[2].ev.Epoch = 2
		}},
		{"EpochAboveFence", "stale epoch", func(h *history) { h.s.fence = 1 }},
		{"GapInStream", "eventIndex", func(h *history) { h.s.entries = append(h.s.entries[:2], h.s.entries[3:]...) }},
		{"ACPRepeated", "acp ids", func(h *history) { h.s.entries[3].ev.Source = "5" }},
		{"DeliveredTwice", "delivered once", func(h *history) { h.agent = append(h.agent, h.agent[0]) }},
		{"NeverDelivered", "delivered once", func(h *history) { h.agent = nil }},
		{"LostWithTheSandbox", "", func(h *history) {
			h.agent = nil
			h.s.entries[4].body = map[string]any{"status": "turn_ended", "detail": map[string]any{"promptId": "1-0", "stopReason": "error"}}
			at := time.UnixMilli(h.s.entries[2].ev.CreatedAt)
			h.faults = []fault{{kind: FaultSandbox, at: at, end: at.Add(time.Second)}}
		}},
		{"FailedWithoutAFault", "delivered once", func(h *history) {
			h.agent = nil
			h.s.entries[4].body = map[string]any{"status": "turn_ended", "detail": map[string]any{"promptId": "1-0", "stopReason": "error"}}
		}},
		{"AcceptedNotInStream", "chat.user once", func(h *history) { h.p.id = "9-0" }},
		{"SubscriberGap", "subscriber", func(h *history) { h.sub.events = append(h.sub.events[:1], h.sub.events[2:]...) }},
		{"SubscriberDuplicate", "subscriber", func(h *history) {
			h.sub.events = append(h.sub.events[:2], h.sub.events[1:]...)
		}},
		{"SubscriberBehind", "subscriber", func(h *history) { h.sub.events = h.sub.events[:3] }},
		{"SubscriberOtherBytes", "subscriber", func(h *history) { h.sub.events[2].sum++ }},
		{"SubscriberReset", "subscriber", func(h *history) { h.sub.resets = 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHistory()
			tc.brk(h)
			v := h.check()
			switch {
			case tc.rule == "" && v.n != 0:
				t.Fatalf("violations on a good history: %v", v.samples)
			case tc.rule != "" && v.byRule[tc.rule] == 0:
				t.Fatalf("no %q violation; got %v", tc.rule, v.samples)
			}
		})
	}
}

func TestTokenIsTheLastPrompt(t *testing.T) {
	text := "Conversation so far:\nu: chaos[w#1] hi [chunks=2]\nassistant: You said: hi" + "chaos[w#2] again [chunks=3]"
	m := tokenRE.FindAllStringSubmatch(text, -1)
	if got := m[len(m)-1][1]; got != "w#2" {
		t.Fatalf("token %q, want w#2", got)
	}
}

func TestQuantile(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	for q, want := range map[float64]time.Duration{0.5: 50 * time.Millisecond, 0.99: 99 * time.Millisecond, 1: 100 * time.Millisecond} {
		if got := quantile(ds, q); got != want {
			t.Errorf("quantile %v = %v, want %v", q, got, want)
		}
	}
	if quantile(nil, 0.5) != 0 {
		t.Error("quantile of nothing")
	}
}
