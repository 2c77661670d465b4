package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/tandem-dev/tandem/auth"
	"github.com/tandem-dev/tandem/httpapi"
)

// Over HTTPS (as the proxy says with X-Forwarded-Proto) the token cookie
// is __Host-tandem_token, Secure, Path=/, without Domain, and only that
// name is read; over plain HTTP (local use) it is tandem_token.
func TestCookieNameOverHTTPS(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	v, _ := auth.NewVerifier(auth.Config{Secret: secret})
	s := httpapi.New(httpapi.Deps{Events: &fakeEvents{}, Streams: &fakeStreams{}, Auth: httpapi.JWTAuth{Verifier: v}}, httpapi.Config{})
	tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "bob", "role": "member", "workspaces": []string{"*"}, "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString(secret)
	for _, tc := range []struct {
		proto, name string
		secure      bool
	}{{"https", "__Host-tandem_token", true}, {"", "tandem_token", false}} {
		r := httptest.NewRequest("POST", "http://tandem.example/v1/auth/cookie", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		if tc.proto != "" {
			r.Header.Set("X-Forwarded-Proto", tc.proto)
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		cookies := w.Result().Cookies()
		if w.Code != 200 || len(cookies) != 1 {
			t.Fatalf("%q: %d %v", tc.proto, w.Code, cookies)
		}
		c := cookies[0]
		if c.Name != tc.name || c.Secure != tc.secure || c.Path != "/" || c.Domain != "" || !c.HttpOnly {
			t.Errorf("%q: cookie %+v", tc.proto, c)
		}
		// The cookie authenticates; the other name does not.
		for _, name := range []string{"__Host-tandem_token", "tandem_token"} {
			r := httptest.NewRequest("GET", "http://tandem.example/v1/auth/me", nil)
			if tc.proto != "" {
				r.Header.Set("X-Forwarded-Proto", tc.proto)
			}
			r.AddCookie(&http.Cookie{Name: name, Value: tok})
			w := httptest.NewRecorder()
			s.ServeHTTP(w, r)
			if want := name == tc.name; (w.Code == 200) != want {
				t.Errorf("%q: cookie %s: %d", tc.proto, name, w.Code)
			}
		}
		r = httptest.NewRequest("DELETE", "http://tandem.example/v1/auth/cookie", nil)
		if tc.proto != "" {
			r.Header.Set("X-Forwarded-Proto", tc.proto)
		}
		w = httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if h := w.Header().Get("Set-Cookie"); !strings.HasPrefix(h, tc.name+"=;") {
			t.Errorf("%q: clear: %s", tc.proto, h)
		}
	}
}
