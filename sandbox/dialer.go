package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tandem-dev/tandem/acp"
)

// ErrAddressNotAllowed is the error of a connection to a sandbox whose
// host resolved to an address the allow-list does not name: loopback,
// private, link-local (cloud metadata), shared or unspecified, when no
// address pattern covers it.
var ErrAddressNotAllowed = errors.New("sandbox: address not allowed")

// AllowList decides which Sandbox Agent servers workspaces may use, and
// checks every connection to one at connect time.
//
// A pattern is a host, optionally with a port: a DNS name or glob
// ("*.sandbox.internal:2468", "box.example"), an IP address ("10.0.0.7",
// "[fd00::7]:2468", "::1") or a CIDR prefix ("10.0.0.0/8",
// "10.0.0.0/8:2468", "[fd00::/8]:2468"). Without a port, any port.
//
// A URL is allowed when its host and port match a pattern, or are the
// default sandbox's. That alone is not enough: a name may resolve (or be
// rebound, after the check) to the node's own network. So the dialer
// checks the address it actually connects to: a public address is fine;
// a loopback, private, link-local (169.254.169.254, the cloud metadata
// service), shared (100.64.0.0/10) or unspecified one only when an
// address or prefix pattern covers it. The default sandbox is the
// operator's own and may be anywhere (the local provider's is loopback).
type AllowList struct {
	def      string // the default sandbox's host:port, lower case
	names    []namePattern
	prefixes []prefixPattern
}

type namePattern struct {
	host string // a glob, lower case
	port string // "" for any
}

type prefixPattern struct {
	prefix netip.Prefix
	port   string // "" for any
}

// NewAllowList returns the allow-list of the patterns, with defaultURL
// (the node's default sandbox, "" for none) always allowed. A pattern
// that cannot be parsed is an error.
func NewAllowList(defaultURL string, patterns []string) (*AllowList, error) {
	a := &AllowList{}
	if defaultURL != "" {
		u, err := url.Parse(defaultURL)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("sandbox: default sandbox URL %q is not an absolute URL", defaultURL)
		}
		a.def = hostPort(u)
	}
	for _, p := range patterns {
		p = strings.ToLower(strings.TrimSpace(p))
		if p == "" {
			continue
		}
		if err := a.add(p); err != nil {
			return nil, fmt.Errorf("sandbox: allow pattern %q: %w", p, err)
		}
	}
	return a, nil
}

func (a *AllowList) add(p string) error {
	host, port := p, ""
	switch {
	case strings.HasPrefix(p, "["):
		end := strings.Index(p, "]")
		if end < 0 {
			return errors.New("no closing ]")
		}
		host, port = p[1:end], p[end+1:]
		if port != "" {
			if !strings.HasPrefix(port, ":") {
				return errors.New("want [address]:port")
			}
			port = port[1:]
		}
		if pfx, ok := parsePrefix(host); ok && pfx.Addr().Is6() {
			return a.addPrefix(pfx, port)
		}
		return errors.New("brackets hold an IPv6 address or prefix")
	case strings.Count(p, ":") > 1: // a bare IPv6 address or prefix, any port
		if pfx, ok := parsePrefix(p); ok {
			return a.addPrefix(pfx, "")
		}
		return errors.New("an IPv6 address needs brackets to carry a port: [addr]:port")
	case strings.Contains(p, ":"):
		host, port, _ = strings.Cut(p, ":")
	}
	if port != "" && port != "*" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("port %q", port)
		}
	}
	if port == "*" {
		port = ""
	}
	if pfx, ok := parsePrefix(host); ok {
		return a.addPrefix(pfx, port)
	}
	if strings.Contains(host, "/") {
		return errors.New("not a CIDR prefix")
	}
	if strings.Contains(host, ".") && strings.Trim(host, "0123456789.*?") == "" {
		// 10.0.0.* would pass the URL check and then fail every
		// connection to a private address: say so now.
		return errors.New("write an address range as a CIDR prefix, such as 10.0.0.0/24")
	}
	if host == "" {
		return errors.New("empty host")
	}
	if _, err := path.Match(host, ""); err != nil {
		return err
	}
	a.names = append(a.names, namePattern{host: host, port: port})
	return nil
}

func (a *AllowList) addPrefix(pfx netip.Prefix, port string) error {
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("port %q", port)
		}
	}
	a.prefixes = append(a.prefixes, prefixPattern{prefix: pfx.Masked(), port: port})
	return nil
}

// parsePrefix reads an address ("10.0.0.7", "::1") as a one-address
// prefix, or a CIDR prefix.
func parsePrefix(s string) (netip.Prefix, bool) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil || p.Addr().Zone() != "" {
			return netip.Prefix{}, false
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
		}
		return p, true
	}
	ip, err := netip.ParseAddr(s)
	if err != nil || ip.Zone() != "" {
		return netip.Prefix{}, false
	}
	ip = ip.Unmap()
	return netip.PrefixFrom(ip, ip.BitLen()), true
}

