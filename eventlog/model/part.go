package model

// Part is what one AppendParts call appends to one session stream.
type Part struct {
	Session string
	State   map[string]string
	Records []Record
}
