package workspace

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"time"
)

// What the owner keeps of a session in its stream's state hash, written
// with the appends it goes with (Log.AppendState), so that a successor
// finds it exactly as the stream is: read when a session is loaded (at
// takeover) and before re-attaching to a connection. It is kept apart from
// the owner's runtime state of the session (session, turn).

// Fields of the stream state hash.
const (
	stateConn      = "conn"       // the ACP connection the session's messages come from
	stateSrc       = "src"        // the last ACP SSE id ingested: where to resume (eventlog writes it)
	stateTurn      = "turn"       // the prompt in flight (a turnRecord as JSON), "" when none
	stateLastInbox = "last_inbox" // the newest prompt dispatched
	// stateSent lists (JSON) the prompts whose dispatch markers this
	// stream holds with no record of their dispatch (marker.go): written
	// with the append of the marker's answer, so that an owner that
	// re-attaches after that answer still knows the prompt may have
	// reached the agent.
	stateSent = "sent_elsewhere"
)

// sentKept is how many prompts stateSent names, the newest.
const sentKept = 64

// streamState is a session stream's state as the owner reads it.
type streamState struct {
	Head      uint64 // the stream's last eventIndex
	Conn      string
	Src       string
	Turn      *turnRecord // nil when no prompt is in flight
	LastInbox string
	Sent      []string // stateSent
}

func parseStreamState(m map[string]string) streamState {
	st := streamState{Conn: m[stateConn], Src: m[stateSrc], LastInbox: m[stateLastInbox]}
	st.Head, _ = strconv.ParseUint(m["n"], 10, 64)
	if js := m[stateTurn]; js != "" {
		var tr turnRecord
		if json.Unmarshal([]byte(js), &tr) == nil && tr.Req != 0 {
			st.Turn = &tr
		}
	}
	if js := m[stateSent]; js != "" {
		_ = json.Unmarshal([]byte(js), &st.Sent)
	}
	return st
}

// readState reads a session stream's state.
func (o *owner) readState(ctx context.Context, sid string) (streamState, error) {
	m, err := o.log().State(ctx, o.ws, sid)
	if err != nil {
		return streamState{}, err
	}
	return parseStreamState(m), nil
}

// stateWrite is a change of a stream's state, appended with records:
// only the fields set change.
type stateWrite struct {
	conn      *string
	clearSrc  bool // the stored resume position is another connection's
	turn      *turnRecord
	clearTurn bool
	lastInbox string
	sent      []string // stateSent, the whole list; nil: unchanged
}

func (w stateWrite) fields() map[string]string {
	f := map[string]string{}
	if w.conn != nil {
		f[stateConn] = *w.conn
	}
	if w.clearSrc {
		f[stateSrc] = ""
	}
	if w.turn != nil {
		b, _ := json.Marshal(w.turn)
		f[stateTurn] = string(b)
	} else if w.clearTurn {
		f[stateTurn] = ""
	}
	if w.lastInbox != "" {
		f[stateLastInbox] = w.lastInbox
	}
	if w.sent != nil {
		b, _ := json.Marshal(w.sent)
		f[stateSent] = string(b)
	}
	return f
}

// withSent is list with id added (once), keeping the newest sentKept.
func withSent(list []string, id string) []string {
	if slices.Contains(list, id) {
		return list
	}
	list = append(slices.Clone(list), id)
	if len(list) > sentKept {
		list = list[len(list)-sentKept:]
	}
	return list
}

func ptr[T any](v T) *T { return &v }

// turnRecord is a prompt in flight as the stream state keeps it.
type turnRecord struct {
	Req     int64  `json:"req"`     // the JSON-RPC id of its session/prompt
	Inbox   string `json:"inbox"`   // its inbox entry, the promptId
	Started int64  `json:"started"` // ms
	Conn    string `json:"conn"`    // the connection it was sent on
}

// delivery is what the owner knows of whether a turn's request reached
// the sandbox.
type delivery int

const (
	// deliveryUnknown: not sent yet by this owner, or found in flight at
	// takeover with no sign that it arrived.
	deliveryUnknown delivery = iota
	// deliveryWritten: the request was written to the server (acp
	// reported it), or the agent is answering it.
	deliveryWritten
)

// turn is the owner's running turn: its persisted record and what only
// this owner knows of it.
type turn struct {
	turnRecord
	delivery  delivery
	cancel    context.CancelFunc // ends the request's POST
	takenOver bool               // found in flight when this owner took over
	text      string             // the prompt's text ("" when its inbox entry was not claimed)
	since     time.Time
	unsent    []byte   // the request, dispatched but not sent yet
	ending    *turnEnd // the end this owner failed to record, tried again by tick
}

// turnEnd is an end of a turn without an answer from the agent.
type turnEnd struct{ stopReason, reason string }
