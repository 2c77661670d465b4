package httpapi

import "github.com/tandem-dev/tandem/eventlog"

// eventOverhead is what an event adds to a page besides its body: its
// id, index, session, type and time, and the JSON around them.
const eventOverhead = 160

// boundPage keeps the first events of evs whose bodies fit in max bytes,
// at least one, and reports whether it cut any: a page is bounded by
// bytes as well as by count, so that a page of large agent messages
// stays a reasonable answer (the client pages on from nextCursor).
func boundPage(evs []eventlog.Event, max int) ([]eventlog.Event, bool) {
	total := 0
	for i, ev := range evs {
		total += len(ev.Body) + eventOverhead
		if i > 0 && total > max {
			return evs[:i], true
		}
	}
	return evs, false
}
