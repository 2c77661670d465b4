package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/tandem-dev/tandem/acp"
)

var (
	// ErrCannotRestart is returned by EnsureServer of a provider that found
	// the server unhealthy and has no way to restart it.
	ErrCannotRestart = errors.New("sandbox: server unhealthy and cannot be restarted")

	// ErrNotRunning is returned by Local.EnsureServer once Run has returned.
	ErrNotRunning = errors.New("sandbox: local provider stopped")
)

// Provider gives access to one Sandbox Agent server.
type Provider interface {
	// BaseURL is the server's base URL, such as "http://127.0.0.1:2468". It
	// does not change over the provider's life.
	BaseURL() string

	// Token is the bearer token the server wants, or "" for none.
	Token() string

	// EnsureServer returns nil once the server answers its health check,
	// restarting it first when it does not and the provider can. It returns
	// ErrCannotRestart (wrapped, with the health error) when the provider
	// cannot restart it, ErrNotRunning when a Local has stopped, and
	// ctx.Err() when ctx ends first. A restarted server has lost its ACP
	// connections.
	EnsureServer(ctx context.Context) error
}

var (
	_ Provider = (*Static)(nil)
	_ Provider = (*Local)(nil)
)

// Static is a server managed elsewhere.
type Static struct {
	URL         string
	BearerToken string
	// HTTPClient makes the health checks (nil: the ACP client's default);
	// the node's dials through its AllowList.
	HTTPClient *http.Client
}

// BaseURL implements Provider.
func (s *Static) BaseURL() string { return s.URL }

// Token implements Provider.
func (s *Static) Token() string { return s.BearerToken }

// EnsureServer checks the server's health; it cannot restart it.
func (s *Static) EnsureServer(ctx context.Context) error {
	c, err := acp.New(acp.Config{BaseURL: s.URL, Token: s.BearerToken, HTTPClient: s.HTTPClient})
	if err != nil {
		return err
	}
	if err := c.Health(ctx); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: %w", ErrCannotRestart, err)
	}
	return nil
}
