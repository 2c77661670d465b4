package node

import (
	"net/http"
	"net/url"

	"github.com/tandem-dev/tandem/sandbox"
)

// localAuth adds the local Sandbox Agent server's own token to the
// requests sent to it. The token lives only in this process and the
// child's command line: it is never stored with a workspace (a workspace
// on the local sandbox names it by URL, whichever node owns it), and no
// redirect is followed, so it goes nowhere else.
func localAuth(next http.RoundTripper, l *sandbox.Local) http.RoundTripper {
	u, err := url.Parse(l.BaseURL())
	if err != nil || next == nil {
		return next
	}
	return localAuthTransport{next: next, host: u.Host, token: l.Token()}
}

type localAuthTransport struct {
	next  http.RoundTripper
	host  string
	token string
}

func (t localAuthTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host == t.host && r.URL.Scheme == "http" {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+t.token)
	}
	return t.next.RoundTrip(r)
}
