package httpapi_test

import (
	"context"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tandem-dev/tandem/workspace"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/tandem-dev/tandem/httpapi"
)

// The document is valid OpenAPI 3.1 (kin-openapi's own validation), and
// what /v1/openapi.json serves is it.
func TestOpenAPIDocumentValid(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(httpapi.OpenAPIYAML)
	if err != nil {
		t.Fatal(err)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi %s, want 3.1", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatal(err)
	}
	h := httpapi.New(httpapi.Deps{Events: &fakeEvents{}, Streams: &fakeStreams{}}, httpapi.Config{})
	rec, _ := do(t, h, "GET", "/v1/openapi.json", nil)
	served, err := openapi3.NewLoader().LoadFromData(rec.Body.Bytes())
	if rec.Code != 200 || err != nil || served.Paths.Len() != doc.Paths.Len() {
		t.Fatalf("%d %v", rec.Code, err)
	}
	rec, _ = do(t, h, "GET", "/v1/version", nil)
	var v struct{ Version, GoVersion string }
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &v) != nil || v.Version == "" || !strings.HasPrefix(v.GoVersion, "go") {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
}

// RouteSet returns the routes of a server with every dependency, as
// "METHOD /path".
func routeSet(s *httpapi.Server) []string {
	var out []string
	for _, r := range s.Routes() {
		out = append(out, r.Method+" "+r.Path)
	}
	sort.Strings(out)
	return out
}

// Every route a node registers is in the document and every operation of
// the document is a registered route (the node's own wiring is walked in
// node/openapi_walk_test.go with every optional route on).
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(httpapi.OpenAPIYAML)
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}
	got := RoutesOfFullServer(t)
	registered := map[string]bool{}
	for _, r := range got {
		registered[r] = true
		if !documented[r] {
			t.Errorf("route %s is not in openapi.yaml", r)
		}
	}
	for r := range documented {
		if !registered[r] {
			t.Errorf("openapi.yaml documents %s, which no route serves", r)
		}
	}
}

type noBench struct{}

func (noBench) BenchAppend(context.Context, string, string, int, int, int, int, float64) (int, time.Duration, error) {
	return 0, 0, nil
}

// RoutesOfFullServer is the route set with every optional route on: the
// workspace routes (a nil *workspace.Manager only registers them), the
// metrics and the load tool's route.
func RoutesOfFullServer(t *testing.T) []string {
	s := httpapi.New(httpapi.Deps{
		Events: &fakeEvents{}, Streams: &fakeStreams{},
		Workspaces: (*workspace.Manager)(nil),
		Metrics:    http.NotFoundHandler(),
		Bench:      noBench{},
	}, httpapi.Config{})
	got := routeSet(s)
	if len(got) < 25 {
		t.Fatalf("only %d routes: %v", len(got), got)
	}
	return got
}

// Every problem type the code can answer (each problemKind literal of the
// package) is in the document's list, and the list names no other.
func TestOpenAPIListsEveryProblemType(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(httpapi.OpenAPIYAML)
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, v := range doc.Components.Schemas["Problem"].Value.Properties["type"].Value.Enum {
		listed[v.(string)] = true
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	emitted := map[string]bool{}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.CompositeLit)
			if !ok {
				return true
			}
			if id, ok := lit.Type.(*ast.Ident); !ok || id.Name != "problemKind" || len(lit.Elts) == 0 {
				return true
			}
			code, ok := lit.Elts[0].(*ast.BasicLit)
			if !ok || code.Kind != token.STRING {
				t.Errorf("%s: a problemKind whose code is not a literal", fset.Position(lit.Pos()))
				return true
			}
			emitted["urn:tandem:error:"+strings.Trim(code.Value, `"`)] = true
			return true
		})
	}
	if len(emitted) < 30 {
		t.Fatalf("found only %d problem kinds", len(emitted))
	}
	for typ := range emitted {
		if !listed[typ] {
			t.Errorf("the code answers %s, which openapi.yaml does not list", typ)
		}
	}
	for typ := range listed {
		if !emitted[typ] {
			t.Errorf("openapi.yaml lists %s, which no code answers", typ)
		}
	}
}
