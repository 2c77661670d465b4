package httpapi_test

import (
	"net/http/httptest"
	"testing"

	"github.com/tandem-dev/tandem/httpapi"
)

// Without authentication only loopback Host names and addresses are
// served (any address too with NoAuthAllowRemote), never a name a web
// page could have rebound.
func TestNoAuthHosts(t *testing.T) {
	for _, remote := range []bool{false, true} {
		h := httpapi.New(httpapi.Deps{Events: &fakeEvents{}, Streams: &fakeStreams{}}, httpapi.Config{NoAuthAllowRemote: remote})
		for host, want := range map[string]int{
			"127.0.0.1:8080": 200, "127.0.0.2": 200, "localhost": 200, "LOCALHOST:1": 200, "app.localhost:8080": 200,
			"[::1]:8080": 200, "[::ffff:127.0.0.1]:80": 200, "localhost.": 200,
			"evil.example": 403, "127.0.0.1.nip.io": 403, "localhost.evil.example": 403, "": 403,
			"0.0.0.0:8080":  map[bool]int{false: 403, true: 200}[remote],
			"10.0.0.5:8080": map[bool]int{false: 403, true: 200}[remote],
			"[fd00::1]:80":  map[bool]int{false: 403, true: 200}[remote],
		} {
			req := httptest.NewRequest("GET", "/healthz", nil)
			req.Host = host
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != want {
				t.Errorf("remote %v, Host %q: %d, want %d", remote, host, rec.Code, want)
			}
		}
	}
}
