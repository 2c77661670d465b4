package eventlog_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tandem-dev/tandem/eventlog"
	"github.com/tandem-dev/tandem/internal/redistest"
)

// Redis replicates asynchronously: an append the master acknowledged while
// its replica lagged is lost when the replica takes over. With
// WaitReplicas the append returns only once the replica has it, and the
// same failover loses nothing.
func TestWaitReplicas(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		replicas int
		lost     bool
	}{
		{"an acknowledged event is lost without WAIT", 0, true},
		{"OK no loss with WaitReplicas 1", 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			master := redistest.Start(t, redistest.Options{})
			replica := redistest.StartReplica(t, master, redistest.Options{})
			l := eventlog.New(master.Client(t), eventlog.Config{WaitReplicas: tc.replicas, WaitTimeout: 5 * time.Second})
			ep, err := l.AcquireEpoch(ctx, "w")
			if err != nil {
				t.Fatal(err)
			}
			waitUntil(t, "the fence on the replica", 10*time.Second, func() bool {
				v, _ := replica.Do(ctx, "GET", eventlog.FenceKey("w"))
				return v != nil
			})

			// The replica falls behind: its link to the master is cut and,
			// paused, it cannot connect again until resumed.
			cutLink(t, master, replica)
			go func() {
				time.Sleep(300 * time.Millisecond)
				if tc.replicas > 0 {
					replica.Resume()
				}
			}()
			start := time.Now()
			if _, err := l.Append(ctx, "w", "s", ep, eventlog.Record{Type: "chat.user", Body: json.RawMessage(`{"text":"acknowledged"}`)}); err != nil {
				t.Fatal(err)
			}
			took := time.Since(start)
			// The master dies right after acknowledging; the replica
			// takes over.
			master.Kill()
			replica.Resume()
			if _, err := replica.Do(ctx, "REPLICAOF", "NO", "ONE"); err != nil {
				t.Fatal(err)
			}
			promoted := eventlog.New(replica.Client(t), eventlog.Config{})
			evs, _, err := promoted.Read(ctx, "w", "s", eventlog.Cursor{}, 10)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("the append took %v; the promoted replica has %d of the 1 acknowledged events", took.Round(time.Millisecond), len(evs))
			if lost := len(evs) == 0; lost != tc.lost {
				t.Fatalf("lost = %v, want %v", lost, tc.lost)
			}
			if tc.replicas > 0 && (took < 250*time.Millisecond || l.UnderReplicated() != 0) {
				t.Fatalf("the append took %v (the replica was paused for 300ms), %d under-replicated", took, l.UnderReplicated())
			}
		})
	}
	t.Run("OK returns after WaitTimeout when the replica stays behind", func(t *testing.T) {
		// SIGSTOP alone: the replica receives (its kernel buffers the
		// stream) but acknowledges nothing.
		master := redistest.Start(t, redistest.Options{})
		replica := redistest.StartReplica(t, master, redistest.Options{})
		l := eventlog.New(master.Client(t), eventlog.Config{WaitReplicas: 1, WaitTimeout: 200 * time.Millisecond})
		ep, _ := l.AcquireEpoch(ctx, "w")
		replica.Pause()
		defer replica.Resume()
		start := time.Now()
		if _, err := l.Append(ctx, "w", "s", ep, eventlog.Record{Type: "chat.user", Body: json.RawMessage(`{}`)}); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took < 150*time.Millisecond || took > 3*time.Second || l.UnderReplicated() != 1 {
			t.Fatalf("took %v, %d under-replicated; want about 200ms and 1", took, l.UnderReplicated())
		}
	})
	t.Run("OK on a cluster, across a failover", func(t *testing.T) {
		c := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3, ReplicasPerMaster: 1})
		l := eventlog.New(c.Client(t), eventlog.Config{WaitReplicas: 1, WaitTimeout: 2 * time.Second})
		ep, err := l.AcquireEpoch(ctx, "w")
		if err != nil {
			t.Fatal(err)
		}
		app := func() {
			t.Helper()
			if _, err := l.Append(ctx, "w", "s", ep, eventlog.Record{Type: "chat.user", Body: json.RawMessage(`{}`)}); err != nil {
				t.Fatal(err)
			}
		}
		app()
		c.Failover(t, eventlog.FenceKey("w")) // the next append meets MOVED
		app()
		if l.UnderReplicated() != 0 {
			t.Fatalf("%d appends under-replicated", l.UnderReplicated())
		}
		if head, _ := l.Head(ctx, "w", "s"); head.Index != 2 {
			t.Fatalf("head %d, want 2", head.Index)
		}
	})
}

// cutLink closes the replica's connection to its master and pauses the
// replica before it connects again (it retries every second), so that
// what the master acknowledges now never reaches it.
func cutLink(t *testing.T, master, replica *redistest.Server) {
	t.Helper()
	ctx := context.Background()
	for try := 0; try < 20; try++ {
		if _, err := replica.Do(ctx, "CLIENT", "KILL", "TYPE", "master"); err != nil {
			t.Fatal(err)
		}
		replica.Pause()
		v, err := master.Do(ctx, "INFO", "replication")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(fmt.Sprint(v), "connected_slaves:0") {
			return
		}
		replica.Resume() // it connected again in between: once more
		replica.WaitInSync(t)
	}
	t.Fatal("could not cut the replica's link")
}
