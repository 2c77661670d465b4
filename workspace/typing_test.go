package workspace

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/tandem-dev/tandem/eventlog/model"
)

// Typing travels in the nodes' presence reports: the latest live one of a
// user wins, an expired one (or one of an expired report) says nothing,
// and a user is shown typing only while present.
func TestAggregateTyping(t *testing.T) {
	now := time.Now().UnixMilli()
	rep := func(exp int64, users map[string]int, typing map[string]model.TypingReport) string {
		b, _ := json.Marshal(model.PresenceReport{Exp: exp, Users: users, Typing: typing})
		return string(b)
	}
	p := aggregate(map[string]string{
		"a": rep(now+5000, map[string]int{"ann": 1, "bob": 1}, map[string]model.TypingReport{"ann": {Session: "s1", Until: now + 2000}, "bob": {Session: "s1", Until: now - 1}}),
		"b": rep(now+5000, map[string]int{"cat": 2}, map[string]model.TypingReport{"ann": {Session: "s2", Until: now + 2500}, "zed": {Session: "s1", Until: now + 2000}}),
		"c": rep(now-1, map[string]int{"dan": 1}, map[string]model.TypingReport{"cat": {Session: "s1", Until: now + 2000}}),
	}, now)
	want := []PresentUser{{UserID: "ann", Connections: 1, Typing: "s2"}, {UserID: "bob", Connections: 1}, {UserID: "cat", Connections: 2}}
	if len(p.Users) != len(want) {
		t.Fatalf("presence %+v, want %+v", p.Users, want)
	}
	for i := range want {
		if p.Users[i] != want[i] {
			t.Errorf("user %d: %+v, want %+v", i, p.Users[i], want[i])
		}
	}
}

// Typing sets and clears a node's state; it expires by itself.
func TestTypingState(t *testing.T) {
	m := &Manager{typing: map[string]map[string]typingState{}, typingSig: make(chan string, 8)}
	m.typing["w"] = map[string]typingState{"ann": {session: "s", until: time.Now().Add(TypingTTL)}, "old": {session: "s", until: time.Now().Add(-time.Millisecond)}}
	got := m.typingNow(time.Now())
	if len(got["w"]) != 1 || got["w"]["ann"].Session != "s" {
		t.Fatalf("typingNow %+v", got)
	}
	if got := m.typingNow(time.Now().Add(TypingTTL + time.Millisecond)); len(got) != 0 {
		t.Fatalf("after TypingTTL: %+v", got)
	}
	if len(m.typing) != 0 {
		t.Fatalf("expired state kept: %+v", m.typing)
	}
}
