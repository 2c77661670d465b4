package eventlog

import (
	"testing"

	"github.com/tandem-dev/tandem/eventlog/model"
)

func FuzzDecodeNotice(f *testing.F) {
	f.Add("s\n1\na\n1700000000000\nchat.user\n3\n\n{}")
	f.Add("s\n1\na\n1\nt\n1\n7\n{\"x\":\"\\n\"}")
	f.Add("\n\n\n\n\n\n\n")
	f.Fuzz(func(t *testing.T, p string) {
		ev, gen, err := DecodeNotice(p)
		if err != nil {
			return
		}
		if ev.Index == 0 || !model.ValidGen(gen) {
			t.Fatalf("accepted %q as %+v", p, ev)
		}
	})
}
