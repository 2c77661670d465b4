package httpapi

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/tandem-dev/tandem/auth"
)

// Authenticator turns a request into its caller.
type Authenticator interface {
	// Authenticate returns the caller, and whether the credential came
	// from the session cookie (which unsafe requests must back with the
	// CSRF header). It fails with auth.ErrNoToken or auth.ErrInvalidToken.
	Authenticate(r *http.Request) (p auth.Principal, fromCookie bool, err error)
}

// CookieName is the HttpOnly cookie a browser's token travels in, so that
// EventSource (which cannot set headers) is authenticated too.
const CookieName = "tandem_token"

// SecureCookieName is the cookie's name over HTTPS: the __Host- prefix
// makes the browser insist on Secure, Path=/ and no Domain, so that no
// subdomain and no plain-HTTP page can plant one (with a token of its
// own) for the node's origin. Over HTTPS only this one is read.
const SecureCookieName = "__Host-" + CookieName

// overHTTPS reports whether the browser reached the node over HTTPS:
// directly, or through a proxy that says so (X-Forwarded-Proto, which
// the proxies in deploy/ set).
func overHTTPS(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// cookieName is the name of the token cookie for r.
func cookieName(r *http.Request) string {
	if overHTTPS(r) {
		return SecureCookieName
	}
	return CookieName
}

// CSRFHeader must accompany every unsafe request authenticated by the
// cookie: a cross-site page cannot set it without a CORS preflight.
const CSRFHeader = "X-Tandem-Csrf"

// UserCookieName is the cookie a browser names its user in when there is
// no authentication (NoAuth): EventSource cannot send X-User-Id. JWTAuth
// never reads it.
const UserCookieName = "tandem_user"

// NoAuth trusts the caller: the user is the X-User-Id header, else the
// tandem_user cookie (default "anonymous"), with every role in every
// workspace. For local use only.
type NoAuth struct{}

// Authenticate implements Authenticator.
func (NoAuth) Authenticate(r *http.Request) (auth.Principal, bool, error) {
	u := r.Header.Get("X-User-Id")
	if u == "" {
		if c, err := r.Cookie(UserCookieName); err == nil {
			u = c.Value
		}
	}
	if u == "" {
		u = "anonymous"
	}
	if !auth.ValidUser(u) {
		return auth.Principal{}, false, errBadUser
	}
	return auth.Principal{User: u, Role: auth.RoleAdmin, Workspaces: []string{"*"}}, false, nil
}

var errBadUser = errors.New("invalid X-User-Id or tandem_user cookie")

// JWTAuth reads a bearer token from the Authorization header, or else from
// the session cookie; never from the URL, where it would end up in logs.
type JWTAuth struct{ Verifier *auth.Verifier }

// Authenticate implements Authenticator.
func (a JWTAuth) Authenticate(r *http.Request) (auth.Principal, bool, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return auth.Principal{}, false, auth.ErrInvalidToken
		}
		p, err := a.Verifier.Verify(strings.TrimSpace(tok))
		return p, false, err
	}
	if c, err := r.Cookie(cookieName(r)); err == nil && c.Value != "" {
		p, err := a.Verifier.Verify(c.Value)
		return p, true, err
	}
	return auth.Principal{}, false, auth.ErrNoToken
}

const principalKey = "tandem.principal"

// principal is the caller of a guarded route.
func principal(c echo.Context) auth.Principal {
	p, _ := c.Get(principalKey).(auth.Principal)
	return p
}

