package fanout

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandem-dev/tandem/eventlog"
	"github.com/tandem-dev/tandem/sse"
)

// fakeLog is an in-memory Source: one stream per session, with a
// generation, trimming, and reads that can be made to fail.
type fakeLog struct {
	mu      sync.Mutex
	streams map[string]*fakeStream
	reads   int   // Read calls
	lasts   int   // Last calls
	failErr error // when set, Read and Last fail with it
}

type fakeStream struct {
	gen  string
	tag  string // the tag of the entries appended now ("": untagged)
	head uint64
	evs  []eventlog.Event // the retained events, ending at head
}

func newFakeLog() *fakeLog { return &fakeLog{streams: make(map[string]*fakeStream)} }

func (l *fakeLog) stream(ws, sid string) *fakeStream {
	k := ws + "/" + sid
	s := l.streams[k]
	if s == nil {
		s = &fakeStream{gen: "g1"}
		l.streams[k] = s
	}
	return s
}

// append adds n events to the stream and returns them with its generation.
func (l *fakeLog) append(ws, sid string, n int) ([]eventlog.Event, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.stream(ws, sid)
	var out []eventlog.Event
	for range n {
		s.head++
		c := eventlog.Cursor{Gen: s.gen, Index: s.head, Tag: s.tag}
		ev := eventlog.Event{ID: c.String(), Index: s.head, Tag: s.tag, SessionID: sid, CreatedAt: time.Now().UnixMilli(),
			Type: "chat.user", Body: json.RawMessage(`{"n":` + strconv.FormatUint(s.head, 10) + `}`)}
		s.evs = append(s.evs, ev)
		out = append(out, ev)
	}
	return out, s.gen
}

// trim drops the events before index from.
func (l *fakeLog) trim(ws, sid string, from uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.stream(ws, sid)
	for len(s.evs) > 0 && s.evs[0].Index < from {
		s.evs = s.evs[1:]
	}
}

// rewind drops the events after index to, keeping the generation, as a
// Redis that lost its last writes does; later appends are tagged tag.
func (l *fakeLog) rewind(ws, sid string, to uint64, tag string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.stream(ws, sid)
	for len(s.evs) > 0 && s.evs[len(s.evs)-1].Index > to {
		s.evs = s.evs[:len(s.evs)-1]
	}
	s.head, s.tag = to, tag
}

// tagAppends tags the stream's next appends with tag.
func (l *fakeLog) tagAppends(ws, sid, tag string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stream(ws, sid).tag = tag
}

// lose replaces the stream by an empty one of generation gen, as Redis
// losing it does.
func (l *fakeLog) lose(ws, sid, gen string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.streams[ws+"/"+sid] = &fakeStream{gen: gen}
}

func (l *fakeLog) fail(err error) {
	l.mu.Lock()
	l.failErr = err
	l.mu.Unlock()
}

func (l *fakeLog) counts() (reads, lasts int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.reads, l.lasts
}

func (s *fakeStream) cursor() eventlog.Cursor { return eventlog.Cursor{Gen: s.gen, Index: s.head} }

func (s *fakeStream) reset(reason error) error {
	re := &eventlog.ResetError{Reason: reason, Continue: eventlog.Cursor{Gen: s.gen}}
	if len(s.evs) > 0 {
		re.Oldest = eventlog.Cursor{Gen: s.gen, Index: s.evs[0].Index}
		re.Continue.Index = s.evs[0].Index - 1
	}
	return re
}

// Read follows eventlog.Log.Read.
func (l *fakeLog) Read(ctx context.Context, ws, sid string, after eventlog.Cursor, limit int) ([]eventlog.Event, eventlog.Cursor, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reads++
	if l.failErr != nil {
		return nil, eventlog.Cursor{}, l.failErr
	}
	s := l.stream(ws, sid)
	if !after.IsZero() && (after.Gen != s.gen || after.Index > s.head) {
		return nil, s.cursor(), s.reset(eventlog.ErrCursorUnknown)
	}
	var evs []eventlog.Event
	for _, ev := range s.evs {
		if after.Tag != "" && ev.Index == after.Index && ev.Tag != after.Tag {
			return nil, s.cursor(), s.reset(eventlog.ErrCursorRewritten)
		}
		if ev.Index > after.Index && len(evs) < limit {
			evs = append(evs, ev)
		}
	}
	if len(evs) > 0 && evs[0].Index != after.Index+1 || len(evs) == 0 && after.Index < s.head {
		return nil, s.cursor(), s.reset(eventlog.ErrCursorExpired)
	}
	return evs, s.cursor(), nil
}

