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
