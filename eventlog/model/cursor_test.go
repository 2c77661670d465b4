package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

func TestParseCursor(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Cursor
		err  error
	}{
		{"", Cursor{}, nil},
		{"0", Cursor{}, nil},
		{"1.a", Cursor{Gen: "a", Index: 1}, nil},
		{"42.18b7e2c4d5f01", Cursor{Gen: "18b7e2c4d5f01", Index: 42}, nil},
		{"18446744073709551615.f", Cursor{Gen: "f", Index: 1<<64 - 1}, nil},
		{"18446744073709551616.f", Cursor{}, ErrCursorMalformed},
		{"01.a", Cursor{}, ErrCursorMalformed},
		{"1.", Cursor{}, ErrCursorMalformed},
		{".a", Cursor{}, ErrCursorMalformed},
		{"1.A", Cursor{}, ErrCursorMalformed},
		{"1.g", Cursor{}, ErrCursorMalformed},
		{"-1.a", Cursor{}, ErrCursorMalformed},
		{"+1.a", Cursor{}, ErrCursorMalformed},
		{"1.a.b", Cursor{Gen: "a", Index: 1, Tag: "b"}, nil},
		{"42.18b7e2c4d5f01.9c04e1", Cursor{Gen: "18b7e2c4d5f01", Index: 42, Tag: "9c04e1"}, nil},
		{"1.a.", Cursor{}, ErrCursorMalformed},
		{"1.a.g", Cursor{}, ErrCursorMalformed},
		{"1.a.B", Cursor{}, ErrCursorMalformed},
		{"1.a.123456789", Cursor{}, ErrCursorMalformed},
		{"1.a.b.c", Cursor{}, ErrCursorMalformed},
		{"1.00000000000000000", Cursor{}, ErrCursorMalformed},
		{"1-0", Cursor{}, ErrCursorMalformed},
		{"abc", Cursor{}, ErrCursorMalformed},
		{"1.a\n", Cursor{}, ErrCursorMalformed},
		{" 1.a", Cursor{}, ErrCursorMalformed},
	} {
		got, err := ParseCursor(tc.in)
		if !errors.Is(err, tc.err) || got != tc.want {
			t.Errorf("ParseCursor(%q) = %+v, %v; want %+v, %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func FuzzParseCursor(f *testing.F) {
	for _, s := range []string{"", "0", "1.a", "42.18b7e2c4d5f01", "42.18b7e2c4d5f01.9c04e1", "01.a", "1.", "9999999999999999999999.a", "1.a\r\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCursor(s)
		if err != nil {
			if !errors.Is(err, ErrCursorMalformed) {
				t.Fatalf("ParseCursor(%q) error %v is not ErrCursorMalformed", s, err)
			}
			return
		}
		if c.IsZero() {
			if s != "" && s != "0" {
				t.Fatalf("ParseCursor(%q) = zero cursor", s)
			}
			return
		}
		// A valid cursor survives a round trip exactly, and its text can
		// go into an SSE id: line.
		if c.String() != s {
			t.Fatalf("round trip %q -> %q", s, c.String())
		}
		for i := 0; i < len(s); i++ {
			if s[i] == '\r' || s[i] == '\n' || s[i] == 0 {
				t.Fatalf("accepted cursor %q holds a control character", s)
			}
		}
	})
}

// FuzzNormalize: the scanner-based body check agrees with decoding the
// body into a map.
func FuzzNormalize(f *testing.F) {
	f.Add(`{"a":1}`)
	f.Add(`{ "id" : 1 }`)
	f.Add(`{"x":{"id":1},"ty\u0070e":2}`)
	f.Add(`{"s":"a \" b","eventIndex":[1,{"}":"{"}]}`)
	f.Add(`[1]`)
	f.Add(`"str"`)
	f.Fuzz(func(t *testing.T, body string) {
		r := Record{Type: "t", Body: json.RawMessage(body)}
		got, err := r.Normalize()
		var obj map[string]json.RawMessage
		decErr := json.Unmarshal([]byte(body), &obj)
		wantOK := body == "" || (decErr == nil && obj != nil)
		if wantOK && body != "" {
			for _, k := range reservedKeys {
				if _, ok := obj[k]; ok {
					wantOK = false
				}
			}
		}
		if (err == nil) != wantOK {
			t.Fatalf("normalize(%q) err = %v, decoding says ok=%v", body, err, wantOK)
		}
		if err == nil && body != "" {
			var buf bytes.Buffer
			json.Compact(&buf, []byte(body))
			if string(got) != buf.String() {
				t.Fatalf("normalize(%q) = %q, want %q", body, got, buf.String())
			}
		}
	})
}
