package acp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"syscall"
)

// ErrRedirect is the error of an answer that redirects: a Client never
// follows one, since it could lead the node anywhere (another host, its
// own network), and a 307 or 308 would resend the request there.
var ErrRedirect = errors.New("acp: redirect refused")

// ErrUnexpectedAnswer is the error of a 200 answer that is not what the
// route answers (a health check that is not {"status":"ok"}).
var ErrUnexpectedAnswer = errors.New("acp: unexpected answer")

func refuseRedirect(*http.Request, []*http.Request) error { return ErrRedirect }

// Describe says what went wrong with a call to a Sandbox Agent server in
// Tandem's own words, a status code and a category, for events every
// viewer of a workspace reads. It never carries what the server (or
// whatever answered in its place) wrote: that could be anything the
// network it sits in serves.
func Describe(err error) string {
	var se *StatusError
	var cat interface{ Category() string }
	var dns *net.DNSError
	var ne net.Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &se):
		kind := "unexpected status"
		switch {
		case se.Status == http.StatusUnauthorized || se.Status == http.StatusForbidden:
			kind = "refused the credentials"
		case se.Status >= 300 && se.Status < 400:
			kind = "redirect refused"
		case se.Status >= 400 && se.Status < 500:
			kind = "client error"
		case se.Status >= 500:
			kind = "server error"
		}
		return fmt.Sprintf("status %d (%s)", se.Status, kind)
	case errors.Is(err, ErrRedirect):
		return "redirect refused"
	case errors.As(err, &cat):
		return cat.Category()
	case errors.Is(err, ErrUnexpectedAnswer):
		return "unexpected answer"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	case errors.As(err, &dns):
		return "name not resolved"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "connection reset"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "unreachable"
	}
	return "connection failed"
}
