package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"

	"github.com/labstack/echo/v4"
)

// metrics: GET /metrics, behind Config.MetricsToken when one is set (the
// metrics say which workspaces are busy; a node with an ops listener
// serves them there instead).
func (s *Server) metrics(c echo.Context) error {
	if tok := s.cfg.MetricsToken; tok != "" {
		want := sha256.Sum256([]byte("Bearer " + tok))
		got := sha256.Sum256([]byte(c.Request().Header.Get("Authorization")))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="tandem-metrics"`)
			return newError(probUnauthenticated, "the metrics need the bearer token (TANDEM_METRICS_TOKEN)")
		}
	}
	s.deps.Metrics.ServeHTTP(c.Response(), c.Request())
	return nil
}
