package chaos

import (
	"bytes"
	"encoding/json"
	"hash/fnv"
	"sync"
	"time"
)

// recording is what one subscriber observed over its whole life, across
// every reconnect: the checker compares it with the stream.
type recording struct {
	id, kind, ws string
	sid          string // the session it follows
	start        uint64 // eventIndex of the cursor it started after

	mu       sync.Mutex
	events   []received
	connects int // streams opened (the first one and every reconnect)
	resets   []resetMark
	fatal    int      // times the client gave up and had to be made again
	bad      []string // events it could not make sense of
	lastIdx  uint64

	connectAt []time.Time
	fatalAt   []time.Time
}

// received is one event as a client got it: its eventIndex, type and a
// hash of its data; owner_changed statuses keep their data, for the
// epoch rules.
type received struct {
	idx  uint64
	typ  string
	sum  uint64
	data []byte
}

// resetMark is one reset event: when, and how many events came before it.
type resetMark struct {
	at   time.Time
	pos  int
	data string
}

func dataSum(b []byte) uint64 {
	h := fnv.New64a()
	h.Write(b)
	return h.Sum64()
}

// add records one event of type typ with data.
func (r *recording) add(typ string, data []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch typ {
	case "reset":
		r.resets = append(r.resets, resetMark{at: time.Now(), pos: len(r.events), data: string(data)})
		return
	case "presence":
		return // not persisted, no eventIndex: not part of the history
	}
	var ev struct {
		EventIndex uint64 `json:"eventIndex"`
	}
	if err := json.Unmarshal(data, &ev); err != nil || ev.EventIndex == 0 {
		if len(r.bad) < 5 {
			r.bad = append(r.bad, typ+" "+string(data))
		}
		return
	}
	rc := received{idx: ev.EventIndex, typ: typ, sum: dataSum(data)}
	if typ == "session.status" && bytes.Contains(data, []byte(`"owner_changed"`)) {
		rc.data = append([]byte(nil), data...)
	}
	r.events = append(r.events, rc)
	r.lastIdx = ev.EventIndex
}

func (r *recording) connected() {
	r.mu.Lock()
	r.connects++
	r.connectAt = append(r.connectAt, time.Now())
	r.mu.Unlock()
}

// gaveUp records that the client gave up on its stream (and was made again).
func (r *recording) gaveUp(why string) {
	r.mu.Lock()
	r.fatal++
	r.fatalAt = append(r.fatalAt, time.Now())
	if len(r.bad) < 5 {
		r.bad = append(r.bad, why)
	}
	r.mu.Unlock()
}

// during counts the reconnects and the times the client gave up in
// [from, to].
func (r *recording) during(from, to time.Time) (reconnects, fatal int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, t := range r.connectAt {
		if i > 0 && !t.Before(from) && !t.After(to) {
			reconnects++
		}
	}
	for _, t := range r.fatalAt {
		if !t.Before(from) && !t.After(to) {
			fatal++
		}
	}
	return reconnects, fatal
}

func (r *recording) last() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastIdx
}
