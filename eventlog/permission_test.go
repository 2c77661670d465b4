package eventlog_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tandem-dev/tandem/eventlog"
	"github.com/tandem-dev/tandem/eventlog/model"
)

// The permission scripts on redis-server: a request is recorded only by
// the writer and only once; the first answer wins, in Redis, and goes to
// the inbox; an option not offered, an unknown request and a missing
// session are refused and change nothing.
func TestPermissionClaimFirstWins(t *testing.T) {
	ctx := context.Background()
	st, rdb := newStore(t)
	const ws, sid = "w", "s1"
	if _, err := st.PutWorkspace(ctx, ws, model.WorkspaceMeta{SandboxURL: "http://x", Agent: "mock"}, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Enqueue(ctx, ws, model.Enqueue{Kind: "open", Session: sid, Create: true}); err != nil {
		t.Fatal(err)
	}
	old, _ := st.AcquireEpoch(ctx, ws)
	ep, _ := st.AcquireEpoch(ctx, ws)
	req := []byte(`{"requestId":"perm-1","optionIds":["allow-once","reject-once"],"requestedAt":1}`)
	if _, err := st.PutPermission(ctx, ws, sid, old, "perm-1", req, time.Hour); !errors.Is(err, model.ErrStaleWriter) {
		t.Fatalf("a stale writer recorded a request: %v", err)
	}
	claim := model.PermissionClaim{Session: sid, RequestID: "perm-1", OptionID: "allow-once", User: "ann", Resolution: []byte(`{"by":"ann"}`)}
	if c, err := st.ClaimPermission(ctx, ws, claim); err != nil || c.Status != model.PermissionNotFound {
		t.Fatalf("claim before the request: %+v, %v", c, err)
	}
	got, err := st.PutPermission(ctx, ws, sid, ep, "perm-1", req, time.Hour)
	if err != nil || string(got) != string(req) {
		t.Fatalf("put: %s, %v", got, err)
	}
	if got, _ := st.PutPermission(ctx, ws, sid, ep, "perm-1", []byte(`{"requestedAt":2}`), time.Hour); string(got) != string(req) {
		t.Fatalf("a second put replaced the request: %s", got)
	}
	if ttl := rdb.PTTL(ctx, eventlog.PermsKey(ws, sid)).Val(); ttl <= 0 || ttl > time.Hour {
		t.Fatalf("hash ttl %v", ttl)
	}
	depth := rdb.XLen(ctx, eventlog.InboxKey(ws)).Val()
	bad := claim
	bad.OptionID = "allow-always"
	if c, err := st.ClaimPermission(ctx, ws, bad); err != nil || c.Status != model.PermissionInvalidOption || string(c.Body) != string(req) {
		t.Fatalf("an option not offered: %+v, %v", c, err)
	}
	bad = claim
	bad.Session = "nope"
	if c, _ := st.ClaimPermission(ctx, ws, bad); c.Status != model.PermissionNoSession {
		t.Fatalf("unknown session: %+v", c)
	}
	if n := rdb.XLen(ctx, eventlog.InboxKey(ws)).Val(); n != depth {
		t.Fatalf("refused answers reached the inbox")
	}
	c, err := st.ClaimPermission(ctx, ws, claim)
	if err != nil || c.Status != model.PermissionOK || c.InboxID == "" {
		t.Fatalf("first answer: %+v, %v", c, err)
	}
	second := claim
	second.OptionID, second.User, second.Resolution = "", "bob", []byte(`{"by":"bob"}`)
	if c2, _ := st.ClaimPermission(ctx, ws, second); c2.Status != model.PermissionResolved || string(c2.Body) != `{"by":"ann"}` {
		t.Fatalf("second answer: %+v", c2)
	}
	msgs, _ := rdb.XRange(ctx, eventlog.InboxKey(ws), c.InboxID, c.InboxID).Result()
	if len(msgs) != 1 || msgs[0].Values["k"] != "permission" || msgs[0].Values["sid"] != sid || msgs[0].Values["text"] != `{"by":"ann"}` || msgs[0].Values["user"] != "ann" {
		t.Fatalf("inbox entry %+v", msgs)
	}
	if n := rdb.XLen(ctx, eventlog.InboxKey(ws)).Val(); n != depth+1 {
		t.Fatalf("inbox grew by %d", n-depth)
	}
	if err := st.PermissionDone(ctx, ws, sid, ep, "perm-1", time.Hour); err != nil {
		t.Fatal(err)
	}
	ps, err := st.Permissions(ctx, ws, sid)
	if err != nil || ps.Requests["perm-1"] != string(req) || ps.Answers["perm-1"] != `{"by":"ann"}` || !ps.Done["perm-1"] {
		t.Fatalf("permissions %+v, %v", ps, err)
	}
}
