package eventlog_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/tandem-dev/tandem/eventlog"
)

// A node that died leaves its presence field in {ws:ID}:presence, a key
// the live nodes keep alive with their own reports: the field is deleted
// by the first read after its expiry plus the grace, and the live node's
// report and the key's expiry stay.
func TestDeadNodesPresenceExpires(t *testing.T) {
	ctx := context.Background()
	st, rdb := newStore(t)
	const ws = "w"
	report := func(exp time.Time) []byte {
		return []byte(`{"exp":` + strconv.FormatInt(exp.UnixMilli(), 10) + `,"users":{"ann":1}}`)
	}
	now := time.Now()
	if err := st.ReportPresence(ctx, "dead", map[string][]byte{ws: report(now.Add(-eventlog.PresenceGrace - time.Second))}, nil, nil, time.Minute, "presence"); err != nil {
		t.Fatal(err)
	}
	if err := st.ReportPresence(ctx, "live", map[string][]byte{ws: report(now.Add(6 * time.Second))}, nil, nil, time.Minute, "presence"); err != nil {
		t.Fatal(err)
	}
	rdb.HSet(ctx, eventlog.PresenceKey(ws), "odd", "not json")
	if n, _ := rdb.HLen(ctx, eventlog.PresenceKey(ws)).Result(); n != 3 {
		t.Fatalf("%d fields before the read", n)
	}
	got, err := st.PresenceReports(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["live"] == "" || got["odd"] != "not json" {
		t.Fatalf("reports %v, want live's and the odd field", got)
	}
	fields, _ := rdb.HKeys(ctx, eventlog.PresenceKey(ws)).Result()
	if len(fields) != 2 || rdb.HExists(ctx, eventlog.PresenceKey(ws), "dead").Val() {
		t.Fatalf("fields after the read %v: the dead node's is still there", fields)
	}
	if ttl := rdb.PTTL(ctx, eventlog.PresenceKey(ws)).Val(); ttl <= 0 {
		t.Fatalf("the key lost its expiry: %v", ttl)
	}
	if got, err := st.PresenceReports(ctx, "nobody"); err != nil || len(got) != 0 {
		t.Fatalf("a workspace with no reports: %v %v", got, err)
	}
}
