package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

// BenchAppender appends synthetic events through the owner path, for the
// load tool (workspace.Manager).
type BenchAppender interface {
	BenchAppend(ctx context.Context, ws, sid string, count, batch, size, sessions int, rate float64) (int, time.Duration, error)
}

// benchAppend: POST /v1/workspaces/{ws}/sessions/{sid}/bench/append
// {"count","batch","size","sessions","rate"}: served only when Deps.Bench is set
// (TANDEM_BENCH_ROUTES), and to admins of the workspace only.
func (s *Server) benchAppend(c echo.Context) error {
	var body struct {
		Count    int     `json:"count"`
		Batch    int     `json:"batch"`
		Size     int     `json:"size"`
		Sessions int     `json:"sessions"`
		Rate     float64 `json:"rate"`
	}
	if err := s.decodeBody(c, &body, false); err != nil {
		return err
	}
	if body.Batch == 0 {
		body.Batch = 1
	}
	n, d, err := s.deps.Bench.BenchAppend(c.Request().Context(), c.Param("ws"), c.Param("sid"), body.Count, body.Batch, body.Size, body.Sessions, body.Rate)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"appended": n, "seconds": d.Seconds()})
}
