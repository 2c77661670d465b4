package httpapi

import (
	"io/fs"
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/tandem-dev/tandem/web"
)

// pageHeaders are set on every page and asset: a strict CSP (the node's
// own origin only) and no sniffing, framing or referrers.
func pageHeaders(h http.Header) {
	h.Set("Content-Security-Policy", web.CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
}

// index serves the web client's page at /, /w/{ws} and /w/{ws}/s/{sid}; the page's script
// reads the location.
func (s *Server) index(c echo.Context) error {
	if ws := c.Param("ws"); ws != "" && !ValidID(ws) {
		return newError(probInvalidID, "ws must be 1-128 characters of [A-Za-z0-9._-]")
	}
	if sid := c.Param("sid"); sid != "" && !ValidID(sid) {
		return newError(probInvalidID, "sid must be 1-128 characters of [A-Za-z0-9._-]")
	}
	b, err := fs.ReadFile(web.Static(), "index.html")
	if err != nil {
		return err
	}
	pageHeaders(c.Response().Header())
	return c.HTMLBlob(http.StatusOK, b)
}

// assets serves /static/*.
func (s *Server) assets() echo.HandlerFunc {
	files := http.StripPrefix("/static/", http.FileServer(http.FS(web.Static())))
	return func(c echo.Context) error {
		name := c.Param("*")
		if st, err := fs.Stat(web.Static(), name); err != nil || st.IsDir() || name == "index.html" {
			return newError(probNotFound, "no such file")
		}
		pageHeaders(c.Response().Header())
		files.ServeHTTP(c.Response(), c.Request())
		return nil
	}
}
