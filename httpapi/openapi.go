package httpapi

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sync"

	"github.com/labstack/echo/v4"
	"github.com/tandem-dev/tandem/version"
	"gopkg.in/yaml.v3"
)

// OpenAPIYAML is the OpenAPI 3.1 description of the v1 API, kept next to
// the routes; tests validate real responses against it
// (node/openapi_walk_test.go).
//
//go:embed openapi.yaml
var OpenAPIYAML []byte

var openapiJSON = sync.OnceValues(func() ([]byte, error) {
	var doc any
	if err := yaml.Unmarshal(OpenAPIYAML, &doc); err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	return json.Marshal(doc)
})

// OpenAPIJSON is the document as GET /v1/openapi.json serves it.
func OpenAPIJSON() ([]byte, error) { return openapiJSON() }

func (s *Server) openapi(c echo.Context) error {
	b, err := openapiJSON()
	if err != nil {
		return err
	}
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, b)
}

func (s *Server) version(c echo.Context) error {
	return c.JSON(http.StatusOK, version.Get())
}

// Route is a registered route, its path in OpenAPI form (/v1/workspaces/{ws}).
type Route struct{ Method, Path string }

var echoParam = regexp.MustCompile(`:([A-Za-z0-9_]+)`)

// Routes lists the routes the server registered (so that a test can hold
// them against the OpenAPI document); echo's wildcard * is {asset}.
func (s *Server) Routes() []Route {
	var out []Route
	for _, r := range s.e.Routes() {
		p := echoParam.ReplaceAllString(r.Path, "{$1}")
		if len(p) > 0 && p[len(p)-1] == '*' {
			p = p[:len(p)-1] + "{asset}"
		}
		out = append(out, Route{Method: r.Method, Path: p})
	}
	return out
}
