package httpapi_test

import (
	"bytes"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandem-dev/tandem/httpapi"
)

// The node serves the JavaScript client at /static/client.js, byte for
// byte clients/js/src/index.js as it is on disk (the file npm pack puts in
// @tandem-dev/client): the web client runs the published client.
func TestStaticClientIsTheClient(t *testing.T) {
	want, err := os.ReadFile(filepath.Join("..", "clients", "js", "src", "index.js"))
	if err != nil {
		t.Fatal(err)
	}
	s := httpapi.New(httpapi.Deps{Events: &fakeEvents{}, Streams: &fakeStreams{}, Auth: httpapi.NoAuth{}}, httpapi.Config{})
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest("GET", "http://127.0.0.1/static/client.js", nil))
	if w.Code != 200 {
		t.Fatalf("GET /static/client.js: %d %s", w.Code, w.Body.String())
	}
	if !bytes.Equal(w.Body.Bytes(), want) {
		t.Fatalf("/static/client.js (%d bytes) is not clients/js/src/index.js (%d bytes)", w.Body.Len(), len(want))
	}
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
		t.Errorf("Content-Type %q: a module script needs a JavaScript type", ct)
	}
	if w.Header().Get("Content-Security-Policy") == "" || w.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("the page headers are missing: %v", w.Header())
	}
	// A range (which needs a seekable file) and a HEAD work as for any asset.
	r := httptest.NewRequest("GET", "http://127.0.0.1/static/client.js", nil)
	r.Header.Set("Range", "bytes=0-9")
	w = httptest.NewRecorder()
	s.ServeHTTP(w, r)
	if w.Code != 206 || !bytes.Equal(w.Body.Bytes(), want[:10]) {
		t.Errorf("a range of /static/client.js: %d %q", w.Code, w.Body.String())
	}
}

// /w/{ws}/s/{sid} is the room's page showing one session: the same page,
// with its headers; an invalid id is a problem+json 400 that serves nothing.
func TestSessionPage(t *testing.T) {
	s := httpapi.New(httpapi.Deps{Events: &fakeEvents{}, Streams: &fakeStreams{}, Auth: httpapi.NoAuth{}}, httpapi.Config{})
	get := func(path string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest("GET", "http://127.0.0.1"+path, nil))
		return w
	}
	room := get("/w/demo")
	w := get("/w/demo/s/s-2.b_c")
	if w.Code != 200 || !bytes.Equal(w.Body.Bytes(), room.Body.Bytes()) {
		t.Fatalf("GET /w/demo/s/s-2.b_c: %d, the room's page: %v", w.Code, bytes.Equal(w.Body.Bytes(), room.Body.Bytes()))
	}
	if w.Header().Get("Content-Security-Policy") == "" || w.Header().Get("X-Frame-Options") != "DENY" {
		t.Errorf("the page headers are missing: %v", w.Header())
	}
	for _, path := range []string{"/w/demo/s/~ws", "/w/demo/s/" + strings.Repeat("a", 129), "/w/" + strings.Repeat("a", 129) + "/s/x", "/w/demo/s/a%20b"} {
		w := get(path)
		if w.Code != 400 || w.Header().Get("Content-Type") != "application/problem+json" || !strings.Contains(w.Body.String(), "urn:tandem:error:invalid_id") {
			t.Errorf("GET %s: %d %s %s", path, w.Code, w.Header().Get("Content-Type"), w.Body.String())
		}
	}
	if w := get("/w/demo/s/"); w.Code != 404 {
		t.Errorf("GET /w/demo/s/: %d", w.Code)
	}
}
