package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Errors of Verify. ErrNoToken means none was presented; every other
// failure wraps ErrInvalidToken (ErrExpired for an expired one).
var (
	ErrNoToken      = errors.New("no token")
	ErrInvalidToken = errors.New("invalid token")
	ErrExpired      = fmt.Errorf("%w: expired", ErrInvalidToken)
)

// Config configures a Verifier. At least one of Secret and Keys is needed.
type Config struct {
	// Secret verifies HS256 tokens.
	Secret []byte
	// Keys verify RS256 (RSA keys) and ES256 (P-256 keys) tokens; a key
	// with a non-empty id is only used for tokens whose kid names it.
	Keys []PublicKey
	// Issuer and Audience, when set, must match iss and aud.
	Issuer, Audience string
	// Leeway absorbs clock skew on exp, nbf and iat (default 30s).
	Leeway time.Duration
	// Now is the clock (default time.Now); tests set it.
	Now func() time.Time
}

// PublicKey is a verification key and its id (kid).
type PublicKey struct {
	ID  string
	Key crypto.PublicKey
}

// Verifier checks tokens.
type Verifier struct {
	cfg     Config
	methods []string
	parser  *jwt.Parser
}

// NewVerifier returns a Verifier for cfg.
func NewVerifier(cfg Config) (*Verifier, error) {
	if len(cfg.Secret) == 0 && len(cfg.Keys) == 0 {
		return nil, errors.New("auth: a secret or public keys are required")
	}
	if len(cfg.Secret) > 0 && len(cfg.Secret) < 32 {
		return nil, errors.New("auth: the HS256 secret must be at least 32 bytes")
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	var methods []string
	if len(cfg.Secret) > 0 {
		methods = append(methods, "HS256")
	}
	for _, k := range cfg.Keys {
		switch key := k.Key.(type) {
		case *rsa.PublicKey:
			if key.N.BitLen() < 2048 {
				return nil, fmt.Errorf("auth: RSA key %q is shorter than 2048 bits", k.ID)
			}
			methods = appendOnce(methods, "RS256")
		case *ecdsa.PublicKey:
			if key.Curve.Params().Name != "P-256" {
				return nil, fmt.Errorf("auth: EC key %q is not on P-256", k.ID)
			}
			methods = appendOnce(methods, "ES256")
		default:
			return nil, fmt.Errorf("auth: key %q of type %T is not RSA or P-256", k.ID, k.Key)
		}
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(methods),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(cfg.Now),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	return &Verifier{cfg: cfg, methods: methods, parser: jwt.NewParser(opts...)}, nil
}

func appendOnce(s []string, v string) []string {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}

type claims struct {
	jwt.RegisteredClaims
	Workspaces []string `json:"workspaces"`
	Role       string   `json:"role"`
}

// maxTokenLen bounds what is parsed at all.
const maxTokenLen = 8 << 10

// Verify checks a token and returns its principal.
func (v *Verifier) Verify(token string) (Principal, error) {
	if token == "" {
		return Principal{}, ErrNoToken
	}
	if len(token) > maxTokenLen {
		return Principal{}, fmt.Errorf("%w: longer than %d bytes", ErrInvalidToken, maxTokenLen)
	}
	var c claims
	_, err := v.parser.ParseWithClaims(token, &c, v.key)
	if err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return Principal{}, ErrExpired
		}
		return Principal{}, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	if !validUser(c.Subject) {
		return Principal{}, fmt.Errorf("%w: sub must be 1-128 characters of [A-Za-z0-9._@+-]", ErrInvalidToken)
	}
	role, ok := ParseRole(c.Role)
	if !ok {
		return Principal{}, fmt.Errorf("%w: role must be viewer, member or admin", ErrInvalidToken)
	}
	if len(c.Workspaces) == 0 || len(c.Workspaces) > 256 {
		return Principal{}, fmt.Errorf("%w: workspaces must list 1 to 256 ids or patterns", ErrInvalidToken)
	}
	// The token is accepted until exp plus the leeway; that is when its
	// streams end.
	return Principal{User: c.Subject, Role: role, Workspaces: c.Workspaces, Expires: c.ExpiresAt.Time.Add(v.cfg.Leeway)}, nil
}

// key picks the verification key for a token; the parser has already
// refused algorithms outside the configured ones.
func (v *Verifier) key(t *jwt.Token) (any, error) {
	switch t.Method.Alg() {
	case "HS256":
		return v.cfg.Secret, nil
	case "RS256", "ES256":
		kid, _ := t.Header["kid"].(string)
		var keys []jwt.VerificationKey
		for _, k := range v.cfg.Keys {
			if k.ID != "" && k.ID != kid {
				continue
			}
			if _, rsaKey := k.Key.(*rsa.PublicKey); rsaKey == (t.Method.Alg() == "RS256") {
				keys = append(keys, k.Key)
			}
		}
		if len(keys) == 0 {
			return nil, fmt.Errorf("no key for kid %q", kid)
		}
		return jwt.VerificationKeySet{Keys: keys}, nil
	}
	return nil, fmt.Errorf("algorithm %s", t.Method.Alg())
}

// validUser: user ids as they appear in events and logs.
func validUser(u string) bool {
	if len(u) == 0 || len(u) > 128 {
		return false
	}
	for i := 0; i < len(u); i++ {
		c := u[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("._@+-", c) >= 0) {
			return false
		}
	}
	return true
}

// ValidUser reports whether u is a valid user id.
func ValidUser(u string) bool { return validUser(u) }