// Last follows eventlog.Log.Last.
func (l *fakeLog) Last(ctx context.Context, ws, sid string, n int) ([]eventlog.Event, eventlog.Cursor, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lasts++
	if l.failErr != nil {
		return nil, eventlog.Cursor{}, l.failErr
	}
	s := l.stream(ws, sid)
	evs := s.evs[max(0, len(s.evs)-n):]
	return append([]eventlog.Event(nil), evs...), s.cursor(), nil
}

// fakeBell is a Doorbell that confirms every subscription at once, as
// eventlog.Bell does once Redis answers.
type fakeBell struct {
	h *Hub

	mu           sync.Mutex
	subscribed   map[string]bool
	unsubscribes int
}

func (b *fakeBell) Subscribe(ctx context.Context, ws string) error {
	b.mu.Lock()
	b.subscribed[ws] = true
	b.mu.Unlock()
	b.h.Subscribed(ws)
	return nil
}

func (b *fakeBell) Unsubscribe(ctx context.Context, ws string) error {
	b.mu.Lock()
	delete(b.subscribed, ws)
	b.unsubscribes++
	b.mu.Unlock()
	return nil
}

func (b *fakeBell) isSubscribed(ws string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.subscribed[ws]
}

// fakeSink records what a client was sent. A non-blocking one takes room
// bytes in tryWrite before its "socket" is full (negative: no limit); a
// blocking write waits while the sink is held.
type fakeSink struct {
	nb bool

	mu     sync.Mutex
	buf    bytes.Buffer
	room   int
	held   chan struct{} // non-nil: write waits until it is closed
	left   bool          // the client went away (gone)
	closed bool
	done   chan struct{} // closed by close
}

func newSink(nonBlocking bool) *fakeSink {
	return &fakeSink{nb: nonBlocking, room: -1, done: make(chan struct{})}
}

var errSinkClosed = errors.New("fake sink: closed")

func (s *fakeSink) nonBlocking() bool { return s.nb }

func (s *fakeSink) tryWrite(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.left {
		return 0, errSinkClosed
	}
	n := len(p)
	if s.room >= 0 {
		n = min(n, s.room)
		s.room -= n
	}
	s.buf.Write(p[:n])
	return n, nil
}

func (s *fakeSink) write(p []byte) error {
	s.mu.Lock()
	held := s.held
	s.mu.Unlock()
	if held != nil {
		select {
		case <-held:
		case <-s.done:
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.left {
		return errSinkClosed
	}
	s.buf.Write(p)
	return nil
}

func (s *fakeSink) gone() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.left
}

func (s *fakeSink) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.done)
	}
}

// hold makes blocking writes wait until release.
func (s *fakeSink) hold() {
	s.mu.Lock()
	s.held = make(chan struct{})
	s.mu.Unlock()
}

func (s *fakeSink) release() {
	s.mu.Lock()
	if s.held != nil {
		close(s.held)
		s.held = nil
	}
	s.mu.Unlock()
}

func (s *fakeSink) setRoom(n int) {
	s.mu.Lock()
	s.room = n
	s.mu.Unlock()
}

func (s *fakeSink) leave() {
	s.mu.Lock()
	s.left = true
	s.mu.Unlock()
}

func (s *fakeSink) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *fakeSink) text() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// sinkResponse carries a fake sink to the hub's opener through Serve.
type sinkResponse struct {
	http.ResponseWriter
	s *fakeSink
}

// openFake is the hub's opener in tests: the preamble goes to the fake
// sink as openSink writes it after the response head.
func openFake(w http.ResponseWriter, retry, timeout time.Duration) (sink, error) {
	s := w.(sinkResponse).s
	if err := s.write(sse.AppendRetry(nil, retry)); err != nil {
		return nil, err
	}
	return s, nil
}

// wireEvent is one thing a client was sent: an event, a comment or the
// retry: preamble.
type wireEvent struct {
	id, event, data, comment, retry string
}

