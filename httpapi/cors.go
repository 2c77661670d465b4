package httpapi

import (
	"fmt"
	"net/url"
	"strings"
)

// validCORSOrigin reports an origin pattern that would let more sites in
// than its author meant: it must be scheme://host[:port] (http or https,
// nothing after the host), and a wildcard may only stand for subdomains
// of a registrable-looking name ("https://*.example.com"), never for the
// whole host ("https://*", "https://*.com").
func validCORSOrigin(o string) error {
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return fmt.Errorf("httpapi: CORS origin %q: want scheme://host[:port]", o)
	}
	if strings.HasSuffix(o, "/") {
		return fmt.Errorf("httpapi: CORS origin %q: an origin has no trailing slash", o)
	}
	host := u.Hostname()
	if strings.Contains(u.Port(), "*") {
		return fmt.Errorf("httpapi: CORS origin %q: no wildcard port", o)
	}
	if !strings.Contains(host, "*") {
		return nil
	}
	rest, ok := strings.CutPrefix(host, "*.")
	if !ok || strings.Contains(rest, "*") || strings.Count(rest, ".") < 1 || strings.HasPrefix(rest, ".") || strings.HasSuffix(rest, ".") {
		return fmt.Errorf("httpapi: CORS origin %q: a wildcard may only stand for the subdomains of a domain (https://*.example.com)", o)
	}
	return nil
}
