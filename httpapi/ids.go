package httpapi

import (
	"crypto/rand"
	"encoding/hex"

	"github.com/labstack/echo/v4"
)

// ValidID reports whether s is a valid workspace or session id: 1 to 128
// characters of [A-Za-z0-9._-].
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// validateParams refuses a request whose :ws or :sid parameter is not a
// valid id.
func validateParams(c echo.Context) error {
	for _, name := range []string{"ws", "sid"} {
		if v := c.Param(name); v != "" || hasParam(c, name) {
			if !ValidID(v) {
				return newError(probInvalidID, name+" must be 1-128 characters of [A-Za-z0-9._-]")
			}
		}
	}
	return nil
}

func hasParam(c echo.Context, name string) bool {
	for _, n := range c.ParamNames() {
		if n == name {
			return true
		}
	}
	return false
}

func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
