package workspace

import (
	"context"
	"testing"

	"github.com/tandem-dev/tandem/eventlog"
	"github.com/tandem-dev/tandem/internal/redistest"
)

// A Manager works without an observer: metrics are optional.
func TestManagerWithoutObserver(t *testing.T) {
	rdb := redistest.Start(t, redistest.Options{}).Client(t)
	m := New(eventlog.NewStore(eventlog.New(rdb, eventlog.Config{})), nil, nil, nil, Config{NodeID: "n", DefaultSandbox: Sandbox{BaseURL: "http://127.0.0.1:9"}})
	ctx := context.Background()
	if _, err := m.PutWorkspace(ctx, "w", Settings{}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Prompt(ctx, "w", DefaultSession, "ann", "hi", ""); err != nil {
		t.Fatal(err)
	}
}
