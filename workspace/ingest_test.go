package workspace

import (
	"testing"

	"github.com/tandem-dev/tandem/acp"
)

// Messages read from a connection before the owner dropped it (an append
// failed) may still wait in its queue; the re-attach resumes after the last
// message persisted, so these must not be appended meanwhile, or the one
// whose append failed is missing between them. Found by the fault
// campaign after a redis-server restart: ACP ids 392 then 394.
func TestIngestSkipsMessagesOfADroppedOpen(t *testing.T) {
	o := &owner{sessions: map[string]*session{}}
	msg := func(id string, closed chan struct{}) acpMsg {
		return acpMsg{sid: "s", connID: "c", closed: closed, ev: acp.Event{ID: id, Data: []byte(`{"jsonrpc":"2.0","method":"session/update","params":{}}`)}}
	}
	first := make(chan struct{})
	s := &session{id: "s", connID: "c", closed: first}
	o.sessions["s"] = s

	t.Run("OK", func(t *testing.T) {
		w := o.prepareIngest("s", []acpMsg{msg("1", first), msg("2", first)})
		if w == nil || len(w.recs) != 2 {
			t.Fatalf("messages of the open connection: %+v", w)
		}
	})
	close(first) // dropped: the re-attach is not opened yet
	t.Run("Dropped", func(t *testing.T) {
		if w := o.prepareIngest("s", []acpMsg{msg("4", first)}); w != nil {
			t.Fatalf("a message of the dropped open was taken: %+v", w.recs)
		}
	})
	second := make(chan struct{})
	s.closed = second // the re-attach
	t.Run("Reattached", func(t *testing.T) {
		w := o.prepareIngest("s", []acpMsg{msg("3", first), msg("3", second)})
		if w == nil || len(w.recs) != 1 || w.recs[0].Source != "3" {
			t.Fatalf("after the re-attach: %+v", w)
		}
	})
}
