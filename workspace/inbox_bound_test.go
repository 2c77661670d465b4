package workspace

import (
	"testing"
	"testing/synctest"
)

// Prompts through an owner leave nothing behind in the inbox: the owner
// acknowledges every entry it carried out, and an acknowledged entry is
// deleted (in eventlog by the ack script; the fake does the same), so the
// inbox never holds more than the prompts not done yet.
func TestFakeInboxEmptiesAfterPrompts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		a := h.start("a", nodeOpts{})
		a.put(t)
		const batches, batch = 40, 50
		most := 0
		for b := 0; b < batches; b++ {
			for i := 0; i < batch; i++ {
				a.prompt(t, "p [chunks=1]")
			}
			entries, _ := h.store.inboxView(testWS)
			most = max(most, len(entries))
			waitFor(t, "the batch done", func() bool {
				entries, pending := h.store.inboxView(testWS)
				return len(entries) == 0 && len(pending) == 0
			})
		}
		if got := len(h.sb.Prompts()); got != batches*batch {
			t.Fatalf("the agent received %d prompts, want %d", got, batches*batch)
		}
		if most > batch {
			t.Fatalf("the inbox held %d entries with %d prompts not done", most, batch)
		}
		t.Logf("%d prompts: at most %d inbox entries, none left", batches*batch, most)
	})
}
