package auth_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/tandem-dev/tandem/auth"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

func sign(t testing.TB, m jwt.SigningMethod, key any, c jwt.MapClaims, kid string) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func claims(over map[string]any) jwt.MapClaims {
	c := jwt.MapClaims{
		"sub": "ann", "role": "member", "workspaces": []string{"team-*", "solo"},
		"exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(),
		"iss": "tandem-test", "aud": "tandem",
	}
	for k, v := range over {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func TestVerifyHS256(t *testing.T) {
	v, err := auth.NewVerifier(auth.Config{Secret: secret, Issuer: "tandem-test", Audience: "tandem", Leeway: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	none := func() string {
		s, _ := jwt.NewWithClaims(jwt.SigningMethodNone, claims(nil)).SignedString(jwt.UnsafeAllowNoneSignatureType)
		return s
	}
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	for _, tc := range []struct {
		name  string
		token string
		err   error
	}{
		{"OK", sign(t, jwt.SigningMethodHS256, secret, claims(nil), ""), nil},
		{"ErrNoToken", "", auth.ErrNoToken},
		{"ErrExpired", sign(t, jwt.SigningMethodHS256, secret, claims(map[string]any{"exp": time.Now().Add(-time.Minute).Unix()}), ""), auth.ErrExpired},
		{"ErrInvalidToken bad signature", sign(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-xx"), claims(nil), ""), auth.ErrInvalidToken},
		{"ErrInvalidToken alg none", none(), auth.ErrInvalidToken},
		{"ErrInvalidToken RS256 without keys", sign(t, jwt.SigningMethodRS256, rsaKey, claims(nil), ""), auth.ErrInvalidToken},
		{"ErrInvalidToken HS384", sign(t, jwt.SigningMethodHS384, secret, claims(nil), ""), auth.ErrInvalidToken},
		{"ErrInvalidToken wrong audience", sign(t, jwt.SigningMethodHS256, secret, claims(map[string]any{"aud": "other"}), ""), auth.ErrInvalidToken},
		{"ErrInvalidToken wrong issuer", sign(t, jwt.SigningMethodHS256, secret, claims(map[string]any{"iss": "evil"}), ""), auth.ErrInvalidToken},
		{"ErrInvalidToken no exp", sign(t, jwt.SigningMethodHS256, secret, claims(map[string]any{"exp": nil}), ""), auth.ErrInvalidToken},
		{"ErrInvalidToken not yet valid", sign(t, jwt.SigningMethodHS256, secret, claims(map[string]any{"nbf": time.Now().Add(time.Hour).Unix()}), ""), auth.ErrInvalidToken},
		{"ErrInvalidToken no sub", sign(t, jwt.SigningMethodHS256, secret, claims(map[string]any{"sub": nil}), ""), auth.ErrInvalidToken},
		{"ErrInvalidToken sub with spaces", sign(t, jwt.SigningMethodHS256, secret, claims(map[string]any{"sub": "a b"}), ""), auth.ErrInvalidToken},
		{"ErrInvalidToken unknown role", sign(t, jwt.SigningMethodHS256, secret, claims(map[string]any{"role": "owner"}), ""), auth.ErrInvalidToken},
		{"ErrInvalidToken no workspaces", sign(t, jwt.SigningMethodHS256, secret, claims(map[string]any{"workspaces": []string{}}), ""), auth.ErrInvalidToken},
		{"ErrInvalidToken garbage", "a.b.c", auth.ErrInvalidToken},
		{"ErrInvalidToken huge", strings.Repeat("a", 9000), auth.ErrInvalidToken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := v.Verify(tc.token)
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if tc.err == nil && (p.User != "ann" || p.Role != auth.RoleMember || !p.CanOpen("team-red") || !p.CanOpen("solo") || p.CanOpen("other")) {
				t.Fatalf("principal %+v", p)
			}
		})
	}
}

func TestVerifyLeeway(t *testing.T) {
	now := time.Now()
	v, _ := auth.NewVerifier(auth.Config{Secret: secret, Leeway: 10 * time.Second, Now: func() time.Time { return now }})
	tok := sign(t, jwt.SigningMethodHS256, secret, claims(map[string]any{"exp": now.Add(-5 * time.Second).Unix(), "iss": nil, "aud": nil}), "")
	if _, err := v.Verify(tok); err != nil {
		t.Fatalf("5s past exp with 10s leeway: %v", err)
	}
	tok = sign(t, jwt.SigningMethodHS256, secret, claims(map[string]any{"exp": now.Add(-15 * time.Second).Unix(), "iss": nil, "aud": nil}), "")
	if _, err := v.Verify(tok); !errors.Is(err, auth.ErrExpired) {
		t.Fatalf("15s past exp: %v", err)
	}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func TestVerifyPublicKeys(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	jwks, _ := json.Marshal(map[string]any{"keys": []map[string]string{
		{"kty": "RSA", "kid": "r1", "use": "sig", "n": b64(rsaKey.N.Bytes()), "e": b64(big.NewInt(int64(rsaKey.E)).Bytes())},
		{"kty": "EC", "kid": "e1", "crv": "P-256", "x": b64(ecKey.X.FillBytes(make([]byte, 32))), "y": b64(ecKey.Y.FillBytes(make([]byte, 32)))},
	}})
	der, _ := x509.MarshalPKIXPublicKey(&ecKey.PublicKey)
	pemKeys := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	for _, src := range []struct {
		name string
		data []byte
	}{{"JWKS", jwks}, {"PEM", pemKeys}} {
		t.Run(src.name, func(t *testing.T) {
			keys, err := auth.ParseKeys(src.data)
			if err != nil {
				t.Fatal(err)
			}
			v, err := auth.NewVerifier(auth.Config{Keys: keys})
			if err != nil {
				t.Fatal(err)
			}
			c := claims(map[string]any{"iss": nil, "aud": nil})
			if _, err := v.Verify(sign(t, jwt.SigningMethodES256, ecKey, c, "e1")); err != nil {
				t.Errorf("ES256: %v", err)
			}
			if src.name == "JWKS" {
				if _, err := v.Verify(sign(t, jwt.SigningMethodRS256, rsaKey, c, "r1")); err != nil {
					t.Errorf("RS256: %v", err)
				}
				if _, err := v.Verify(sign(t, jwt.SigningMethodRS256, rsaKey, c, "e1")); err == nil {
					t.Error("RS256 under an EC key's kid was accepted")
				}
			}
			if _, err := v.Verify(sign(t, jwt.SigningMethodRS256, other, c, "r1")); !errors.Is(err, auth.ErrInvalidToken) {
				t.Errorf("foreign RSA key: %v", err)
			}
			if _, err := v.Verify(sign(t, jwt.SigningMethodHS256, []byte(src.name), c, "")); !errors.Is(err, auth.ErrInvalidToken) {
				t.Errorf("HS256 without a secret (key confusion): %v", err)
			}
		})
	}
}

func FuzzVerify(f *testing.F) {
	v, _ := auth.NewVerifier(auth.Config{Secret: secret})
	f.Add(sign(f, jwt.SigningMethodHS256, secret, claims(nil), ""))
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("..")
	f.Add("a.b.c.d")
	f.Fuzz(func(t *testing.T, tok string) {
		p, err := v.Verify(tok)
		if err == nil && (p.User == "" || p.Role == auth.RoleNone || len(p.Workspaces) == 0) {
			t.Fatalf("accepted %q as %+v", tok, p)
		}
	})
}

func FuzzParseKeys(f *testing.F) {
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}`))
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = auth.ParseKeys(b)
	})
}