// guard authenticates the caller (401), validates the route's ids (400),
// and checks that the caller's token opens the workspace with at least
// role (403), in that order: nothing about a workspace is revealed to a
// caller who is not authenticated.
func (s *Server) guard(role auth.Role) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			p, fromCookie, err := s.authn.Authenticate(c.Request())
			if err != nil {
				return s.authError(c, err)
			}
			if fromCookie && !safeMethod(c.Request().Method) && c.Request().Header.Get(CSRFHeader) == "" {
				return newError(probForbidden, "a request authenticated by cookie must carry the "+CSRFHeader+" header")
			}
			if err := validateParams(c); err != nil {
				return err
			}
			if ws := c.Param("ws"); ws != "" && !p.Allows(ws, role) {
				if p.CanOpen(ws) {
					return newError(probForbidden, "your role ("+p.Role.String()+") may not do this; it needs "+role.String())
				}
				return newError(probForbidden, "your token does not open this workspace")
			}
			c.Set(principalKey, p)
			return next(c)
		}
	}
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

func (s *Server) authError(c echo.Context, err error) error {
	switch {
	case errors.Is(err, errBadUser):
		return newError(probInvalidUser, "X-User-Id (or the tandem_user cookie) must be 1-128 characters of [A-Za-z0-9._@+-]")
	case errors.Is(err, auth.ErrNoToken):
		c.Response().Header().Set("WWW-Authenticate", `Bearer realm="tandem"`)
		return newError(probUnauthenticated, "a bearer token is required")
	case errors.Is(err, auth.ErrExpired):
		c.Response().Header().Set("WWW-Authenticate", `Bearer realm="tandem", error="invalid_token", error_description="expired"`)
		return newError(probTokenExpired, "the token has expired")
	default:
		c.Response().Header().Set("WWW-Authenticate", `Bearer realm="tandem", error="invalid_token"`)
		return newError(probUnauthenticated, "the token is not valid")
	}
}

// setCookie: POST /v1/auth/cookie with a bearer token stores it in an
// HttpOnly cookie for the browser's EventSource and fetches.
func (s *Server) setCookie(c echo.Context) error {
	r := c.Request()
	if r.Header.Get("Authorization") == "" {
		c.Response().Header().Set("WWW-Authenticate", `Bearer realm="tandem"`)
		return newError(probUnauthenticated, "send the token as Authorization: Bearer <token>")
	}
	p, _, err := s.authn.Authenticate(r)
	if err != nil {
		return s.authError(c, err)
	}
	_, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	ck := &http.Cookie{
		Name: cookieName(r), Value: strings.TrimSpace(tok), Path: "/",
		HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: overHTTPS(r),
	}
	if !p.Expires.IsZero() {
		ck.Expires = p.Expires
		ck.MaxAge = max(1, int(time.Until(p.Expires).Seconds()))
	}
	http.SetCookie(c.Response(), ck)
	return c.JSON(http.StatusOK, s.me(p))
}

// clearCookie: DELETE /v1/auth/cookie forgets the browser's token.
func (s *Server) clearCookie(c echo.Context) error {
	r := c.Request()
	http.SetCookie(c.Response(), &http.Cookie{Name: cookieName(r), Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: overHTTPS(r)})
	return c.NoContent(http.StatusNoContent)
}

// whoami: GET /v1/auth/me is the caller as the node sees them.
func (s *Server) whoami(c echo.Context) error {
	p, _, err := s.authn.Authenticate(c.Request())
	if err != nil {
		return s.authError(c, err)
	}
	return c.JSON(http.StatusOK, s.me(p))
}

type meBody struct {
	// Auth is how the node authenticates: "none" (the caller names
	// themselves: X-User-Id or the tandem_user cookie) or "jwt".
	Auth       string   `json:"auth"`
	UserID     string   `json:"userId"`
	Role       string   `json:"role"`
	Workspaces []string `json:"workspaces"`
	ExpiresAt  *int64   `json:"expiresAt,omitempty"`
}

func (s *Server) me(p auth.Principal) meBody {
	mode := "jwt"
	if _, ok := s.authn.(NoAuth); ok {
		mode = "none"
	}
	b := meBody{Auth: mode, UserID: p.User, Role: p.Role.String(), Workspaces: p.Workspaces}
	if !p.Expires.IsZero() {
		ms := p.Expires.UnixMilli()
		b.ExpiresAt = &ms
	}
	return b
}
