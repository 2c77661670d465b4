package workspace

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/tandem-dev/tandem/eventlog"
	"github.com/tandem-dev/tandem/eventlog/model"
	"github.com/tandem-dev/tandem/internal/redistest"
)

// A claimed prompt counts as dispatched only when its own chat.user is in
// the stream; a later prompt's chat.user proves nothing.
func TestFindDispatch(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Start(t, redistest.Options{}).Client(t)
	log := eventlog.NewStore(eventlog.New(rdb, eventlog.Config{}))
	m := New(log, nil, nil, nil, Config{NodeID: "a"})
	const ws, sid = "w", "default"
	epoch, _ := log.AcquireEpoch(ctx, ws)
	o := &owner{m: m, ws: ws, epoch: epoch, consumer: "a/1"}
	user := func(id string) model.Record {
		return model.Record{Type: TypeChatUser, Body: []byte(`{"userId":"u","text":"t","promptId":"` + id + `"}`)}
	}
	filler := func(n int) {
		for i := 0; i < n; i++ {
			if _, err := log.Append(ctx, ws, sid, epoch, model.Record{Type: TypeSessionEvent, Body: []byte(`{"sender":"agent"}`)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := log.Append(ctx, ws, sid, epoch, user("1000-0")); err != nil {
		t.Fatal(err)
	}
	filler(700) // more than one page back
	if _, err := log.Append(ctx, ws, sid, epoch, user("3000-0")); err != nil {
		t.Fatal(err)
	}
	filler(600)
	future := strconv.FormatInt(time.Now().Add(10*time.Minute).UnixMilli(), 10) + "-0"
	for _, c := range []struct {
		id   string
		want bool
	}{
		{"1000-0", true},  // its chat.user, two pages back
		{"3000-0", true},  // its chat.user
		{"2000-0", false}, // between: 3000-0 was dispatched, 2000-0 never
		{"500-0", false},  // before everything: the stream's start ends the search
		{future, false},   // accepted after every event was written
	} {
		got, err := o.findDispatch(ctx, sid, c.id)
		if err != nil || got != c.want {
			t.Errorf("findDispatch(%s) = %v, %v; want %v", c.id, got, err, c.want)
		}
	}
}