// AllowURL reports whether a workspace may use the sandbox at u. It looks
// at the URL only; the dialer checks the addresses.
func (a *AllowList) AllowURL(u *url.URL) bool {
	hp := hostPort(u)
	if hp == a.def {
		return true
	}
	host, port, _ := net.SplitHostPort(hp)
	if ip, err := netip.ParseAddr(host); err == nil && a.prefixAllows(ip.Unmap(), port) {
		return true
	}
	// Name globs apply to address literals too ("*" allows any URL); the
	// dialer still refuses an internal address no prefix names.
	for _, p := range a.names {
		if p.port != "" && p.port != port {
			continue
		}
		if ok, _ := path.Match(p.host, host); ok {
			return true
		}
	}
	return false
}

func (a *AllowList) prefixAllows(ip netip.Addr, port string) bool {
	for _, p := range a.prefixes {
		if (p.port == "" || p.port == port) && p.prefix.Contains(ip) {
			return true
		}
	}
	return false
}

// addrAllowed is the connect-time check: host:port is what the URL named,
// ip the address about to be connected to.
func (a *AllowList) addrAllowed(hostport string, ip netip.Addr, port string) bool {
	if hostport == a.def {
		return true
	}
	ip = ip.Unmap()
	if a.prefixAllows(ip, port) {
		return true
	}
	return !internalAddr(ip)
}

// internal are the ranges a sandbox name must not lead the node into
// unless a pattern names them: the node's own host, its networks, the
// cloud metadata services.
var internal = func() []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8",       // "this network": 0.0.0.0 reaches the host itself
		"10.0.0.0/8",      // private
		"100.64.0.0/10",   // shared address space (some clouds' metadata)
		"127.0.0.0/8",     // loopback
		"169.254.0.0/16",  // link-local, 169.254.169.254 the metadata service
		"172.16.0.0/12",   // private
		"192.0.0.0/24",    // IETF protocol assignments
		"192.168.0.0/16",  // private
		"198.18.0.0/15",   // benchmarking
		"224.0.0.0/4",     // multicast
		"240.0.0.0/4",     // reserved, broadcast
		"::/128",          // unspecified
		"::1/128",         // loopback
		"64:ff9b::/96",    // NAT64: an IPv4 address inside
		"64:ff9b:1::/48",  // local NAT64
		"fc00::/7",        // unique local, fd00:ec2::254 the metadata service
		"fe80::/10",       // link-local
		"ff00::/8",        // multicast
		"2001:db8::/32",   // documentation
		"2002::/16",       // 6to4: an IPv4 address inside
		"2001::/32",       // Teredo
		"100::/64",        // discard
		"::ffff:0:0/96",   // IPv4-mapped (unmapped before the check)
		"::ffff:0:0:0/96", // IPv4-translated
	} {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return ps
}()

func internalAddr(ip netip.Addr) bool {
	for _, p := range internal {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// addrError is a refused connection; Category gives the words events
// carry.
type addrError struct {
	host string
	ip   netip.Addr
}

func (e *addrError) Error() string {
	if !e.ip.IsValid() {
		return fmt.Sprintf("%v: %s", ErrAddressNotAllowed, e.host)
	}
	return fmt.Sprintf("%v: %s resolved to %s", ErrAddressNotAllowed, e.host, e.ip)
}
func (e *addrError) Unwrap() error    { return ErrAddressNotAllowed }
func (e *addrError) Category() string { return "address not allowed" }

// DialContext connects to addr ("host:port", as the HTTP transport asks)
// when the URL allow-list allows it and the address it resolves to passes
// the check, made on the very address connected to (so that a name
// rebound after an earlier check gains nothing).
func (a *AllowList) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("sandbox: dial %q: %w", addr, err)
	}
	hostport := net.JoinHostPort(strings.ToLower(host), port)
	if !a.AllowURL(&url.URL{Scheme: "http", Host: hostport}) {
		return nil, &addrError{host: host}
	}
	d := net.Dialer{
		Timeout:   10 * time.Second,
		KeepAlive: 30 * time.Second,
		Control: func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("sandbox: dial %s: %w", address, err)
			}
			if !a.addrAllowed(hostport, ap.Addr(), port) {
				return &addrError{host: host, ip: ap.Addr()}
			}
			return nil
		},
	}
	return d.DialContext(ctx, network, addr)
}

// HTTPClient returns a client for Sandbox Agent servers that dials
// through the allow-list, never uses a proxy from the environment (which
// would connect on our behalf, unchecked) and follows no redirect (the
// ACP client refuses them too).
func (a *AllowList) HTTPClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			DialContext:           a.DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          100,
			MaxIdleConnsPerHost:   32,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return acp.ErrRedirect },
	}
}

// hostPort is u's host and port, the port made explicit, lower case.
func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	return net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}
