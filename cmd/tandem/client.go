package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"github.com/tandem-dev/tandem/version"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// apiFlags are the flags every client command shares: where the node is
// and who the caller is, the same as curl would send.
type apiFlags struct {
	URL   string
	Token string
	User  string
}

func (a *apiFlags) register(fs *flag.FlagSet) {
	e := &envFlags{fs: fs}
	e.str(&a.URL, "url", "TANDEM_URL", "http://127.0.0.1:8080", "the node (or load balancer) to talk to")
	e.str(&a.Token, "token", "TANDEM_TOKEN", "", "bearer token (a JWT when the node runs with TANDEM_AUTH=jwt)")
	e.str(&a.User, "user", "TANDEM_USER", "", "X-User-Id: who you are when the node runs without authentication")
}

// header is what every request carries.
func (a *apiFlags) header() http.Header {
	h := http.Header{}
	if a.Token != "" {
		h.Set("Authorization", "Bearer "+a.Token)
	}
	if a.User != "" {
		h.Set("X-User-Id", a.User)
	}
	h.Set("User-Agent", "tandem/"+version.Get().Version)
	return h
}

// sessionURL is the URL of a session's route, path elements escaped.
func (a *apiFlags) sessionURL(ws, sid, rest string) (string, error) {
	base, err := url.Parse(strings.TrimRight(a.URL, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return "", usageErrorf("--url %q: want http(s)://host[:port]", a.URL)
	}
	return base.String() + "/v1/workspaces/" + url.PathEscape(ws) + "/sessions/" + url.PathEscape(sid) + rest, nil
}

// problem is an API error (RFC 9457 problem+json).
type problem struct {
	Status int    `json:"status"`
	Type   string `json:"type"`
	Title  string `json:"title"`
	Detail string `json:"detail"`
	Oldest string `json:"oldest"` // 410: the oldest event kept
}

func (p *problem) Error() string {
	code := strings.TrimPrefix(p.Type, "urn:tandem:error:")
	msg := p.Detail
	if msg == "" {
		msg = p.Title
	}
	return fmt.Sprintf("%d %s: %s", p.Status, code, msg)
}

// call sends one request and decodes a 2xx JSON answer into out; any other
// answer is returned as a *problem.
func (a *apiFlags) call(ctx context.Context, method, u string, hdr http.Header, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	req.Header = a.header()
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		p := &problem{Status: resp.StatusCode}
		if json.Unmarshal(raw, p) != nil || p.Status == 0 {
			p.Status, p.Title = resp.StatusCode, strings.TrimSpace(string(raw))
		}
		if p.Title == "" && p.Detail == "" {
			p.Title = http.StatusText(resp.StatusCode)
		}
		return p
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("%s %s: %d with an unreadable body: %w", method, u, resp.StatusCode, err)
		}
	}
	return nil
}

// parseArgs parses flags wherever they are among the arguments ("tandem
// tail demo --json" as well as "tandem tail --json demo") and returns the
// others in order. "--" ends the flags; "-" alone is an argument.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		f := fs.Lookup(name)
		if f == nil {
			continue // Parse reports it
		}
		if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
			continue
		}
		if i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	if err := fs.Parse(flags); err != nil {
		return nil, err
	}
	return pos, nil
}

// readText returns text, or standard input when text is "-".
func readText(text string) (string, error) {
	if text != "-" {
		return text, nil
	}
	b, err := io.ReadAll(io.LimitReader(os.Stdin, 1<<20))
	if err != nil {
		return "", fmt.Errorf("read the prompt from standard input: %w", err)
	}
	return strings.TrimRight(string(b), "\n"), nil
}
