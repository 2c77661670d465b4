package sse

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestResumePosition(t *testing.T) {
	for _, tc := range []struct {
		name, target, lastEventID string
		hasHeader                 bool
		pos                       string
		from                      Origin
		ok                        bool
	}{
		{"OK from the start", "/s", "", false, "", FromStart, true},
		{"OK from the query", "/s?cursor=7.ab", "", false, "7.ab", FromQuery, true},
		{"OK Last-Event-ID wins over the query", "/s?cursor=7.ab", "9.ab", true, "9.ab", FromLastEventID, true},
		{"OK empty Last-Event-ID", "/s?cursor=7.ab", "", true, "", FromLastEventID, true},
		{"ErrMalformed control character", "/s?cursor=7%0A", "", false, "", FromQuery, false},
		{"ErrMalformed too long", "/s?cursor=" + strings.Repeat("9", maxPositionLen+1), "", false, "", FromQuery, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", tc.target, nil)
			if tc.hasHeader {
				r.Header["Last-Event-Id"] = []string{tc.lastEventID}
			}
			pos, from, ok := ResumePosition(r)
			if pos != tc.pos || from != tc.from || ok != tc.ok {
				t.Fatalf("got (%q, %v, %v), want (%q, %v, %v)", pos, from, ok, tc.pos, tc.from, tc.ok)
			}
		})
	}
}
