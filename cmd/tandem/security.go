package main

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/tandem-dev/tandem/auth"
	"github.com/tandem-dev/tandem/httpapi"
)

// security is the configuration of authentication and limits.
type security struct {
	Auth            string
	AllowRemoteNone bool
	JWTSecret       string
	JWTKeys         string
	JWTIssuer       string
	JWTAudience     string
	JWTLeeway       time.Duration
	SandboxAllow    string
	CORSOrigins     string
	MaxBodyBytes    int64
	MaxPromptBytes  int64
	PromptRate      float64
	PromptBurst     int64
	MaxStreams      int64
	LocalWithJWT    bool
	CommandRate     float64
	CommandBurst    int64
	MaxSessions     int64
	MaxWorkspaces   int64
	MaxEventBytes   int64
}

func (s *security) register(e *envFlags) {
	e.str(&s.Auth, "auth", "TANDEM_AUTH", "none", "authentication: none (local use only) or jwt")
	e.boolean(&s.AllowRemoteNone, "auth-none-allow-remote", "TANDEM_AUTH_NONE_ALLOW_REMOTE", "listen on a non-loopback address without authentication (never in production)")
	e.secret(&s.JWTSecret, "jwt-secret", "TANDEM_JWT_SECRET", "", "HS256 secret (at least 32 bytes)")
	e.str(&s.JWTKeys, "jwt-keys", "TANDEM_JWT_KEYS", "", "file of RS256/ES256 public keys: PEM or JWKS")
	e.str(&s.JWTIssuer, "jwt-issuer", "TANDEM_JWT_ISSUER", "", "required iss claim")
	e.str(&s.JWTAudience, "jwt-audience", "TANDEM_JWT_AUDIENCE", "", "required aud claim")
	e.dur(&s.JWTLeeway, "jwt-leeway", "TANDEM_JWT_LEEWAY", 30*time.Second, "clock skew allowed on exp, nbf and iat")
	e.str(&s.SandboxAllow, "sandbox-allow", "TANDEM_SANDBOX_ALLOW", "", "comma-separated host or host:port patterns workspaces may use as sandbox (the default sandbox is always allowed)")
	e.str(&s.CORSOrigins, "cors-origins", "TANDEM_CORS_ORIGINS", "", "comma-separated origins of browser apps allowed to call the API (default none)")
	e.int64(&s.MaxBodyBytes, "max-body-bytes", "TANDEM_MAX_BODY_BYTES", 1<<20, "largest request body")
	e.int64(&s.MaxPromptBytes, "max-prompt-bytes", "TANDEM_MAX_PROMPT_BYTES", 32<<10, "largest prompt text")
	e.float(&s.PromptRate, "prompt-rate", "TANDEM_PROMPT_RATE", 2, "prompts per second per user and workspace (negative: unlimited)")
	e.int64(&s.PromptBurst, "prompt-burst", "TANDEM_PROMPT_BURST", 10, "burst of prompts allowed above the rate")
	e.int64(&s.MaxStreams, "max-streams-per-user", "TANDEM_MAX_STREAMS_PER_USER", 32, "open streams per user on one node")
	e.float(&s.CommandRate, "command-rate", "TANDEM_COMMAND_RATE", 1, "session creates, cancels and destroys per second per user and workspace, each kind its own bucket (negative: unlimited)")
	e.int64(&s.CommandBurst, "command-burst", "TANDEM_COMMAND_BURST", 20, "burst of those commands allowed above the rate")
	e.int64(&s.MaxSessions, "max-sessions-per-workspace", "TANDEM_MAX_SESSIONS_PER_WORKSPACE", 1000, "session records a workspace may hold, destroyed ones included (negative: no cap)")
	e.int64(&s.MaxWorkspaces, "max-workspaces-per-user", "TANDEM_MAX_WORKSPACES_PER_USER", 100, "workspaces one user may create (negative: no cap)")
	e.int64(&s.MaxEventBytes, "max-event-bytes", "TANDEM_MAX_EVENT_BYTES", 1<<20, "largest agent message stored whole; a larger one is stored cut, with a marker and its full size (negative: no bound)")
	e.boolean(&s.LocalWithJWT, "sandbox-local-with-jwt", "TANDEM_SANDBOX_LOCAL_WITH_JWT", "with TANDEM_AUTH=jwt, run the local sandbox anyway: its agents share the node's host (its files, its network, its processes)")
}

// validate checks the settings; without authentication the node refuses
// any address but loopback unless forced.
func (s *security) validate(addr string, localSandbox bool) error {
	switch s.Auth {
	case "none":
		host, _, _ := net.SplitHostPort(addr)
		if !isLoopback(host) && !s.AllowRemoteNone {
			return fmt.Errorf("refusing to listen on %s without authentication: set TANDEM_AUTH=jwt (or, never in production, TANDEM_AUTH_NONE_ALLOW_REMOTE=1)", addr)
		}
	case "jwt":
		if s.JWTSecret == "" && s.JWTKeys == "" {
			return errors.New("TANDEM_AUTH=jwt needs TANDEM_JWT_SECRET or TANDEM_JWT_KEYS")
		}
		if localSandbox && !s.LocalWithJWT {
			return errors.New("TANDEM_AUTH=jwt with the local sandbox: every member's agent would run on the node's own host; give a sandbox managed elsewhere (TANDEM_SANDBOX_URL), or set TANDEM_SANDBOX_LOCAL_WITH_JWT=1 to accept that")
		}
	default:
		return fmt.Errorf("TANDEM_AUTH=%q: want none or jwt", s.Auth)
	}
	if s.MaxBodyBytes < 1024 || s.MaxPromptBytes < 1 || s.PromptBurst < 1 || s.CommandBurst < 1 || s.MaxSessions == 0 || s.MaxWorkspaces == 0 {
		return errors.New("limits: body at least 1 KiB, prompt at least 1 byte, burst at least 1")
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// authenticator builds the configured Authenticator.
func (s *security) authenticator() (httpapi.Authenticator, error) {
	if s.Auth != "jwt" {
		return httpapi.NoAuth{}, nil
	}
	cfg := auth.Config{Secret: []byte(s.JWTSecret), Issuer: s.JWTIssuer, Audience: s.JWTAudience, Leeway: s.JWTLeeway}
	if s.JWTKeys != "" {
		keys, err := auth.LoadKeys(s.JWTKeys)
		if err != nil {
			return nil, err
		}
		cfg.Keys = keys
	}
	v, err := auth.NewVerifier(cfg)
	if err != nil {
		return nil, err
	}
	return httpapi.JWTAuth{Verifier: v}, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
