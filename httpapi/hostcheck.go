package httpapi

import (
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"
)

// Without authentication (NoAuth) anybody who reaches the node may do
// anything, and a web page the developer visits can reach it: by DNS
// rebinding (a name of the page's that resolves to 127.0.0.1, so the
// browser lets the page read the answers) or with a cross-site "simple"
// request (a text/plain POST needs no preflight). localGuard refuses both:
//
//   - the Host of every request must be a loopback name or address
//     (localhost, *.localhost, 127.0.0.0/8, ::1), or with
//     Config.NoAuthAllowRemote any IP address: a rebinding page's Host is
//     always its own name;
//   - an unsafe request must carry the CSRF header (which a cross-site
//     page cannot set without a preflight the node refuses), or come from
//     the node's own origin (Origin, else Sec-Fetch-Site), or show no sign
//     of a browser at all (curl and the CLI send neither Origin nor
//     Sec-Fetch-Site; every current browser sends Origin on a cross-site
//     POST).
func (s *Server) localGuard(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if !s.localHost(r.Host) {
			return newError(probHostNotAllowed, "without authentication only loopback host names are served; set TANDEM_AUTH=jwt to serve others")
		}
		if !safeMethod(r.Method) && !s.sameSite(r) {
			return newError(probCrossSite, "a cross-site request must carry the "+CSRFHeader+" header")
		}
		return next(c)
	}
}

// localHost reports whether host (a Host header, with or without a
// port) names this machine's loopback interface.
func (s *Server) localHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	return ip.Unmap().IsLoopback() || s.cfg.NoAuthAllowRemote
}

// sameSite reports whether an unsafe request may be carried out: it has
// the CSRF header, or its origin is the node's own (or a CORS origin), or
// nothing says a browser sent it.
func (s *Server) sameSite(r *http.Request) bool {
	if r.Header.Get(CSRFHeader) != "" {
		return true
	}
	if o := r.Header.Get("Origin"); o != "" {
		if slices.Contains(s.cfg.CORSOrigins, o) {
			return true
		}
		u, err := url.Parse(o)
		return err == nil && (u.Scheme == "http" || u.Scheme == "https") && strings.EqualFold(u.Host, r.Host)
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
		return true
	}
	return false
}