// parseWire splits what a client was sent into its blocks; a block that
// is not complete (no blank line yet) is left out.
func parseWire(t testing.TB, s string) []wireEvent {
	t.Helper()
	var out []wireEvent
	for {
		block, rest, ok := strings.Cut(s, "\n\n")
		if !ok {
			return out
		}
		s = rest
		var ev wireEvent
		for _, line := range strings.Split(block, "\n") {
			k, v, _ := strings.Cut(line, ":")
			v = strings.TrimPrefix(v, " ")
			switch k {
			case "":
				ev.comment = v
			case "id":
				ev.id = v
			case "event":
				ev.event = v
			case "data":
				ev.data = v
			case "retry":
				ev.retry = v
			default:
				t.Fatalf("unknown line %q in %q", line, block)
			}
		}
		out = append(out, ev)
	}
}

// testHub is a hub with a fake Source and doorbell, running until the
// test ends.
type testHub struct {
	*Hub
	log  *fakeLog
	bell *fakeBell
	obs  *countingObserver
	stop func()
}

func startHub(t *testing.T, cfg Config) *testHub {
	t.Helper()
	log := newFakeLog()
	h := New(log, cfg)
	bell := &fakeBell{h: h, subscribed: make(map[string]bool)}
	obs := &countingObserver{}
	h.SetDoorbell(bell)
	h.SetObserver(obs)
	h.open = openFake
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return &testHub{Hub: h, log: log, bell: bell, obs: obs, stop: stop}
}

// serve opens a stream to s and returns once Serve did: at once for a
// non-blocking sink that caught up, never for a blocking one while its
// stream lasts, so that one is served on a goroutine whose end the
// returned channel reports.
func (th *testHub) serve(t *testing.T, s *fakeSink, st Stream) <-chan error {
	t.Helper()
	if st.Workspace == "" {
		st.Workspace = "w"
	}
	if st.Session == "" {
		st.Session = "s"
	}
	if st.User == "" {
		st.User = "ann"
	}
	r := httptest.NewRequest(http.MethodGet, "/stream", nil)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	r = r.WithContext(ctx)
	done := make(chan error, 1)
	go func() { done <- th.Serve(sinkResponse{s: s}, r, st) }()
	return done
}

// ring appends n events and rings the doorbell for each, as the append
// script's PUBLISH does.
func (th *testHub) ring(ws, sid string, n int) {
	evs, gen := th.log.append(ws, sid, n)
	for _, ev := range evs {
		th.Ring(ws, ev, gen)
	}
}

// countingObserver counts what the hub reports.
type countingObserver struct {
	mu                                    sync.Mutex
	errors, clients, delivered, fallbacks int
	exact, resets                         int
}

func (o *countingObserver) Error(error) { o.mu.Lock(); o.errors++; o.mu.Unlock() }
func (o *countingObserver) Clients(d int) {
	o.mu.Lock()
	o.clients += d
	o.mu.Unlock()
}
func (o *countingObserver) Delivered(n int, _ int64) { o.mu.Lock(); o.delivered += n; o.mu.Unlock() }
func (o *countingObserver) Fallback()                { o.mu.Lock(); o.fallbacks++; o.mu.Unlock() }
func (o *countingObserver) Resumed(exact bool) {
	o.mu.Lock()
	if exact {
		o.exact++
	} else {
		o.resets++
	}
	o.mu.Unlock()
}

func (o *countingObserver) snapshot() countingObserver {
	o.mu.Lock()
	defer o.mu.Unlock()
	return countingObserver{errors: o.errors, clients: o.clients, delivered: o.delivered, fallbacks: o.fallbacks, exact: o.exact, resets: o.resets}
}

// checkEvents fails unless the events s was sent are first+1 … last of
// generation gen, in order, each once (comments, retry: and id-less events
// aside).
func checkEvents(t *testing.T, name string, s *fakeSink, gen string, first, last uint64) {
	t.Helper()
	var got []string
	for _, ev := range parseWire(t, s.text()) {
		if ev.id != "" {
			got = append(got, ev.id)
		}
	}
	var want []string
	for i := first + 1; i <= last; i++ {
		want = append(want, eventlog.Cursor{Gen: gen, Index: i}.String())
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("%s: got ids %v, want %v", name, got, want)
	}
}
