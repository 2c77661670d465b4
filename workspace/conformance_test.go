package workspace

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/tandem-dev/tandem/eventlog"
	"github.com/tandem-dev/tandem/eventlog/model"
	"github.com/tandem-dev/tandem/internal/redistest"
)

// The in-memory Store and eventlog's run the same checks, so that the
// owner's fake-driven tests rest on what Redis really does (centrifuge
// runs one suite against its memory and Redis brokers the same way).
func TestStoreConformance(t *testing.T) {
	t.Run("memory", func(t *testing.T) { storeConformance(t, newMemStore()) })
	t.Run("redis", func(t *testing.T) {
		rdb := redistest.Start(t, redistest.Options{}).Client(t)
		storeConformance(t, eventlog.NewStore(eventlog.New(rdb, eventlog.Config{})))
	})
}

func storeConformance(t *testing.T, st Store) {
	ctx := context.Background()
	const ws = "conf"
	var e1, e2 uint64 // the Fence subtest's epochs; later subtests write as e2
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	rec := func(typ, src string) model.Record {
		return model.Record{Type: typ, Body: []byte(`{"k":1}`), Source: src}
	}

	t.Run("Fence", func(t *testing.T) {
		if _, err := st.Append(ctx, ws, "s", 0, rec("x", "")); !errors.Is(err, model.ErrStaleWriter) {
			t.Fatalf("append before any epoch: %v", err)
		}
		if e, _ := st.CurrentEpoch(ctx, ws); e != 0 {
			t.Fatalf("current epoch %d", e)
		}
		e1, _ = st.AcquireEpoch(ctx, ws)
		e2, _ = st.AcquireEpoch(ctx, ws)
		if e1 == 0 || e2 <= e1 {
			t.Fatalf("epochs %d %d: want growing epochs", e1, e2)
		}
		if _, err := st.Append(ctx, ws, "s", e1, rec("x", "")); !errors.Is(err, model.ErrStaleWriter) {
			t.Fatalf("stale append: %v", err)
		}
		if err := st.RecordAgentSession(ctx, ws, "s", e1, "a", "c", "{}"); !errors.Is(err, model.ErrStaleWriter) {
			t.Fatalf("stale record: %v", err)
		}
		if _, err := st.ReadInbox(ctx, ws, e1, "c", 1, ""); !errors.Is(err, model.ErrStaleWriter) {
			t.Fatalf("stale read: %v", err)
		}
		if err := st.FinishDelete(ctx, ws, e1); !errors.Is(err, model.ErrStaleWriter) {
			t.Fatalf("stale finish: %v", err)
		}
		if e, _ := st.CurrentEpoch(ctx, ws); e != e2 {
			t.Fatalf("current epoch %d", e)
		}
	})

	t.Run("Append", func(t *testing.T) {
		if evs, err := st.AppendState(ctx, ws, "s", e2, nil); evs != nil || err != nil {
			t.Fatalf("empty append: %v %v", evs, err)
		}
		evs, err := st.AppendState(ctx, ws, "s", e2, map[string]string{"conn": "c1"}, rec("a", "1"), rec("b", "2"), rec("c", ""))
		must(err)
		if len(evs) != 3 || evs[0].Index != 1 || evs[2].Index != 3 || evs[1].Source != "2" || evs[0].Epoch != e2 || evs[0].SessionID != "s" {
			t.Fatalf("events %+v", evs)
		}
		s, _ := st.State(ctx, ws, "s")
		if s["n"] != "3" || s["gen"] == "" || s["src"] != "2" || s["conn"] != "c1" {
			t.Fatalf("state %v", s)
		}
		if evs[0].Tag == "" || evs[0].Tag != evs[2].Tag || evs[0].ID != (model.Cursor{Gen: s["gen"], Index: 1, Tag: evs[0].Tag}).String() {
			t.Fatalf("id %q, gen %q", evs[0].ID, s["gen"])
		}
		_, err = st.AppendState(ctx, ws, "s", e2, map[string]string{"src": "", "turn": ""})
		must(err)
		s, _ = st.State(ctx, ws, "s")
		if s["n"] != "3" || s["src"] != "" || s["conn"] != "c1" {
			t.Fatalf("state after a state-only append %v", s)
		}
		for _, bad := range []map[string]string{{"n": "9"}, {"src": "x"}, {"Bad": "x"}} {
			if _, err := st.AppendState(ctx, ws, "s", e2, bad, rec("x", "")); !errors.Is(err, model.ErrInvalidRecord) {
				t.Fatalf("state %v: %v", bad, err)
			}
		}
		if _, err := st.Append(ctx, ws, "s", e2, model.Record{Type: "x", Body: []byte(`{"id":1}`)}); !errors.Is(err, model.ErrInvalidRecord) {
			t.Fatalf("reserved key: %v", err)
		}
		parts, err := st.AppendParts(ctx, ws, e2, []model.Part{{Session: "s", Records: []model.Record{rec("d", "")}}, {Session: "t", State: map[string]string{"conn": "c2"}, Records: []model.Record{rec("e", "7")}}})
		must(err)
		if parts[0][0].Index != 4 || parts[1][0].Index != 1 {
			t.Fatalf("parts %+v", parts)
		}
		if s, _ := st.State(ctx, ws, "t"); s["src"] != "7" || s["conn"] != "c2" || s["n"] != "1" {
			t.Fatalf("state of t %v", s)
		}
		last, head, err := st.Last(ctx, ws, "s", 2)
		must(err)
		if len(last) != 2 || last[0].Type != "c" || last[1].Type != "d" || head.Index != 4 {
			t.Fatalf("last %+v head %v", last, head)
		}
		before, err := st.Before(ctx, ws, "s", 0, 2)
		must(err)
		if len(before) != 2 || before[0].Index != 4 || before[1].Index != 3 {
			t.Fatalf("before newest %+v", before)
		}
		before, _ = st.Before(ctx, ws, "s", 2, 10)
		if len(before) != 1 || before[0].Index != 1 {
			t.Fatalf("before 2 %+v", before)
		}
		if before, _ := st.Before(ctx, ws, "s", 1, 10); len(before) != 0 {
			t.Fatalf("before 1 %+v", before)
		}
		if s, _ := st.State(ctx, ws, "never"); len(s) != 0 {
			t.Fatalf("state of a stream never written %v", s)
		}
	})

	var ids []string
	t.Run("Enqueue", func(t *testing.T) {
		e := model.Enqueue{Kind: cmdPrompt, Session: DefaultSession, User: "u", Text: "t"}
		if r, _ := st.Enqueue(ctx, ws, e); r.Status != model.EnqueueNoWorkspace {
			t.Fatalf("no workspace: %+v", r)
		}
		created, err := st.PutWorkspace(ctx, ws, model.WorkspaceMeta{SandboxURL: "http://x", Agent: "mock", SandboxID: "sb"}, 1000)
		if err != nil || !created {
			t.Fatalf("put %v %v", created, err)
		}
		if created, _ := st.PutWorkspace(ctx, ws, model.WorkspaceMeta{SandboxURL: "http://y", Agent: "mock"}, 2000); created {
			t.Fatal("created twice")
		}
		m, found, _ := st.WorkspaceMeta(ctx, ws)
		if !found || m.SandboxURL != "http://y" || m.CreatedAt != 1000 || m.Deleted {
			t.Fatalf("meta %+v", m)
		}
		if r, _ := st.Enqueue(ctx, ws, e); r.Status != model.EnqueueNoSession {
			t.Fatalf("no session: %+v", r)
		}
		e.Create, e.IdemKey, e.IdemTTL = true, "k1", time.Minute
		r1, err := st.Enqueue(ctx, ws, e)
		if err != nil || r1.Status != model.EnqueueOK || !r1.Created {
			t.Fatalf("first: %+v %v", r1, err)
		}
		if r, _ := st.Enqueue(ctx, ws, e); r.Status != model.EnqueueDuplicate || r.ID != r1.ID {
			t.Fatalf("duplicate: %+v", r)
		}
		e.IdemKey, e.IdemTTL = "", 0
		r2, _ := st.Enqueue(ctx, ws, e)
		r3, _ := st.Enqueue(ctx, ws, model.Enqueue{Kind: cmdCancel, Session: DefaultSession, User: "u"})
		if r2.Created || !idAfter(r2.ID, r1.ID) || !idAfter(r3.ID, r2.ID) {
			t.Fatalf("ids %s %s %s", r1.ID, r2.ID, r3.ID)
		}
		ids = []string{r1.ID, r2.ID, r3.ID}
		rec, found, _ := st.Session(ctx, ws, DefaultSession)
		if !found || rec.ID != DefaultSession || rec.Agent != "mock" || rec.SandboxID != "" && rec.SandboxID != "sb" {
			t.Fatalf("session %+v", rec)
		}
		rate := model.Enqueue{Kind: cmdPrompt, Session: DefaultSession, User: "u", Text: "t", RateKey: "r", RateInterval: time.Hour}
		if r, _ := st.Enqueue(ctx, ws, rate); r.Status != model.EnqueueOK {
			t.Fatalf("rate first: %+v", r)
		}
		if r, _ := st.Enqueue(ctx, ws, rate); r.Status != model.EnqueueRateLimited || r.RetryAfter < 59*time.Minute {
			t.Fatalf("rate second: %+v", r)
		}
	})

	t.Run("Inbox", func(t *testing.T) {
		must(st.EnsureInbox(ctx, ws))
		must(st.EnsureInbox(ctx, ws))
		got, err := st.ReadInbox(ctx, ws, e2, "c1", 1, "")
		must(err)
		if len(got) != 1 || got[0].ID != ids[0] || got[0].Kind != cmdPrompt || got[0].Session != DefaultSession || got[0].User != "u" || got[0].Text != "t" {
			t.Fatalf("first read %+v", got)
		}
		// The reply was lost: the same read again returns it.
		if got, _ := st.ReadInbox(ctx, ws, e2, "c1", 10, ""); len(got) != 1 || got[0].ID != ids[0] {
			t.Fatalf("read again %+v", got)
		}
		got, _ = st.ReadInbox(ctx, ws, e2, "c1", 2, ids[0])
		if len(got) != 2 || got[0].ID != ids[1] || got[1].ID != ids[2] {
			t.Fatalf("read on %+v", got)
		}
		if n, _ := st.InboxPending(ctx, ws); n != 3 {
			t.Fatalf("pending %d", n)
		}
		if n, _ := st.InboxDepth(ctx, ws); n != 4 { // three pending, the rate test's one unread
			t.Fatalf("depth %d", n)
		}
		if _, _, err := st.ClaimInbox(ctx, ws, e1, "c2", "0-0", 2); !errors.Is(err, model.ErrStaleWriter) {
			t.Fatalf("stale claim: %v", err)
		}
		if err := st.AckInbox(ctx, ws, e1, ids[0]); !errors.Is(err, model.ErrStaleWriter) {
			t.Fatalf("stale ack: %v", err)
		}
		if n, _ := st.InboxPending(ctx, ws); n != 3 {
			t.Fatalf("pending after a stale claim and ack %d", n)
		}
		page, next, err := st.ClaimInbox(ctx, ws, e2, "c2", "0-0", 2)
		must(err)
		if len(page) != 2 || page[0].ID != ids[0] || next != ids[2] {
			t.Fatalf("claim %+v next %s", page, next)
		}
		page, next, _ = st.ClaimInbox(ctx, ws, e2, "c2", next, 2)
		if len(page) != 1 || page[0].ID != ids[2] || next != "0-0" {
			t.Fatalf("claim on %+v next %s", page, next)
		}
		// Claimed away from c1: not c1's to read again.
		if got, _ := st.ReadInbox(ctx, ws, e2, "c1", 10, ""); len(got) != 1 || got[0].Kind != cmdPrompt {
			t.Fatalf("c1 after the claim %+v", got)
		}
		must(st.AckInbox(ctx, ws, e2, ids[0], ids[1]))
		if n, _ := st.InboxPending(ctx, ws); n != 2 {
			t.Fatalf("pending after ack %d", n)
		}
		// Acknowledged entries are gone: the depth is what is pending or
		// unread, and the next read of c2's own pending skips nothing.
		if n, _ := st.InboxDepth(ctx, ws); n != 2 {
			t.Fatalf("depth after ack %d", n)
		}
		if got, _ := st.ReadInbox(ctx, ws, e2, "c2", 10, ""); len(got) != 1 || got[0].ID != ids[2] {
			t.Fatalf("c2 after the ack %+v", got)
		}
	})

	t.Run("Lossless", func(t *testing.T) {
		// A head beyond the stream's: Redis lost acknowledged writes.
		_, err := st.AppendParts(ctx, ws, e2, []model.Part{{Session: "l", Records: []model.Record{rec("x", "")}, Head: 5}})
		var rw *model.RewoundError
		if !errors.As(err, &rw) || rw.Head != 0 || rw.Known != 5 {
			t.Fatalf("append past the head: %v", err)
		}
		// A dispatch of a prompt dispatched already.
		disp := func(id string) error {
			_, err := st.AppendParts(ctx, ws, e2, []model.Part{{Session: "l", State: map[string]string{"last_inbox": id}, Records: []model.Record{rec("chat.user", "")}, Dispatch: id}})
			return err
		}
		must(disp("5-0"))
		if err := disp("5-0"); !errors.Is(err, model.ErrDuplicate) {
			t.Fatalf("dispatched twice: %v", err)
		}
		// Agent messages at or below the stored position are skipped.
		p := model.Part{Session: "l", State: map[string]string{"conn": "k"}, Records: []model.Record{rec("a", "1"), rec("b", "2")}}
		evs, err := st.AppendParts(ctx, ws, e2, []model.Part{p})
		if err != nil || len(evs[0]) != 2 || evs[0][1].Index != 3 {
			t.Fatalf("messages: %+v %v", evs, err)
		}
		p.Records = append(p.Records, rec("c", "3"))
		p.Head = 3
		evs, err = st.AppendParts(ctx, ws, e2, []model.Part{p})
		if err != nil || len(evs[0]) != 1 || evs[0][0].Index != 4 || evs[0][0].Source != "3" {
			t.Fatalf("messages again: %+v %v", evs, err)
		}
	})

	t.Run("Records", func(t *testing.T) {
		if v, _ := st.Workspace(ctx, ws); v.Owner != nil || !v.Found || !slices.Equal(v.Sessions, []string{DefaultSession}) {
			t.Fatalf("view %+v", v)
		}
		must(st.SetOwner(ctx, ws, model.OwnerRecord{Node: "n", Epoch: e2, Since: 5, Health: "ok"}, time.Minute))
		lk, _ := st.NewLock(ws, time.Minute)
		must(lk.TryLock(ctx))
		must(st.SetOwnerHealth(ctx, ws, "unhealthy"))
		v, _ := st.Workspace(ctx, ws)
		if v.Owner == nil || v.Owner.Node != "n" || v.Owner.Epoch != e2 || v.Owner.Health != "unhealthy" {
			t.Fatalf("owner %+v", v.Owner)
		}
		must(st.DeleteOwner(ctx, ws, e1))
		if v, _ := st.Workspace(ctx, ws); v.Owner == nil {
			t.Fatal("deleted by another epoch")
		}
		must(st.DeleteOwner(ctx, ws, e2))
		if v, _ := st.Workspace(ctx, ws); v.Owner != nil {
			t.Fatal("not deleted")
		}
		must(lk.Unlock(ctx))
		must(st.RecordAgentSession(ctx, ws, DefaultSession, e2, "as", "c9", `{"cwd":"/tmp"}`))
		r, _, _ := st.Session(ctx, ws, DefaultSession)
		if r.AgentSessionID != "as" || r.LastConnectionID != "c9" || string(r.SessionInit) != `{"cwd":"/tmp"}` {
			t.Fatalf("record %+v", r)
		}
		must(st.MarkSessionDestroyed(ctx, ws, "ghost", 7))
		r, found, _ := st.Session(ctx, ws, "ghost")
		_, wsFound, found2, _ := st.SessionOf(ctx, ws, "ghost")
		if !found || r.ID != "" || r.DestroyedAt == nil || !wsFound || found2 {
			t.Fatalf("a destroyed session never created: %+v %v; SessionOf %v %v", r, found, wsFound, found2)
		}
		recs, nextScore, _, _ := st.ListSessions(ctx, ws, -1, "", 10)
		if len(recs) != 1 || nextScore != -1 {
			t.Fatalf("list %+v %d", recs, nextScore)
		}
		must(st.MarkActive(ctx, ws))
		if a, _ := st.Active(ctx, 10); !slices.Contains(a, ws) {
			t.Fatalf("active %v", a)
		}
		must(st.UnmarkActive(ctx, ws))
		if a, _ := st.Active(ctx, 10); slices.Contains(a, ws) {
			t.Fatalf("active %v", a)
		}
		soon := func(d time.Duration) []byte {
			return []byte(`{"exp":` + strconv.FormatInt(time.Now().Add(d).UnixMilli(), 10) + `,"users":{}}`)
		}
		must(st.ReportPresence(ctx, "n1", map[string][]byte{ws: soon(time.Minute)}, nil, nil, time.Minute, sigPresence))
		must(st.ReportPresence(ctx, "n2", map[string][]byte{ws: soon(time.Minute)}, nil, nil, time.Minute, sigPresence))
		must(st.ReportPresence(ctx, "n1", nil, []string{ws}, []string{ws}, time.Minute, sigPresence))
		if p, _ := st.PresenceReports(ctx, ws); len(p) != 1 || p["n2"] == "" {
			t.Fatalf("presence %v", p)
		}
		// A dead node's report (expired longer ago than the grace) is
		// deleted; one just expired is kept for the readers to judge.
		must(st.ReportPresence(ctx, "dead", map[string][]byte{ws: soon(-time.Hour)}, nil, nil, time.Minute, sigPresence))
		must(st.ReportPresence(ctx, "late", map[string][]byte{ws: soon(-time.Second)}, nil, nil, time.Minute, sigPresence))
		if p, _ := st.PresenceReports(ctx, ws); len(p) != 2 || p["dead"] != "" || p["late"] == "" {
			t.Fatalf("presence with a dead node's report %v", p)
		}
	})

	t.Run("Active", func(t *testing.T) {
		const a = "act"
		due := func() []string {
			t.Helper()
			free, _, err := st.DueActive(ctx, 100, time.Hour)
			must(err)
			return free
		}
		must(st.MarkActive(ctx, a))
		if got := due(); !slices.Equal(got, []string{a}) {
			t.Fatalf("due after the mark %v", got)
		}
		if got := due(); len(got) != 0 {
			t.Fatalf("due again at once %v: a page read is moved on", got)
		}
		must(st.HandOffActive(ctx, a)) // its owner let go
		must(st.MarkActive(ctx, a))    // listed: stays due now
		lk, _ := st.NewLock(a, time.Minute)
		must(lk.TryLock(ctx))
		if got := due(); len(got) != 0 {
			t.Fatalf("due while locked %v", got)
		}
		must(st.HandOffActive(ctx, a))
		must(lk.Unlock(ctx))
		if got := due(); !slices.Equal(got, []string{a}) {
			t.Fatalf("due after a hand-off %v", got)
		}
		must(st.HandOffActive(ctx, a))
		must(st.LeaseActive(ctx, a, time.Minute))
		must(st.LeaseActive(ctx, a, time.Millisecond)) // never earlier
		if got := due(); len(got) != 0 {
			t.Fatalf("due while leased %v", got)
		}
		must(st.UnmarkActive(ctx, a))
		must(st.LeaseActive(ctx, a, 0))
		must(st.HandOffActive(ctx, a))
		if got, _ := st.Active(ctx, 100); slices.Contains(got, a) {
			t.Fatalf("a lease or hand-off listed it again: %v", got)
		}
	})

	t.Run("Locks", func(t *testing.T) {
		l1, _ := st.NewLock(ws, 300*time.Millisecond)
		l2, _ := st.NewLock(ws, 300*time.Millisecond)
		must(l1.TryLock(ctx))
		if err := l2.TryLock(ctx); err == nil {
			t.Fatal("taken twice")
		}
		if l, _ := st.Locked(ctx, []string{ws, "other"}); !slices.Equal(l, []bool{true, false}) {
			t.Fatalf("locked %v", l)
		}
		must(l1.Extend(ctx))
		if err := l2.Extend(ctx); err == nil {
			t.Fatal("extended by another")
		}
		time.Sleep(400 * time.Millisecond)
		if err := l1.Extend(ctx); err == nil {
			t.Fatal("extended after expiry")
		}
		must(l2.TryLock(ctx))
		if err := l1.Unlock(ctx); err == nil {
			t.Fatal("unlocked another's lock")
		}
		must(l2.Unlock(ctx))
		if l, _ := st.Locked(ctx, []string{ws}); l[0] {
			t.Fatal("still locked")
		}
	})

	t.Run("Delete", func(t *testing.T) {
		found, err := st.DeleteWorkspace(ctx, ws)
		if err != nil || !found {
			t.Fatalf("delete %v %v", found, err)
		}
		if found, _ := st.DeleteWorkspace(ctx, ws); found {
			t.Fatal("deleted twice")
		}
		if ok, _ := st.WorkspaceExists(ctx, ws); ok {
			t.Fatal("exists after delete")
		}
		if r, _, _ := st.Session(ctx, ws, DefaultSession); r.DestroyedAt == nil {
			t.Fatal("session not destroyed")
		}
		got, _ := st.ReadInbox(ctx, ws, e2, "c3", 10, "")
		if len(got) != 1 || got[0].Kind != cmdDestroyWS || got[0].Session != "" {
			t.Fatalf("read %+v", got)
		}
		if _, err := st.PutWorkspace(ctx, ws, model.WorkspaceMeta{SandboxURL: "http://x", Agent: "mock"}, 2500); !errors.Is(err, model.ErrWorkspaceDeleted) {
			t.Fatalf("put while deleting: %v", err)
		}
		if got, err := st.PurgeWorkspace(ctx, ws); err != nil || got != model.PurgeDeleting {
			t.Fatalf("purge while deleting: %v %v", got, err)
		}
		must(st.FinishDelete(ctx, ws, e2))
		if _, found, _ := st.WorkspaceMeta(ctx, ws); found {
			t.Fatal("settings kept")
		}
		if v, _ := st.Workspace(ctx, ws); v.Found {
			t.Fatalf("view %+v", v)
		}
		if _, wsFound, _, _ := st.SessionOf(ctx, ws, DefaultSession); wsFound {
			t.Fatal("workspace found")
		}
		if ok, _ := st.WorkspaceExists(ctx, ws); ok {
			t.Fatal("tombstone exists")
		}
		// The tombstone keeps the id: a PUT changes nothing.
		created, err := st.PutWorkspace(ctx, ws, model.WorkspaceMeta{SandboxURL: "http://x", Agent: "mock"}, 3000)
		if created || !errors.Is(err, model.ErrWorkspaceDeleted) {
			t.Fatalf("put of a tombstone: %v %v", created, err)
		}
		if _, found, _ := st.WorkspaceMeta(ctx, ws); found {
			t.Fatal("tombstone came back")
		}
		if ids, _ := st.SessionIDs(ctx, ws); len(ids) == 0 {
			t.Fatal("sessions gone before the purge")
		}
	})

	t.Run("Purge", func(t *testing.T) {
		if got, err := st.PurgeWorkspace(ctx, "never-created"); err != nil || got != model.PurgeNone {
			t.Fatalf("purge of nothing: %v %v", got, err)
		}
		if got, err := st.PurgeWorkspace(ctx, "bad:id"); !errors.Is(err, model.ErrInvalidID) {
			t.Fatalf("purge of a bad id: %v %v", got, err)
		}
		// An owner holding the lock keeps it.
		mu, err := st.NewLock(ws, time.Minute)
		must(err)
		must(mu.TryLock(ctx))
		if got, err := st.PurgeWorkspace(ctx, ws); err != nil || got != model.PurgeBusy {
			t.Fatalf("purge while locked: %v %v", got, err)
		}
		if ids, _ := st.SessionIDs(ctx, ws); len(ids) == 0 {
			t.Fatal("a refused purge removed sessions")
		}
		must(mu.Unlock(ctx))

		if got, err := st.PurgeWorkspace(ctx, ws); err != nil || got != model.PurgeOK {
			t.Fatalf("purge: %v %v", got, err)
		}
		if ids, _ := st.SessionIDs(ctx, ws); len(ids) != 0 {
			t.Fatalf("sessions %v", ids)
		}
		if evs, _, _ := st.Last(ctx, ws, DefaultSession, 10); len(evs) != 0 {
			t.Fatalf("events %v", evs)
		}
		if state, _ := st.State(ctx, ws, DefaultSession); len(state) != 0 {
			t.Fatalf("state %v", state)
		}
		if n, _ := st.InboxDepth(ctx, ws); n != 0 {
			t.Fatalf("inbox depth %d", n)
		}
		if ep, _ := st.CurrentEpoch(ctx, ws); ep != 0 {
			t.Fatalf("fence %d", ep)
		}
		// An ex-owner's fenced append is refused as stale, not as a rewind.
		if _, err := st.Append(ctx, ws, DefaultSession, e2, rec("late", "")); !errors.Is(err, model.ErrStaleWriter) {
			t.Fatalf("append after purge: %v", err)
		}
		if got, _ := st.PurgeWorkspace(ctx, ws); got != model.PurgeNone {
			t.Fatalf("second purge: %v", got)
		}
		created, err := st.PutWorkspace(ctx, ws, model.WorkspaceMeta{SandboxURL: "http://x", Agent: "mock"}, 4000)
		if err != nil || !created {
			t.Fatalf("put after purge: %v %v", created, err)
		}
		if v, _ := st.Workspace(ctx, ws); !v.Found || len(v.Sessions) != 0 {
			t.Fatalf("view %+v", v)
		}
		if _, wsFound, found, _ := st.SessionOf(ctx, ws, DefaultSession); !wsFound || found {
			t.Fatalf("session after purge: %v %v", wsFound, found)
		}
		// A live workspace is not purged.
		if got, _ := st.PurgeWorkspace(ctx, ws); got != model.PurgeLive {
			t.Fatalf("purge of a live workspace: %v", got)
		}
	})
}
