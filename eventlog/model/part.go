package model

// Part is what one AppendParts call appends to one session stream.
type Part struct {
	Session string
	State   map[string]string
	Records []Record
	// Head is the stream's last index the writer saw acknowledged (0: it
	// knows none). When Redis holds less, the append refuses with a
	// *RewoundError: Redis lost acknowledged writes, and appending would
	// reuse their indexes.
	Head uint64
	// Dispatch is the inbox id of the prompt the part dispatches, or "".
	// The append refuses with ErrDuplicate when the stream's state says
	// that prompt was dispatched already (it is its last_inbox, or among
	// the latest dispatched): a dispatch appended twice, by a late
	// execution of an earlier try, would duplicate the prompt.
	Dispatch string
}
