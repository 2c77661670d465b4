package acp

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestSSEReader(t *testing.T) {
	type ev struct{ id, typ, data string }
	tests := []struct {
		name string
		in   string
		want []ev
	}{
		{"OK", "event: message\nid: 1\ndata: {\"a\":1}\n\n", []ev{{"1", "message", `{"a":1}`}}},
		{"DefaultType", "id: 1\ndata: x\n\n", []ev{{"1", "message", "x"}}},
		{"MultiLineData", "data: a\ndata:b\ndata\n\n", []ev{{"", "message", "a\nb\n"}}},
		{"CRLF", "id: 7\r\ndata: x\r\n\r\nid: 8\r\ndata: y\r\n\r\n", []ev{{"7", "message", "x"}, {"8", "message", "y"}}},
		{"CR", "id: 7\rdata: x\r\rdata: y\r\r", []ev{{"7", "message", "x"}, {"7", "message", "y"}}},
		{"Comments", ": heartbeat\n\n:x\ndata: z\n\n", []ev{{"", "message", "z"}}},
		{"OnlyOneLeadingSpaceRemoved", "data:  two\n\n", []ev{{"", "message", " two"}}},
		{"EmptyDataNotDispatched", "id: 3\nevent: other\n\ndata: q\n\n", []ev{{"3", "message", "q"}}},
		{"IDKeptAcrossEvents", "id: 3\ndata: a\n\ndata: b\n\n", []ev{{"3", "message", "a"}, {"3", "message", "b"}}},
		{"IDWithNULIgnored", "id: 3\n\nid: 4\x005\ndata: a\n\n", []ev{{"3", "message", "a"}}},
		{"EventType", "event: ping\ndata: p\n\n", []ev{{"", "ping", "p"}}},
		{"UnfinishedEventDropped", "data: a\n\ndata: b\n", []ev{{"", "message", "a"}}},
		{"UnknownFieldsAndRetry", "retry: 10\nfoo: bar\ndata: a\n\n", []ev{{"", "message", "a"}}},
		{"ColonInValue", "data: {\"k\":\"v\"}\n\n", []ev{{"", "message", `{"k":"v"}`}}},
	}
	for _, tt := range tests {
		for _, mode := range []string{"Whole", "OneByte"} {
			t.Run(tt.name+"/"+mode, func(t *testing.T) {
				var r io.Reader = strings.NewReader(tt.in)
				if mode == "OneByte" {
					r = iotest.OneByteReader(r)
				}
				s := newSSEReader(r)
				var got []ev
				for {
					e, err := s.next()
					if err != nil {
						if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
							t.Fatal(err)
						}
						break
					}
					got = append(got, ev{e.id, e.typ, string(e.data)})
				}
				if len(got) != len(tt.want) {
					t.Fatalf("got %q, want %q", got, tt.want)
				}
				for i := range got {
					if got[i] != tt.want[i] {
						t.Fatalf("event %d: got %q, want %q", i, got[i], tt.want[i])
					}
				}
			})
		}
	}
}

// TestSSEReaderCRDispatchesAtOnce checks that an event ended by CR is
// returned without waiting for the next byte (which could be a LF).
func TestSSEReaderCRDispatchesAtOnce(t *testing.T) {
	pr, pw := io.Pipe()
	s := newSSEReader(pr)
	go pw.Write([]byte("data: a\r\r"))
	e, err := s.next()
	if err != nil || string(e.data) != "a" {
		t.Fatalf("got %q, %v", e.data, err)
	}
	go func() { pw.Write([]byte("\ndata: b\r\n\r\n")); pw.Close() }()
	e, err = s.next()
	if err != nil || string(e.data) != "b" {
		t.Fatalf("got %q, %v", e.data, err)
	}
}

func FuzzSSEReader(f *testing.F) {
	f.Add("id: 1\ndata: x\n\n")
	f.Add("data: a\r\ndata: b\r\r\n: c\n\n")
	f.Add("id: 4\x005\nevent: e\ndata\n\n")
	f.Fuzz(func(t *testing.T, in string) {
		whole := readAll(newSSEReader(strings.NewReader(in)))
		bytewise := readAll(newSSEReader(iotest.OneByteReader(strings.NewReader(in))))
		if strings.Join(whole, "\x00") != strings.Join(bytewise, "\x00") {
			t.Fatalf("chunking changes the result: %q vs %q", whole, bytewise)
		}
	})
}

func readAll(s *sseReader) []string {
	var out []string
	for {
		e, err := s.next()
		if err != nil {
			return out
		}
		out = append(out, e.id+"|"+e.typ+"|"+string(e.data))
	}
}
