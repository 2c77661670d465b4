package chaos

import (
	"encoding/json"
	"fmt"
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

// agentChunk is the body of an agent_message_chunk envelope on connection c.
func agentChunk(c, text string) map[string]any {
	return map[string]any{"sender": "agent", "connectionId": c, "payload": map[string]any{"jsonrpc": "2.0", "method": "session/update",
		"params": map[string]any{"sessionId": "s", "update": map[string]any{"sessionUpdate": "agent_message_chunk", "content": map[string]any{"type": "text", "text": text}}}}}
}

func ownerChanged(node string, epoch uint64) map[string]any {
	return map[string]any{"status": "owner_changed", "detail": map[string]any{"node": node, "epoch": epoch}}
}

func newHistory() *history {
	h := &history{s: &stream{ws: "w", sid: "default", gen: "abc", fence: 2}}
	h.p = prompt{ws: "w", sid: "default", token: "w#1", text: "chaos[w#1] hi", id: "1-0", acked: true, acked2xx: time.UnixMilli(1_700_000_000_000)}
	h.add("chat.user", 1, "", map[string]any{"promptId": "1-0", "text": h.p.text, "userId": "u"})
	h.add("session.status", 1, "", map[string]any{"status": "turn_started", "detail": map[string]any{"promptId": "1-0"}})
	h.add("session.event", 1, "1", agentChunk("c", "You said: "))
	h.add("session.event", 2, "2", agentChunk("c", "chaos[w#1] hi"))
	h.add("session.status", 2, "", map[string]any{"status": "turn_ended", "detail": map[string]any{"promptId": "1-0", "stopReason": "end_turn"}})
	h.s.conn, h.s.src = "c", "2"
	h.agent = []agentPrompt{{token: "w#1", text: h.p.text}}
	h.resub()
	return h
}

// resub makes the subscriber one that received the whole stream.
func (h *history) resub() {
	h.sub = &recording{id: "sub", ws: "w", sid: "default"}
	for _, e := range h.s.entries {
		h.sub.add(e.ev.Type, e.ev.AppendJSON(nil))
	}
}

// rewind makes the stream lose its entries after keep, as a lossy restart
// does, and appends others in their place (new bodies, new createdAt).
func (h *history) rewind(keep int, bodies ...map[string]any) {
	h.s.entries = h.s.entries[:keep]
	h.s.head = uint64(keep)
	for _, b := range bodies {
		h.add("session.status", 2, "", b)
		h.s.entries[len(h.s.entries)-1].ev.CreatedAt += 1000
		e := &h.s.entries[len(h.s.entries)-1]
		e.sum = dataSum(e.ev.AppendJSON(nil))
	}
}

func (h *history) check() *violations {
	return check(checkInput{streams: map[string]*stream{"w/default": h.s}, prompts: []prompt{h.p}, received: h.agent,
		subs: []*recording{h.sub}, faults: h.faults, slack: time.Second})
}

// lossy is a lossy restart before now.
func lossy() fault {
	at := time.Now().Add(-time.Minute)
	return fault{kind: FaultLossy, at: at, snapAt: at, end: at.Add(2 * time.Second)}
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
		{"ACPRepeated", "acp ids", func(h *history) { h.s.entries[3].ev.Source = "1" }},
		// The connection's first messages were lost: not id 1.
		{"ACPFirstLost", "acp ids", func(h *history) {
			h.s.entries[2].ev.Source, h.s.entries[3].ev.Source, h.s.src = "3", "4", "4"
		}},
		// The state says the next owner resumes after 1, the stream holds 2.
		{"ACPLastNotTheState", "acp ids", func(h *history) { h.s.src = "1" }},
		{"ACPStateOfAnotherConnection", "", func(h *history) { h.s.conn, h.s.src = "d", "7" }},
		{"AgentReplyIncomplete", "agent output", func(h *history) {
			h.s.entries[3].body = agentChunk("c", "chaos[w#1]")
		}},
		// One epoch announced by two nodes (in Redis)...
		{"EpochTwoNodes", "epoch reused", func(h *history) {
			h.add("session.status", 2, "", ownerChanged("n1", 2))
			h.add("session.status", 2, "", ownerChanged("n2", 2))
			h.resub()
		}},
		// ... or only in what a client received, Redis having lost one.
		{"EpochTwoNodesSeenByAClient", "epoch reused", func(h *history) {
			h.add("session.status", 2, "", ownerChanged("n1", 2))
			h.resub()
			h.faults = []fault{lossy()}
			h.rewind(5, ownerChanged("n2", 2))
			h.sub.resets = append(h.sub.resets, resetMark{at: time.Now(), pos: len(h.sub.events)})
			h.sub.add("session.status", h.s.entries[5].ev.AppendJSON(nil))
		}},
		// Two acquisitions by one node with one epoch, in one session.
		{"EpochTwoAcquisitions", "epoch reused", func(h *history) {
			h.add("session.status", 2, "", ownerChanged("n1", 2))
			h.add("session.status", 2, "", ownerChanged("n1", 2))
			h.resub()
		}},
		// Epochs above 2^53 are compared exactly.
		{"BigEpochsDiffer", "", func(h *history) {
			h.s.fence = 1<<62 + 2
			h.add("session.status", 1<<62+1, "", ownerChanged("n1", 1<<62+1))
			h.add("session.status", 1<<62+2, "", ownerChanged("n2", 1<<62+2))
			h.resub()
		}},
		{"OneEventSeenTwiceAfterAReset", "", func(h *history) {
			h.add("session.status", 2, "", ownerChanged("n1", 2))
			h.resub()
			h.faults = []fault{lossy()}
			h.sub.resets = append(h.sub.resets, resetMark{at: time.Now(), pos: len(h.sub.events)})
			h.sub.add("session.status", h.s.entries[5].ev.AppendJSON(nil))
		}},
		{"DeliveryUnknown", "", func(h *history) {
			h.agent = nil
			h.s.entries = h.s.entries[:2]
			h.s.conn = ""
			h.add("session.status", 2, "", map[string]any{"status": "turn_ended", "detail": map[string]any{"promptId": "1-0", "stopReason": "delivery_unknown"}})
			h.resub()
		}},
		{"DeliveryUnknownDeliveredTwice", "delivered once", func(h *history) {
			h.agent = append(h.agent, h.agent[0])
			h.s.entries[4].body = map[string]any{"status": "turn_ended", "detail": map[string]any{"promptId": "1-0", "stopReason": "delivery_unknown"}}
		}},
		{"DeliveryUnknownAndAnswered", "turn", func(h *history) {
			h.add("session.status", 2, "", map[string]any{"status": "turn_ended", "detail": map[string]any{"promptId": "1-0", "stopReason": "delivery_unknown"}})
			h.s.entries[4], h.s.entries[5] = h.s.entries[5], h.s.entries[4]
			h.s.entries[4].ev.Index, h.s.entries[5].ev.Index = 5, 6
			h.resub()
		}},
		// Answered 2xx inside a lossy restart's window, and gone with it.
		{"LostWithRedis", "", func(h *history) {
			h.faults = []fault{{kind: FaultLossy, at: h.p.acked2xx.Add(-time.Second), snapAt: h.p.acked2xx.Add(-time.Second), end: h.p.acked2xx.Add(time.Second)}}
			h.agent = nil
			h.rewind(0)
			h.s.conn = ""
			h.resub()
		}},
		// Accepted by Redis inside the window (its id is Redis's clock),
		// its 202 reaching the writer only after the restart.
		{"LostWithRedisAnsweredAfterTheRestart", "", func(h *history) {
			acc := h.p.acked2xx
			h.p.id = fmt.Sprintf("%d-0", acc.UnixMilli())
			h.p.acked2xx = acc.Add(2 * time.Second)
			h.faults = []fault{{kind: FaultLossy, at: acc.Add(-time.Second), snapAt: acc.Add(-time.Second), end: acc.Add(time.Second)}}
			h.agent = nil
			h.rewind(0)
			h.s.conn = ""
			h.resub()
		}},
		{"LostWithoutALossyFault", "chat.user once", func(h *history) {
			h.agent = nil
			h.rewind(0)
			h.s.conn = ""
			h.resub()
		}},
		{"LostWithRedisButTwice", "delivered once", func(h *history) {
			h.faults = []fault{{kind: FaultLossy, at: h.p.acked2xx.Add(-time.Second), snapAt: h.p.acked2xx.Add(-time.Second), end: h.p.acked2xx.Add(time.Second)}}
			h.agent = append(h.agent, h.agent[0])
		}},
		// After a lossy restart: the client had 4 and 5, Redis lost them
		// and wrote others there; one reset, then the stream again from 4.
		{"ResetAfterALossyRestart", "", func(h *history) {
			h.faults = []fault{lossy()}
			h.rewind(3, map[string]any{"status": "history_rewound", "detail": map[string]any{"firstLost": 4}}, map[string]any{"status": "x"})
			h.sub.resets = append(h.sub.resets, resetMark{at: time.Now(), pos: len(h.sub.events)})
			for _, e := range h.s.entries[3:] {
				h.sub.add(e.ev.Type, e.ev.AppendJSON(nil))
			}
			h.p.acked = false // the turn's end went with the tail
			h.s.conn = ""
		}},
		{"DivergedWithoutAReset", "subscriber", func(h *history) {
			h.faults = []fault{lossy()}
			h.rewind(3, map[string]any{"status": "a"}, map[string]any{"status": "b"})
			h.p.acked = false
			h.s.conn = ""
		}},
		{"AheadOfRedisWithoutAReset", "subscriber", func(h *history) {
			h.faults = []fault{lossy()}
			h.rewind(3)
			h.p.acked = false
			h.s.conn = ""
		}},
		{"ResetThenAGap", "subscriber", func(h *history) {
			h.faults = []fault{lossy()}
			h.rewind(3, map[string]any{"status": "a"}, map[string]any{"status": "b"})
			h.sub.resets = append(h.sub.resets, resetMark{at: time.Now(), pos: len(h.sub.events)})
			h.sub.add("session.status", h.s.entries[4].ev.AppendJSON(nil)) // 4 skipped
			h.p.acked = false
			h.s.conn = ""
		}},
		{"TwoResetsOneLossyRestart", "subscriber reset", func(h *history) {
			h.faults = []fault{lossy()}
			h.sub.resets = append(h.sub.resets, resetMark{at: time.Now(), pos: 2}, resetMark{at: time.Now(), pos: 3})
		}},
		{"ResetBeforeTheLossyRestart", "subscriber reset", func(h *history) {
			f := lossy()
			h.sub.resets = append(h.sub.resets, resetMark{at: f.at.Add(-time.Second), pos: len(h.sub.events)})
			h.faults = []fault{f}
		}},
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
		{"SubscriberReset", "subscriber reset", func(h *history) { h.sub.resets = []resetMark{{at: time.Now(), pos: 5}} }},
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
