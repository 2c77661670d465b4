package httpapi_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/tandem-dev/tandem/auth"
	"github.com/tandem-dev/tandem/httpapi"
)

// Without authentication a browser names its user in the tandem_user
// cookie (EventSource cannot send X-User-Id); the header wins, and a bad
// cookie is refused like a bad header.
func TestNoAuthUserCookie(t *testing.T) {
	cases := []struct {
		name   string
		header string
		cookie string
		want   string
		bad    bool
	}{
		{name: "nothing", want: "anonymous"},
		{name: "cookie", cookie: "ann", want: "ann"},
		{name: "header wins", header: "bob", cookie: "ann", want: "bob"},
		{name: "empty cookie", cookie: "", want: "anonymous"},
		{name: "bad cookie", cookie: "a%20b", bad: true},
		{name: "long cookie", cookie: strings.Repeat("a", 129), bad: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "http://127.0.0.1/v1/auth/me", nil)
			if tc.header != "" {
				r.Header.Set("X-User-Id", tc.header)
			}
			if tc.cookie != "" {
				r.Header.Set("Cookie", httpapi.UserCookieName+"="+tc.cookie)
			}
			p, fromCookie, err := httpapi.NoAuth{}.Authenticate(r)
			if tc.bad {
				if err == nil {
					t.Fatalf("accepted %q as %q", tc.cookie, p.User)
				}
				return
			}
			if err != nil || p.User != tc.want || fromCookie {
				t.Fatalf("got %q, fromCookie %v, err %v; want %q", p.User, fromCookie, err, tc.want)
			}
		})
	}

	// Through the server: /v1/auth/me names the mode and the user, and a
	// bad cookie is a 400 invalid_user.
	s := httpapi.New(httpapi.Deps{Events: &fakeEvents{}, Streams: &fakeStreams{}}, httpapi.Config{})
	r := httptest.NewRequest("GET", "http://127.0.0.1/v1/auth/me", nil)
	r.AddCookie(&http.Cookie{Name: httpapi.UserCookieName, Value: "ann"})
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	var me struct{ Auth, UserID string }
	if err := json.Unmarshal(w.Body.Bytes(), &me); err != nil || w.Code != 200 || me.Auth != "none" || me.UserID != "ann" {
		t.Fatalf("me: %d %s", w.Code, w.Body)
	}
	r = httptest.NewRequest("GET", "http://127.0.0.1/v1/auth/me", nil)
	r.Header.Set("Cookie", httpapi.UserCookieName+"=a:b")
	w = httptest.NewRecorder()
	s.ServeHTTP(w, r)
	if w.Code != 400 || !json.Valid(w.Body.Bytes()) {
		t.Fatalf("bad cookie: %d %s", w.Code, w.Body)
	}
}

// With JWTs the tandem_user cookie means nothing: no token, no caller.
func TestJWTIgnoresUserCookie(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	v, err := auth.NewVerifier(auth.Config{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	a := httpapi.JWTAuth{Verifier: v}
	r := httptest.NewRequest("GET", "http://127.0.0.1/v1/auth/me", nil)
	r.AddCookie(&http.Cookie{Name: httpapi.UserCookieName, Value: "ann"})
	r.Header.Set("X-User-Id", "ann")
	if p, _, err := a.Authenticate(r); err == nil {
		t.Fatalf("authenticated %q from the user cookie", p.User)
	}

	tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "bob", "role": "member", "workspaces": []string{"*"}, "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString(secret)
	s := httpapi.New(httpapi.Deps{Events: &fakeEvents{}, Streams: &fakeStreams{}, Auth: a}, httpapi.Config{})
	r = httptest.NewRequest("GET", "http://127.0.0.1/v1/auth/me", nil)
	r.AddCookie(&http.Cookie{Name: httpapi.UserCookieName, Value: "ann"})
	r.AddCookie(&http.Cookie{Name: httpapi.CookieName, Value: tok})
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	var me struct{ Auth, UserID string }
	if err := json.Unmarshal(w.Body.Bytes(), &me); err != nil || w.Code != 200 || me.Auth != "jwt" || me.UserID != "bob" {
		t.Fatalf("me: %d %s", w.Code, w.Body)
	}
}
