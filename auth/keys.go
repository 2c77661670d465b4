package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"strings"
)

// LoadKeys reads verification keys from a file: a JWKS document
// ({"keys":[...]}, RSA and EC P-256 keys), or PEM blocks of PUBLIC KEY,
// RSA PUBLIC KEY or CERTIFICATE.
func LoadKeys(path string) ([]PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: keys: %w", err)
	}
	return ParseKeys(b)
}

// ParseKeys parses what LoadKeys reads.
func ParseKeys(b []byte) ([]PublicKey, error) {
	if s := strings.TrimSpace(string(b)); strings.HasPrefix(s, "{") {
		return parseJWKS(b)
	}
	var keys []PublicKey
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		switch blk.Type {
		case "PUBLIC KEY":
			k, err := x509.ParsePKIXPublicKey(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("auth: PEM public key: %w", err)
			}
			keys = append(keys, PublicKey{Key: k})
		case "RSA PUBLIC KEY":
			k, err := x509.ParsePKCS1PublicKey(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("auth: PEM RSA public key: %w", err)
			}
			keys = append(keys, PublicKey{Key: k})
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("auth: PEM certificate: %w", err)
			}
			keys = append(keys, PublicKey{Key: c.PublicKey})
		default:
			return nil, fmt.Errorf("auth: PEM block %q is not a public key", blk.Type)
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("auth: no public key found")
	}
	return keys, nil
}

type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

func parseJWKS(b []byte) ([]PublicKey, error) {
	var set struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("auth: JWKS: %w", err)
	}
	var keys []PublicKey
	for i, k := range set.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		dec := func(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "=")) }
		switch k.Kty {
		case "RSA":
			n, err1 := dec(k.N)
			e, err2 := dec(k.E)
			if err1 != nil || err2 != nil || len(n) == 0 || len(e) == 0 || len(e) > 4 {
				return nil, fmt.Errorf("auth: JWKS key %d: bad RSA modulus or exponent", i)
			}
			keys = append(keys, PublicKey{ID: k.Kid, Key: &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}})
		case "EC":
			if k.Crv != "P-256" {
				return nil, fmt.Errorf("auth: JWKS key %d: curve %q is not P-256", i, k.Crv)
			}
			x, err1 := dec(k.X)
			y, err2 := dec(k.Y)
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("auth: JWKS key %d: bad EC point", i)
			}
			pub := &ecdsa.PublicKey{Curve: elliptic.P256(), X: new(big.Int).SetBytes(x), Y: new(big.Int).SetBytes(y)}
			if !pub.Curve.IsOnCurve(pub.X, pub.Y) {
				return nil, fmt.Errorf("auth: JWKS key %d: point not on P-256", i)
			}
			keys = append(keys, PublicKey{ID: k.Kid, Key: pub})
		default:
			return nil, fmt.Errorf("auth: JWKS key %d: key type %q is not RSA or EC", i, k.Kty)
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("auth: JWKS holds no signing key")
	}
	return keys, nil
}
