package node_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"
	"github.com/tandem-dev/tandem/httpapi"
	"github.com/tandem-dev/tandem/internal/nodetest"
	"github.com/tandem-dev/tandem/internal/redistest"
	"github.com/tandem-dev/tandem/internal/sandboxtest"
	"github.com/tandem-dev/tandem/internal/ssetest"
	"github.com/tandem-dev/tandem/node"
)

// The walk (issue 17): every operation of httpapi/openapi.yaml, on real
// nodes (one without authentication, one with JWTs) over a real Redis and
// a real Sandbox Agent with the scripted agent, gets good and bad input,
// and kin-openapi validates each request and each response (status,
// content type, headers, body) against the document. The operations come
// from the document: one without a good and a bad case fails the test, as
// does any response the document does not describe.

// walkCase is one request of the walk and what it must get.
type walkCase struct {
	name   string
	node   *nodetest.Node
	method string
	path   string // with its query
	hdr    map[string]string
	host   string // the Host header, when not the node's
	body   string
	ctype  string // Content-Type; with a body and none given, application/json
	// status is the status the request must get; problem, for an error,
	// the code of its problem type (urn:tandem:error:<problem>).
	status  int
	problem string
	// docRejects: the document itself refuses the request (kin-openapi's
	// ValidateRequest fails). A good request always validates; a bad one
	// the document cannot tell from a good one (an unknown id) too.
	docRejects bool
	// sseUntil, on an event stream's 200: read the stream until an event
	// with this id or this event name (validating every event on the way).
	sseUntil string
	// poll: a read the walk makes to wait for something (validated all
	// the same, and counted apart).
	poll bool
}

// walkResult is what a case got.
type walkResult struct {
	status int
	header http.Header
	body   []byte
	events []ssetest.Event // an event stream's, up to sseUntil
}

// coverage counts the cases of one operation.
type coverage struct{ good, bad int }

type walker struct {
	t      *testing.T
	doc    *openapi3.T
	router routers.Router
	rdb    *redis.Client
	cover  map[string]*coverage // "METHOD /path" as the document has it
	// sse is the schema of each event name of an operation's stream
	// (operationId → event → schema), from the document's extensions.
	sse map[string]map[string]*openapi3.Schema
	// types are the event types each listing or stream operation answered
	// (and that validated).
	types map[string]map[string]bool
	// cases and polls count the requests made.
	cases, polls int
}

// sseExtensions names the extension listing each stream operation's events.
var sseExtensions = map[string]string{
	"streamEvents":          "x-tandem-sse-events",
	"streamWorkspaceEvents": "x-tandem-workspace-sse-events",
}

// htmlDecoder lets kin-openapi read the web client's pages (text/html)
// as the strings the document says they are.
var htmlDecoder sync.Once

func newWalker(t *testing.T, rdb *redis.Client) *walker {
	htmlDecoder.Do(func() { openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.PlainBodyDecoder) })
	doc, err := openapi3.NewLoader().LoadFromData(httpapi.OpenAPIYAML)
	if err != nil {
		t.Fatal(err)
	}
	// Route by path alone: the nodes listen on ports of their own, not on
	// the document's example server.
	doc.Servers = nil
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	w := &walker{t: t, doc: doc, router: router, rdb: rdb, cover: map[string]*coverage{},
		sse: map[string]map[string]*openapi3.Schema{}, types: map[string]map[string]bool{}}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			w.cover[method+" "+path] = &coverage{}
			if c := op.Responses.Status(200); c == nil || c.Value.Content.Get("text/event-stream") == nil {
				continue
			}
			ext, ok := sseExtensions[op.OperationID]
			if !ok {
				t.Fatalf("%s %s is an event stream without a list of its events", method, path)
			}
			w.sse[op.OperationID] = w.sseSchemas(ext)
		}
	}
	return w
}

// sseSchemas resolves the extension ext: {events: {name: {$ref}}}.
func (w *walker) sseSchemas(ext string) map[string]*openapi3.Schema {
	raw, _ := w.doc.Extensions[ext].(map[string]any)
	events, _ := raw["events"].(map[string]any)
	if len(events) == 0 {
		w.t.Fatalf("the document has no %s.events", ext)
	}
	out := map[string]*openapi3.Schema{}
	for name, v := range events {
		ref, _ := v.(map[string]any)["$ref"].(string)
		s := w.doc.Components.Schemas[strings.TrimPrefix(ref, "#/components/schemas/")]
		if !strings.HasPrefix(ref, "#/components/schemas/") || s == nil {
			w.t.Fatalf("%s: event %s: %q is not a schema of the document", ext, name, ref)
		}
		out[name] = s.Value
	}
	return out
}

func (w *walker) request(ctx context.Context, c walkCase) *http.Request {
	w.t.Helper()
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	req, err := http.NewRequestWithContext(ctx, c.method, c.node.URL+c.path, body)
	if err != nil {
		w.t.Fatalf("%s: %v", c.name, err)
	}
	if c.ctype != "" {
		req.Header.Set("Content-Type", c.ctype)
	} else if c.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range c.hdr {
		req.Header.Set(k, v)
	}
	if c.host != "" {
		req.Host = c.host
	}
	return req
}

// do runs one case: the request is validated, sent, and its response
// validated and held against what the case wants. A bad request with an
// unsafe method must leave Redis as it was.
func (w *walker) do(c walkCase) walkResult {
	t := w.t
	t.Helper()
	label := fmt.Sprintf("%s (%s %s)", c.name, c.method, c.path)
	route, params, err := w.router.FindRoute(w.request(context.Background(), c))
	if err != nil {
		t.Fatalf("%s: the document has no such operation: %v", label, err)
	}
	key := route.Method + " " + route.Path
	good := c.status < 400
	if c.poll {
		w.polls++
	} else {
		w.cases++
	}
	if good {
		w.cover[key].good++
	} else {
		w.cover[key].bad++
	}

	reqIn := &openapi3filter.RequestValidationInput{
		Request: w.request(context.Background(), c), PathParams: params, Route: route,
		Options: &openapi3filter.Options{MultiError: true},
	}
	switch err := openapi3filter.ValidateRequest(context.Background(), reqIn); {
	case err != nil && !c.docRejects:
		t.Errorf("%s: the document refuses this request: %v", label, err)
	case err == nil && c.docRejects:
		t.Errorf("%s: the document accepts this request, which it should refuse", label)
	}

	var before string
	var volatile map[string]bool
	if !good && c.method != http.MethodGet {
		before, volatile = w.snapshot()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(w.request(ctx, c))
	if err != nil {
		t.Fatalf("%s: %v", label, err)
	}
	defer resp.Body.Close()
	res := walkResult{status: resp.StatusCode, header: resp.Header}
	stream := resp.StatusCode == http.StatusOK && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream")
	if stream {
		res.events, err = readSSE(resp.Body, c.sseUntil)
		cancel() // the stream goes on; the case is done with it
		if err != nil {
			t.Errorf("%s: the stream ended before %q: %v", label, c.sseUntil, err)
		}
	} else if res.body, err = io.ReadAll(resp.Body); err != nil {
		t.Fatalf("%s: reading the body: %v", label, err)
	}

	respIn := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: reqIn, Status: resp.StatusCode, Header: resp.Header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	respIn.SetBodyBytes(res.body)
	if err := openapi3filter.ValidateResponse(context.Background(), respIn); err != nil {
		t.Errorf("%s: the response does not match the document: %v\n%.600s", label, err, res.body)
	}
	w.check(label, c, res)
	if stream {
		w.checkEvents(label, route.Operation.OperationID, res.events)
	}
	if l := route.Operation.OperationID; resp.StatusCode == http.StatusOK && (l == "listEvents" || l == "listWorkspaceEvents") {
		var page struct{ Items []struct{ Type string } }
		if err := json.Unmarshal(res.body, &page); err != nil {
			t.Errorf("%s: %v", label, err)
		}
		for _, it := range page.Items {
			w.saw(l, it.Type)
		}
	}
	if before != "" {
		if diff := changed(before, redisState(t, w.rdb), volatile); len(diff) > 0 {
			t.Errorf("%s was refused but changed Redis:\n%s", label, strings.Join(diff, "\n"))
		}
	}
	return res
}

// check holds the response against the case: its status, and for an
// error a problem of the wanted type whose status is the response's.
func (w *walker) check(label string, c walkCase, res walkResult) {
	t := w.t
	t.Helper()
	if res.status != c.status {
		t.Errorf("%s: status %d, want %d: %.300s", label, res.status, c.status, res.body)
		return
	}
	if res.status < 400 {
		if c.problem != "" {
			t.Fatalf("%s: a good case with a problem type", label)
		}
		return
	}
	if ct := res.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("%s: an error with Content-Type %q", label, ct)
	}
	var p struct {
		Type, Title string
		Status      int
	}
	if err := json.Unmarshal(res.body, &p); err != nil {
		t.Errorf("%s: the problem is not JSON: %v", label, err)
	}
	if p.Type != "urn:tandem:error:"+c.problem || p.Status != res.status || p.Title == "" {
		t.Errorf("%s: problem %+v, want type urn:tandem:error:%s and status %d", label, p, c.problem, res.status)
	}
}

// checkEvents validates every event of a stream against its schema in the
// operation's extension: persisted events carry their id as id:, presence
// and reset carry none.
func (w *walker) checkEvents(label, opID string, evs []ssetest.Event) {
	t := w.t
	t.Helper()
	schemas := w.sse[opID]
	for i, ev := range evs {
		if ev.Type == "" {
			if ev.Data != "" || ev.Retry == "" {
				t.Errorf("%s: event %d has data but no name: %+v", label, i, ev)
			}
			continue // the retry: preamble
		}
		s := schemas[ev.Type]
		if s == nil {
			t.Errorf("%s: event %d is a %q, which the document does not list", label, i, ev.Type)
			continue
		}
		var v any
		if err := json.Unmarshal([]byte(ev.Data), &v); err != nil {
			t.Errorf("%s: event %d (%s): data is not JSON: %v", label, i, ev.Type, err)
			continue
		}
		if err := s.VisitJSON(v, openapi3.EnableJSONSchema2020(), openapi3.MultiErrors(), openapi3.VisitAsResponse()); err != nil {
			t.Errorf("%s: event %d (%s) does not match the document: %v\n%.600s", label, i, ev.Type, err, ev.Data)
		}
		var id struct {
			ID   *string `json:"id"`
			Type string  `json:"type"`
		}
		_ = json.Unmarshal([]byte(ev.Data), &id)
		switch {
		case id.ID != nil && (!ev.HasID || ev.ID != *id.ID || ev.Type != id.Type):
			t.Errorf("%s: event %d: id: %q and event: %s for the persisted %s %s", label, i, ev.ID, ev.Type, id.Type, *id.ID)
		case id.ID == nil && ev.HasID:
			t.Errorf("%s: event %d (%s) is not persisted but has id: %q", label, i, ev.Type, ev.ID)
		}
		if id.ID != nil {
			w.saw(opID, ev.Type)
		}
	}
}

func (w *walker) saw(opID, typ string) {
	if w.types[opID] == nil {
		w.types[opID] = map[string]bool{}
	}
	w.types[opID][typ] = true
}

// readSSE reads events from a stream until one has the id or the name
// until (until "": the first one).
func readSSE(r io.Reader, until string) ([]ssetest.Event, error) {
	br := bufio.NewReader(r)
	var out []ssetest.Event
	for {
		ev, err := ssetest.ReadEvent(br)
		if err != nil {
			return out, err
		}
		out = append(out, ev)
		if until == "" || ev.ID == until || ev.Type == until {
			return out, nil
		}
	}
}

// snapshot is redisState, and the keys that have a time to live: one of
// them that expires before the next snapshot changed by itself.
func (w *walker) snapshot() (string, map[string]bool) {
	ctx := context.Background()
	keys, err := w.rdb.Keys(ctx, "*").Result()
	if err != nil {
		w.t.Fatal(err)
	}
	volatile := map[string]bool{}
	for _, k := range keys {
		if w.rdb.PTTL(ctx, k).Val() > 0 {
			volatile[k] = true
		}
	}
	// After the times to live: a key that expires in between is not in
	// the state at all.
	return redisState(w.t, w.rdb), volatile
}

// changed lists the lines of redisState that differ between before and
// after, but for keys with a time to live that are gone (expired), and an
// owner's evidence of the prompts it sent (eventlog.SentKey), which it
// writes every second after a dispatch of an earlier case.
func changed(before, after string, volatile map[string]bool) []string {
	lines := func(s string) (map[string]bool, map[string]bool) {
		set, keys := map[string]bool{}, map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			key, rest, _ := strings.Cut(l, " ")
			if l == "" || strings.HasPrefix(rest, "none ") {
				continue // expired between KEYS and TYPE
			}
			if strings.HasSuffix(key, ":sent") {
				continue
			}
			set[l], keys[key] = true, true
		}
		return set, keys
	}
	b, _ := lines(before)
	a, aKeys := lines(after)
	var out []string
	for l := range a {
		if !b[l] {
			out = append(out, "+ "+l)
		}
	}
	for l := range b {
		if key, _, _ := strings.Cut(l, " "); !a[l] && !(volatile[key] && !aKeys[key]) {
			out = append(out, "- "+l)
		}
	}
	sort.Strings(out)
	return out
}

// settle waits until Redis holds still (what requests could change, as
// redisState sees it), so that a refused request's check compares like
// with like.
func (w *walker) settle() {
	w.t.Helper()
	prev := redisState(w.t, w.rdb)
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); {
		time.Sleep(300 * time.Millisecond)
		cur := redisState(w.t, w.rdb)
		if cur == prev {
			return
		}
		prev = cur
	}
	w.t.Fatal("Redis did not settle within 15s")
}

// eventsOf is one page of a stream's events, through the walk.
func (w *walker) eventsOf(n *nodetest.Node, path string) []map[string]any {
	w.t.Helper()
	res := w.do(walkCase{name: "page of " + path, node: n, method: "GET", path: path + "?limit=1000", status: 200, poll: true})
	var p struct{ Items []map[string]any }
	if err := json.Unmarshal(res.body, &p); err != nil {
		w.t.Fatalf("%s: %v", path, err)
	}
	return p.Items
}

// waitEvent polls a stream's events until one satisfies ok.
func (w *walker) waitEvent(n *nodetest.Node, path, what string, ok func(map[string]any) bool) map[string]any {
	w.t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		for _, ev := range w.eventsOf(n, path) {
			if ok(ev) {
				return ev
			}
		}
	}
	w.t.Fatalf("no %s in %s within 30s", what, path)
	return nil
}

// waitUntil polls ok.
func (w *walker) waitUntil(what string, ok func() bool) {
	w.t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if ok() {
			return
		}
	}
	w.t.Fatalf("no %s within 30s", what)
}

func ofType(typ string) func(map[string]any) bool {
	return func(ev map[string]any) bool { return ev["type"] == typ }
}

// Every operation of the document, walked with good and bad input on real
// nodes; every request, response and SSE event validated against it.
func TestOpenAPIWalk(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	sb := sandboxtest.Start(t, sandboxtest.Options{})
	w := newWalker(t, rs.Client(t))
	mut := func(c *node.Config) {
		c.Sandbox = node.SandboxConfig{URL: sb.URL()}
		c.BenchRoutes = true
		c.MetricsToken = "scrape-secret"
	}
	open := nodetest.Start(t, rs.URL(), mut)
	jw := jwtNode(t, rs.URL(), mut)
	bearer := func(sub, role string, wss ...string) map[string]string {
		return map[string]string{"Authorization": "Bearer " + token(t, sub, role, wss, nil)}
	}
	root := bearer("root", "admin", "*")
	ann := bearer("ann", "member", "walk")
	bob := bearer("bob", "member", "walk")
	vic := bearer("vic", "viewer", "walk")
	eve := bearer("eve", "admin", "elsewhere")
	expired := map[string]string{"Authorization": "Bearer " + token(t, "ann", "member", []string{"walk"}, func(c jwt.MapClaims) {
		c["exp"] = time.Now().Add(-time.Minute).Unix()
		c["iat"] = time.Now().Add(-time.Hour).Unix()
	})}
	const (
		ws    = "/v1/workspaces/walk"
		s1    = ws + "/sessions/s1"
		s2    = ws + "/sessions/s2"
		gone  = ws + "/sessions/gone"
		evil  = "evil.example"
		badID = "bad!id"
	)
	crossSite := map[string]string{"Origin": "http://" + evil}
	huge := `{"agent":"` + strings.Repeat("x", 1<<20) + `"}`
	run := func(cs ...walkCase) {
		t.Helper()
		for _, c := range cs {
			w.do(c)
		}
	}

	// The routes of the node itself, the web client and the caller.
	run(
		walkCase{name: "alive", node: open, method: "GET", path: "/healthz", status: 200},
		walkCase{name: "alive, to a foreign host", node: open, method: "GET", path: "/healthz", host: evil, status: 403, problem: "host_not_allowed"},
		walkCase{name: "ready", node: open, method: "GET", path: "/readyz", status: 200},
		walkCase{name: "ready, to a foreign host", node: open, method: "GET", path: "/readyz", host: evil, status: 403, problem: "host_not_allowed"},
		walkCase{name: "metrics with the token", node: open, method: "GET", path: "/metrics", hdr: map[string]string{"Authorization": "Bearer scrape-secret"}, status: 200},
		walkCase{name: "metrics without the token", node: open, method: "GET", path: "/metrics", status: 401, problem: "unauthenticated"},
		walkCase{name: "metrics with a wrong token", node: jw, method: "GET", path: "/metrics", hdr: root, status: 401, problem: "unauthenticated"},
		walkCase{name: "metrics, to a foreign host", node: open, method: "GET", path: "/metrics", host: evil, hdr: map[string]string{"Authorization": "Bearer scrape-secret"}, status: 403, problem: "host_not_allowed"},
		walkCase{name: "the web client", node: open, method: "GET", path: "/", status: 200},
		walkCase{name: "the web client, to a foreign host", node: open, method: "GET", path: "/", host: evil, status: 403, problem: "host_not_allowed"},
		walkCase{name: "a room's page", node: jw, method: "GET", path: "/w/walk", status: 200},
		walkCase{name: "a room's page, bad id", node: open, method: "GET", path: "/w/" + badID, status: 400, problem: "invalid_id", docRejects: true},
		walkCase{name: "a session's page", node: jw, method: "GET", path: "/w/walk/s/default", status: 200},
		walkCase{name: "a session's page, bad session id", node: open, method: "GET", path: "/w/walk/s/" + badID, status: 400, problem: "invalid_id", docRejects: true},
		walkCase{name: "an asset", node: open, method: "GET", path: "/static/app.js", status: 200},
		walkCase{name: "no such asset", node: open, method: "GET", path: "/static/nope.js", status: 404, problem: "not_found"},
		walkCase{name: "the page is no asset", node: jw, method: "GET", path: "/static/index.html", status: 404, problem: "not_found"},
		walkCase{name: "the document", node: jw, method: "GET", path: "/v1/openapi.json", status: 200},
		walkCase{name: "the document, to a foreign host", node: open, method: "GET", path: "/v1/openapi.json", host: evil, status: 403, problem: "host_not_allowed"},
		walkCase{name: "the version", node: open, method: "GET", path: "/v1/version", status: 200},
		walkCase{name: "the version, to a foreign host", node: open, method: "GET", path: "/v1/version", host: evil, status: 403, problem: "host_not_allowed"},

		walkCase{name: "cookie from a token", node: jw, method: "POST", path: "/v1/auth/cookie", hdr: ann, status: 200},
		walkCase{name: "cookie without a token", node: jw, method: "POST", path: "/v1/auth/cookie", status: 401, problem: "unauthenticated"},
		walkCase{name: "cookie from a bad token", node: jw, method: "POST", path: "/v1/auth/cookie", hdr: map[string]string{"Authorization": "Bearer nope"}, status: 401, problem: "unauthenticated"},
		walkCase{name: "cookie from an expired token", node: jw, method: "POST", path: "/v1/auth/cookie", hdr: expired, status: 401, problem: "token_expired"},
		walkCase{name: "cookie, bad user", node: open, method: "POST", path: "/v1/auth/cookie", hdr: map[string]string{"Authorization": "Bearer x", "X-User-Id": "no spaces"}, status: 400, problem: "invalid_user"},
		walkCase{name: "cookie, cross-site", node: open, method: "POST", path: "/v1/auth/cookie", hdr: map[string]string{"Authorization": "Bearer x", "Origin": "http://" + evil}, status: 403, problem: "cross_site_request"},
		walkCase{name: "forget the cookie", node: jw, method: "DELETE", path: "/v1/auth/cookie", status: 204},
		walkCase{name: "forget the cookie, cross-site", node: open, method: "DELETE", path: "/v1/auth/cookie", hdr: crossSite, status: 403, problem: "cross_site_request"},
		walkCase{name: "who am I, no auth", node: open, method: "GET", path: "/v1/auth/me", status: 200},
		walkCase{name: "who am I, JWT", node: jw, method: "GET", path: "/v1/auth/me", hdr: vic, status: 200},
		walkCase{name: "who am I, bad user", node: open, method: "GET", path: "/v1/auth/me", hdr: map[string]string{"X-User-Id": "no spaces"}, status: 400, problem: "invalid_user"},
		walkCase{name: "who am I, no token", node: jw, method: "GET", path: "/v1/auth/me", status: 401, problem: "unauthenticated"},
		walkCase{name: "who am I, expired", node: jw, method: "GET", path: "/v1/auth/me", hdr: expired, status: 401, problem: "token_expired"},
	)

	// A workspace with sessions; one destroyed, one workspace deleted.
	run(
		walkCase{name: "create the workspace", node: open, method: "PUT", path: ws, body: `{"agent":"mock","permissionPolicy":"ask"}`, status: 201},
		walkCase{name: "update the workspace", node: jw, method: "PUT", path: ws, hdr: root, body: `{"agent":"mock","agents":["mock"],"speakerLabels":true}`, status: 200},
		walkCase{name: "put, no body", node: open, method: "PUT", path: ws, status: 200},
		walkCase{name: "create s1", node: open, method: "POST", path: ws + "/sessions", body: `{"id":"s1"}`, status: 201},
		walkCase{name: "resume s1", node: jw, method: "POST", path: ws + "/sessions", hdr: ann, body: `{"id":"s1"}`, status: 200},
		walkCase{name: "create s2", node: jw, method: "POST", path: ws + "/sessions", hdr: ann, body: `{"id":"s2","agent":"mock"}`, status: 201},
		walkCase{name: "create a session with a mode", node: open, method: "POST", path: ws + "/sessions", body: `{"id":"s3","mode":"code"}`, status: 201},
		walkCase{name: "create a session, no id", node: open, method: "POST", path: ws + "/sessions", status: 201},
		walkCase{name: "create gone", node: open, method: "POST", path: ws + "/sessions", body: `{"id":"gone"}`, status: 201},
		walkCase{name: "destroy gone", node: jw, method: "DELETE", path: gone, hdr: ann, status: 200},
		walkCase{name: "create a workspace to delete", node: jw, method: "PUT", path: "/v1/workspaces/walk-gone", hdr: root, status: 201},
		walkCase{name: "delete it", node: jw, method: "DELETE", path: "/v1/workspaces/walk-gone", hdr: root, status: 204},
		walkCase{name: "a workspace for the load tool", node: open, method: "PUT", path: "/v1/workspaces/walk-bench", status: 201},
	)

	// Turns: s2's waits (so that prompts queue behind it) until it is
	// cancelled, s1's asks a permission.
	hang := w.do(walkCase{name: "a prompt that waits", node: open, method: "POST", path: s2 + "/prompt", body: `{"text":"[chunks=1] [delay=600000ms] wait"}`, status: 202})
	var hung struct{ ID string }
	_ = json.Unmarshal(hang.body, &hung)
	w.waitEvent(open, ws+"/events", "dispatch of the hanging prompt", func(ev map[string]any) bool {
		return ev["type"] == "prompt.dispatched" && ev["promptId"] == hung.ID
	})
	run(
		walkCase{name: "a prompt with a permission", node: jw, method: "POST", path: s1 + "/prompt", hdr: ann, body: `{"text":"[permission] [chunks=2] [delay=0ms] hi","userId":"ann"}`, status: 202},
		walkCase{name: "a prompt, once", node: open, method: "POST", path: s1 + "/prompt", hdr: map[string]string{"Idempotency-Key": "walk-1"}, body: `{"text":"[chunks=1] [delay=0ms] again"}`, status: 202},
		walkCase{name: "the same prompt again", node: open, method: "POST", path: s1 + "/prompt", hdr: map[string]string{"Idempotency-Key": "walk-1"}, body: `{"text":"[chunks=1] [delay=0ms] again"}`, status: 202},
		walkCase{name: "change s1's mode", node: jw, method: "PATCH", path: s1, hdr: ann, body: `{"mode":"code"}`, status: 202},
	)
	perm := w.waitEvent(open, s1+"/events", "permission request", ofType("permission.requested"))
	rid, _ := perm["requestId"].(string)
	queued := w.do(walkCase{name: "a prompt that queues", node: jw, method: "POST", path: s2 + "/prompt", hdr: ann, body: `{"text":"queued"}`, status: 202})
	var q struct{ ID string }
	_ = json.Unmarshal(queued.body, &q)
	queued2 := w.do(walkCase{name: "another that queues", node: open, method: "POST", path: s2 + "/prompt", body: `{"text":"queued too"}`, status: 202})
	var q2 struct{ ID string }
	_ = json.Unmarshal(queued2.body, &q2)
	w.settle()

	// Bad input, while everything waits (a permission, a hanging turn).
	perms := s1 + "/permissions/" + rid
	run(
		walkCase{name: "put, bad id", node: open, method: "PUT", path: "/v1/workspaces/" + badID, status: 400, problem: "invalid_id", docRejects: true},
		walkCase{name: "put, id too long", node: open, method: "PUT", path: "/v1/workspaces/" + strings.Repeat("w", 129), status: 400, problem: "invalid_id", docRejects: true},
		walkCase{name: "put, unknown field", node: open, method: "PUT", path: "/v1/workspaces/walk-2", body: `{"agnt":"mock"}`, status: 400, problem: "malformed_json", docRejects: true},
		walkCase{name: "put, malformed", node: open, method: "PUT", path: "/v1/workspaces/walk-2", body: `{"agent":`, status: 400, problem: "malformed_json", docRejects: true},
		// kin-openapi reads the first value only.
		walkCase{name: "put, two values", node: open, method: "PUT", path: "/v1/workspaces/walk-2", body: `{"agent":"mock"} {}`, status: 400, problem: "malformed_json"},
		walkCase{name: "put, text/plain", node: open, method: "PUT", path: "/v1/workspaces/walk-2", ctype: "text/plain", body: `{"agent":"mock"}`, status: 415, problem: "unsupported_media_type", docRejects: true},
		walkCase{name: "put, bad policy", node: open, method: "PUT", path: "/v1/workspaces/walk-2", body: `{"permissionPolicy":"sometimes"}`, status: 400, problem: "invalid_request", docRejects: true},
		walkCase{name: "put, bad agent", node: open, method: "PUT", path: "/v1/workspaces/walk-2", body: `{"agent":"Bad Agent"}`, status: 400, problem: "invalid_request"},
		walkCase{name: "put, sandbox without its URL", node: open, method: "PUT", path: "/v1/workspaces/walk-2", body: `{"sandbox":{}}`, status: 400, problem: "invalid_request", docRejects: true},
		walkCase{name: "put, a sandbox not allowed", node: open, method: "PUT", path: "/v1/workspaces/walk-2", body: `{"sandbox":{"baseUrl":"http://10.9.9.9:2468"}}`, status: 403, problem: "sandbox_not_allowed"},
		walkCase{name: "put, too large", node: open, method: "PUT", path: "/v1/workspaces/walk-2", body: huge, status: 413, problem: "body_too_large"},
		walkCase{name: "put, deleted id", node: open, method: "PUT", path: "/v1/workspaces/walk-gone", status: 409, problem: "workspace_deleted"},
		walkCase{name: "put as a member", node: jw, method: "PUT", path: ws, hdr: ann, status: 403, problem: "forbidden"},
		walkCase{name: "put, no token", node: jw, method: "PUT", path: ws, status: 401, problem: "unauthenticated"},
		walkCase{name: "put, cross-site", node: open, method: "PUT", path: ws, hdr: crossSite, status: 403, problem: "cross_site_request"},
		walkCase{name: "put with a cookie, no CSRF header", node: jw, method: "PUT", path: ws, hdr: map[string]string{"Cookie": httpapi.CookieName + "=" + strings.TrimPrefix(root["Authorization"], "Bearer ")}, status: 403, problem: "forbidden"},

		walkCase{name: "delete as a member", node: jw, method: "DELETE", path: ws, hdr: ann, status: 403, problem: "forbidden"},
		walkCase{name: "delete, bad purge", node: open, method: "DELETE", path: ws + "?purge=maybe", status: 400, problem: "invalid_request", docRejects: true},
		walkCase{name: "delete, unknown", node: open, method: "DELETE", path: "/v1/workspaces/nowhere", status: 404, problem: "workspace_not_found"},
		walkCase{name: "delete, deleted", node: open, method: "DELETE", path: "/v1/workspaces/walk-gone", status: 404, problem: "workspace_not_found"},

		walkCase{name: "create a session, bad id", node: open, method: "POST", path: ws + "/sessions", body: `{"id":"bad id"}`, status: 400, problem: "invalid_id", docRejects: true},
		walkCase{name: "create a session, unknown field", node: open, method: "POST", path: ws + "/sessions", body: `{"id":"x","nope":1}`, status: 400, problem: "malformed_json", docRejects: true},
		walkCase{name: "create a session, wrong type", node: open, method: "POST", path: ws + "/sessions", body: `{"id":1}`, status: 400, problem: "malformed_json", docRejects: true},
		walkCase{name: "create a session, xml", node: open, method: "POST", path: ws + "/sessions", ctype: "application/xml", body: `{"id":"x"}`, status: 415, problem: "unsupported_media_type", docRejects: true},
		walkCase{name: "create a session, agent not allowed", node: open, method: "POST", path: ws + "/sessions", body: `{"id":"x","agent":"codex"}`, status: 403, problem: "agent_not_allowed"},
		walkCase{name: "create a session, bad mode", node: open, method: "POST", path: ws + "/sessions", body: `{"id":"x","mode":"bad mode"}`, status: 400, problem: "invalid_request"},
		walkCase{name: "create a destroyed session", node: open, method: "POST", path: ws + "/sessions", body: `{"id":"gone"}`, status: 409, problem: "session_destroyed"},
		walkCase{name: "create a session, unknown workspace", node: open, method: "POST", path: "/v1/workspaces/nowhere/sessions", body: `{"id":"x"}`, status: 404, problem: "workspace_not_found"},
		walkCase{name: "create a session as a viewer", node: jw, method: "POST", path: ws + "/sessions", hdr: vic, body: `{"id":"x"}`, status: 403, problem: "forbidden"},

		walkCase{name: "destroy, unknown session", node: open, method: "DELETE", path: ws + "/sessions/nope", status: 404, problem: "session_not_found"},
		walkCase{name: "destroy, bad id", node: open, method: "DELETE", path: ws + "/sessions/" + badID, status: 400, problem: "invalid_id", docRejects: true},
		walkCase{name: "destroy as a viewer", node: jw, method: "DELETE", path: s1, hdr: vic, status: 403, problem: "forbidden"},

		walkCase{name: "patch, nothing", node: open, method: "PATCH", path: s1, body: `{}`, status: 400, problem: "invalid_request"},
		walkCase{name: "patch, empty mode", node: open, method: "PATCH", path: s1, body: `{"mode":""}`, status: 400, problem: "invalid_request", docRejects: true},
		walkCase{name: "patch, unknown field", node: open, method: "PATCH", path: s1, body: `{"mode":"code","zzz":1}`, status: 400, problem: "malformed_json", docRejects: true},
		walkCase{name: "patch, no body", node: open, method: "PATCH", path: s1, status: 400, problem: "malformed_json", docRejects: true},
		walkCase{name: "patch, option of the wrong type", node: open, method: "PATCH", path: s1, body: `{"configOptions":{"a":1}}`, status: 400, problem: "malformed_json", docRejects: true},
		walkCase{name: "patch, unknown session", node: open, method: "PATCH", path: ws + "/sessions/nope", body: `{"mode":"code"}`, status: 404, problem: "session_not_found"},
		walkCase{name: "patch, destroyed session", node: open, method: "PATCH", path: gone, body: `{"mode":"code"}`, status: 409, problem: "session_destroyed"},
		walkCase{name: "patch as a viewer", node: jw, method: "PATCH", path: s1, hdr: vic, body: `{"mode":"code"}`, status: 403, problem: "forbidden"},

		walkCase{name: "prompt, no text", node: open, method: "POST", path: s1 + "/prompt", body: `{}`, status: 400, problem: "invalid_request", docRejects: true},
		walkCase{name: "prompt, empty text", node: open, method: "POST", path: s1 + "/prompt", body: `{"text":""}`, status: 400, problem: "invalid_request"},
		walkCase{name: "prompt, no body", node: open, method: "POST", path: s1 + "/prompt", status: 400, problem: "malformed_json", docRejects: true},
		walkCase{name: "prompt, text of the wrong type", node: open, method: "POST", path: s1 + "/prompt", body: `{"text":5}`, status: 400, problem: "malformed_json", docRejects: true},
		walkCase{name: "prompt, unknown field", node: open, method: "POST", path: s1 + "/prompt", body: `{"text":"hi","user":"x"}`, status: 400, problem: "malformed_json", docRejects: true},
		walkCase{name: "prompt, text/plain", node: open, method: "POST", path: s1 + "/prompt", ctype: "text/plain", body: `{"text":"hi"}`, status: 415, problem: "unsupported_media_type", docRejects: true},
		walkCase{name: "prompt, too long", node: open, method: "POST", path: s1 + "/prompt", body: `{"text":"` + strings.Repeat("y", 33<<10) + `"}`, status: 413, problem: "prompt_too_large"},
		walkCase{name: "prompt as another user", node: jw, method: "POST", path: s1 + "/prompt", hdr: ann, body: `{"text":"hi","userId":"bob"}`, status: 403, problem: "user_mismatch"},
		walkCase{name: "prompt, bad user", node: open, method: "POST", path: s1 + "/prompt", hdr: map[string]string{"X-User-Id": "bad user"}, body: `{"text":"hi"}`, status: 400, problem: "invalid_user"},
		walkCase{name: "prompt a destroyed session", node: open, method: "POST", path: gone + "/prompt", body: `{"text":"hi"}`, status: 409, problem: "session_destroyed"},
		walkCase{name: "prompt, unknown session", node: open, method: "POST", path: ws + "/sessions/nope/prompt", body: `{"text":"hi"}`, status: 404, problem: "session_not_found"},
		walkCase{name: "prompt, unknown workspace", node: open, method: "POST", path: "/v1/workspaces/nowhere/sessions/default/prompt", body: `{"text":"hi"}`, status: 404, problem: "workspace_not_found"},
		walkCase{name: "prompt as a viewer", node: jw, method: "POST", path: s1 + "/prompt", hdr: vic, body: `{"text":"hi"}`, status: 403, problem: "forbidden"},
		walkCase{name: "prompt, expired token", node: jw, method: "POST", path: s1 + "/prompt", hdr: expired, body: `{"text":"hi"}`, status: 401, problem: "token_expired"},

		walkCase{name: "cancel, unknown session", node: open, method: "POST", path: ws + "/sessions/nope/cancel", status: 404, problem: "session_not_found"},
		walkCase{name: "cancel a destroyed session", node: open, method: "POST", path: gone + "/cancel", status: 409, problem: "session_destroyed"},
		walkCase{name: "cancel as a viewer", node: jw, method: "POST", path: s2 + "/cancel", hdr: vic, status: 403, problem: "forbidden"},

		walkCase{name: "answer, unknown request", node: open, method: "POST", path: s1 + "/permissions/perm-1", body: `{"optionId":"allow-once"}`, status: 404, problem: "permission_not_found"},
		walkCase{name: "answer, bad request id", node: open, method: "POST", path: s1 + "/permissions/a$b", body: `{"optionId":"allow-once"}`, status: 404, problem: "permission_not_found"},
		walkCase{name: "answer, option not offered", node: open, method: "POST", path: perms, body: `{"optionId":"maybe"}`, status: 400, problem: "invalid_option"},
		walkCase{name: "answer, nothing", node: open, method: "POST", path: perms, body: `{}`, status: 400, problem: "invalid_request"},
		walkCase{name: "answer, both", node: open, method: "POST", path: perms, body: `{"optionId":"allow-once","outcome":"cancelled"}`, status: 400, problem: "invalid_request"},
		walkCase{name: "answer, bad outcome", node: open, method: "POST", path: perms, body: `{"outcome":"later"}`, status: 400, problem: "invalid_request", docRejects: true},
		walkCase{name: "answer, unknown field", node: open, method: "POST", path: perms, body: `{"optionId":"allow-once","by":"me"}`, status: 400, problem: "malformed_json", docRejects: true},
		walkCase{name: "answer, text/plain", node: open, method: "POST", path: perms, ctype: "text/plain", body: `{"optionId":"allow-once"}`, status: 415, problem: "unsupported_media_type", docRejects: true},
		walkCase{name: "answer, unknown session", node: open, method: "POST", path: ws + "/sessions/nope/permissions/" + rid, body: `{"optionId":"allow-once"}`, status: 404, problem: "session_not_found"},
		walkCase{name: "answer as a viewer", node: jw, method: "POST", path: perms, hdr: vic, body: `{"optionId":"allow-once"}`, status: 403, problem: "forbidden"},

		walkCase{name: "withdraw a dispatched prompt", node: open, method: "DELETE", path: s2 + "/prompts/" + hung.ID, status: 409, problem: "prompt_dispatched"},
		walkCase{name: "withdraw another's prompt", node: jw, method: "DELETE", path: s2 + "/prompts/" + q.ID, hdr: bob, status: 403, problem: "forbidden"},
		walkCase{name: "withdraw, unknown prompt", node: open, method: "DELETE", path: s2 + "/prompts/1-1", status: 404, problem: "prompt_not_found"},
		walkCase{name: "withdraw, not a prompt id", node: open, method: "DELETE", path: s2 + "/prompts/nonsense", status: 404, problem: "prompt_not_found"},
		walkCase{name: "withdraw, another session's prompt", node: open, method: "DELETE", path: s1 + "/prompts/" + q.ID, status: 404, problem: "prompt_not_found"},
		walkCase{name: "withdraw, bad session id", node: open, method: "DELETE", path: ws + "/sessions/" + badID + "/prompts/" + q.ID, status: 400, problem: "invalid_id", docRejects: true},
		walkCase{name: "withdraw as a viewer", node: jw, method: "DELETE", path: s2 + "/prompts/" + q.ID, hdr: vic, status: 403, problem: "forbidden"},

		walkCase{name: "typing, unknown field", node: open, method: "POST", path: ws + "/typing", body: `{"sessionId":"default","typing":true,"loud":1}`, status: 400, problem: "malformed_json", docRejects: true},
		walkCase{name: "typing, no session", node: open, method: "POST", path: ws + "/typing", body: `{"typing":true}`, status: 400, problem: "invalid_request", docRejects: true},
		walkCase{name: "typing, bad session id", node: open, method: "POST", path: ws + "/typing", body: `{"sessionId":"a b"}`, status: 400, problem: "invalid_request"},
		walkCase{name: "typing, text/plain", node: open, method: "POST", path: ws + "/typing", ctype: "text/plain", body: `{"sessionId":"default"}`, status: 415, problem: "unsupported_media_type", docRejects: true},
		walkCase{name: "typing, no token", node: jw, method: "POST", path: ws + "/typing", body: `{"sessionId":"default"}`, status: 401, problem: "unauthenticated"},

		walkCase{name: "bench, nothing to append", node: open, method: "POST", path: "/v1/workspaces/walk-bench/sessions/b1/bench/append", body: `{"count":0}`, status: 400, problem: "invalid_request"},
		walkCase{name: "bench, unknown field", node: open, method: "POST", path: "/v1/workspaces/walk-bench/sessions/b1/bench/append", body: `{"count":1,"speed":2}`, status: 400, problem: "malformed_json", docRejects: true},
		walkCase{name: "bench, text/plain", node: open, method: "POST", path: "/v1/workspaces/walk-bench/sessions/b1/bench/append", ctype: "text/plain", body: `{"count":1}`, status: 415, problem: "unsupported_media_type", docRejects: true},
		walkCase{name: "bench, unknown workspace", node: open, method: "POST", path: "/v1/workspaces/nowhere/sessions/b1/bench/append", body: `{"count":1}`, status: 404, problem: "workspace_not_found"},
		walkCase{name: "bench as a member", node: jw, method: "POST", path: "/v1/workspaces/walk/sessions/b1/bench/append", hdr: ann, body: `{"count":1}`, status: 403, problem: "forbidden"},
	)

	// Reading, bad: none of these may change anything either (GETs).
	run(
		walkCase{name: "get, unknown", node: open, method: "GET", path: "/v1/workspaces/nowhere", status: 404, problem: "workspace_not_found"},
		walkCase{name: "get, bad id", node: open, method: "GET", path: "/v1/workspaces/" + badID, status: 400, problem: "invalid_id", docRejects: true},
		walkCase{name: "get, another workspace's token", node: jw, method: "GET", path: ws, hdr: eve, status: 403, problem: "forbidden"},
		walkCase{name: "presence, unknown workspace", node: open, method: "GET", path: "/v1/workspaces/nowhere/presence", status: 404, problem: "workspace_not_found"},
		walkCase{name: "presence, no token", node: jw, method: "GET", path: ws + "/presence", status: 401, problem: "unauthenticated"},
		walkCase{name: "sessions, limit 0", node: open, method: "GET", path: ws + "/sessions?limit=0", status: 400, problem: "invalid_limit", docRejects: true},
		walkCase{name: "sessions, limit abc", node: open, method: "GET", path: ws + "/sessions?limit=abc", status: 400, problem: "invalid_limit", docRejects: true},
		walkCase{name: "sessions, bad cursor", node: open, method: "GET", path: ws + "/sessions?cursor=zzz", status: 400, problem: "invalid_request"},
		walkCase{name: "sessions, unknown workspace", node: open, method: "GET", path: "/v1/workspaces/nowhere/sessions", status: 404, problem: "workspace_not_found"},
		walkCase{name: "sessions, another workspace's token", node: jw, method: "GET", path: ws + "/sessions", hdr: eve, status: 403, problem: "forbidden"},
		walkCase{name: "session, unknown", node: open, method: "GET", path: ws + "/sessions/nope", status: 404, problem: "session_not_found"},
		walkCase{name: "session, bad id", node: open, method: "GET", path: ws + "/sessions/" + strings.Repeat("s", 129), status: 400, problem: "invalid_id", docRejects: true},
		walkCase{name: "session, no token", node: jw, method: "GET", path: s1, status: 401, problem: "unauthenticated"},

		walkCase{name: "events, bad cursor", node: open, method: "GET", path: s1 + "/events?cursor=x", status: 400, problem: "cursor_malformed"},
		walkCase{name: "events, a cursor of another stream", node: open, method: "GET", path: s1 + "/events?cursor=999999.abcdef", status: 410, problem: "cursor_unknown"},
		walkCase{name: "events, limit 0", node: open, method: "GET", path: s1 + "/events?limit=0", status: 400, problem: "invalid_limit", docRejects: true},
		walkCase{name: "events, limit 1001", node: open, method: "GET", path: s1 + "/events?limit=1001", status: 400, problem: "invalid_limit", docRejects: true},
		walkCase{name: "events, empty limit", node: open, method: "GET", path: s1 + "/events?limit=", status: 400, problem: "invalid_limit", docRejects: true},
		walkCase{name: "events, unknown type", node: open, method: "GET", path: s1 + "/events?type=bogus", status: 400, problem: "invalid_event_type"},
		walkCase{name: "events, a workspace type", node: open, method: "GET", path: s1 + "/events?type=prompt.queued", status: 400, problem: "invalid_event_type"},
		walkCase{name: "events, unknown session", node: open, method: "GET", path: ws + "/sessions/nope/events", status: 404, problem: "session_not_found"},
		walkCase{name: "events, unknown workspace", node: open, method: "GET", path: "/v1/workspaces/nowhere/sessions/default/events", status: 404, problem: "workspace_not_found"},
		walkCase{name: "events, no token", node: jw, method: "GET", path: s1 + "/events", status: 401, problem: "unauthenticated"},
		walkCase{name: "events, another workspace's token", node: jw, method: "GET", path: s1 + "/events", hdr: eve, status: 403, problem: "forbidden"},

		walkCase{name: "workspace events, bad cursor", node: open, method: "GET", path: ws + "/events?cursor=x", status: 400, problem: "cursor_malformed"},
		walkCase{name: "workspace events, a cursor of another stream", node: open, method: "GET", path: ws + "/events?cursor=999999.abcdef", status: 410, problem: "cursor_unknown"},
		walkCase{name: "workspace events, limit abc", node: open, method: "GET", path: ws + "/events?limit=abc", status: 400, problem: "invalid_limit", docRejects: true},
		walkCase{name: "workspace events, a session type", node: open, method: "GET", path: ws + "/events?type=chat.user", status: 400, problem: "invalid_event_type"},
		walkCase{name: "workspace events, unknown workspace", node: open, method: "GET", path: "/v1/workspaces/nowhere/events", status: 404, problem: "workspace_not_found"},
		walkCase{name: "workspace events, no token", node: jw, method: "GET", path: ws + "/events", status: 401, problem: "unauthenticated"},

		walkCase{name: "stream, bad Last-Event-ID", node: open, method: "GET", path: s1 + "/events/stream", hdr: map[string]string{"Last-Event-ID": "x"}, status: 400, problem: "cursor_malformed"},
		walkCase{name: "stream, bad cursor", node: open, method: "GET", path: s1 + "/events/stream?cursor=x", status: 400, problem: "cursor_malformed"},
		walkCase{name: "stream, unknown session", node: open, method: "GET", path: ws + "/sessions/nope/events/stream", status: 404, problem: "session_not_found"},
		walkCase{name: "stream, bad session id", node: open, method: "GET", path: ws + "/sessions/" + badID + "/events/stream", status: 400, problem: "invalid_id", docRejects: true},
		walkCase{name: "stream, no token", node: jw, method: "GET", path: s1 + "/events/stream", status: 401, problem: "unauthenticated"},
		walkCase{name: "stream, another workspace's token", node: jw, method: "GET", path: s1 + "/events/stream", hdr: eve, status: 403, problem: "forbidden"},
		walkCase{name: "workspace stream, bad cursor", node: open, method: "GET", path: ws + "/events/stream?cursor=x", status: 400, problem: "cursor_malformed"},
		walkCase{name: "workspace stream, unknown workspace", node: open, method: "GET", path: "/v1/workspaces/nowhere/events/stream", status: 404, problem: "workspace_not_found"},
		walkCase{name: "workspace stream, no token", node: jw, method: "GET", path: ws + "/events/stream", status: 401, problem: "unauthenticated"},
	)

	// Good input that changes things.
	run(
		walkCase{name: "withdraw a queued prompt", node: jw, method: "DELETE", path: s2 + "/prompts/" + q.ID, hdr: ann, status: 204},
		walkCase{name: "withdraw it again", node: jw, method: "DELETE", path: s2 + "/prompts/" + q.ID, hdr: ann, status: 204},
		walkCase{name: "withdraw as the admin", node: open, method: "DELETE", path: s2 + "/prompts/" + q2.ID, status: 204},
		walkCase{name: "answer the permission", node: jw, method: "POST", path: perms, hdr: bob, body: `{"optionId":"allow-once"}`, status: 200},
		walkCase{name: "cancel the hanging turn", node: jw, method: "POST", path: s2 + "/cancel", hdr: ann, status: 202},
	)
	// Once the turns are over, every event type of both streams is in
	// what the walk reads and validates.
	w.waitUntil("the end of s1's two turns", func() bool {
		return countOf(w.eventsOf(open, s1+"/events"), "session.status", "status", "turn_ended") == 2
	})
	w.waitUntil("s2's turn cancelled and the destroyed session", func() bool {
		evs := w.eventsOf(open, ws+"/events")
		return countOf(evs, "session.status", "sessionId", "s2") > 0 && countOf(evs, "session.destroyed", "sessionId", "gone") == 1 &&
			evs[lastOf(evs, "session.status", "sessionId", "s2")]["running"] == false
	})
	w.settle()
	run(
		walkCase{name: "answer it again", node: open, method: "POST", path: perms, body: `{"outcome":"cancelled"}`, status: 409, problem: "permission_already_resolved"},
		walkCase{name: "cancel, nothing running", node: open, method: "POST", path: s1 + "/cancel", status: 202},
		walkCase{name: "bench append", node: open, method: "POST", path: "/v1/workspaces/walk-bench/sessions/b1/bench/append", body: `{"count":3,"batch":2,"size":8}`, status: 200},
		walkCase{name: "a workspace for the load tool on the JWT node", node: jw, method: "PUT", path: "/v1/workspaces/walk-bench-j", hdr: root, status: 201},
		walkCase{name: "bench append as the admin", node: jw, method: "POST", path: "/v1/workspaces/walk-bench-j/sessions/b1/bench/append", hdr: root, body: `{"count":1}`, status: 200},
		walkCase{name: "purge the deleted workspace", node: open, method: "DELETE", path: "/v1/workspaces/walk-gone?purge=true", status: 204},
		walkCase{name: "create it again", node: open, method: "PUT", path: "/v1/workspaces/walk-gone", status: 201},
		walkCase{name: "delete it, no purge", node: open, method: "DELETE", path: "/v1/workspaces/walk-gone?purge=false", status: 204},
	)

	// Reading, good.
	s1Events := w.eventsOf(open, s1+"/events")
	wsEvents := w.eventsOf(open, ws+"/events")
	last := func(evs []map[string]any) string { return evs[len(evs)-1]["id"].(string) }
	page := w.do(walkCase{name: "events, a small page", node: jw, method: "GET", path: s1 + "/events?limit=2", hdr: vic, status: 200})
	var p1 struct{ NextCursor string }
	_ = json.Unmarshal(page.body, &p1)
	if p1.NextCursor == "" {
		t.Errorf("a page of 2 of %d events has no nextCursor", len(s1Events))
	}
	sessPage := w.do(walkCase{name: "sessions, a small page", node: open, method: "GET", path: ws + "/sessions?limit=2", status: 200})
	var sp struct{ NextCursor string }
	_ = json.Unmarshal(sessPage.body, &sp)
	if sp.NextCursor == "" {
		t.Error("a page of 2 sessions has no nextCursor")
	}
	run(
		walkCase{name: "get the workspace", node: open, method: "GET", path: ws, status: 200},
		walkCase{name: "get the workspace as a viewer", node: jw, method: "GET", path: ws, hdr: vic, status: 200},
		walkCase{name: "presence", node: open, method: "GET", path: ws + "/presence", status: 200},
		walkCase{name: "typing", node: open, method: "POST", path: ws + "/typing", body: `{"sessionId":"default","typing":true}`, status: 204},
		walkCase{name: "typing stopped", node: open, method: "POST", path: ws + "/typing", body: `{"sessionId":"default","typing":false}`, status: 204},
		walkCase{name: "sessions", node: jw, method: "GET", path: ws + "/sessions", hdr: vic, status: 200},
		walkCase{name: "sessions, the next page", node: open, method: "GET", path: ws + "/sessions?limit=2&cursor=" + sp.NextCursor, status: 200},
		walkCase{name: "a session", node: open, method: "GET", path: s1, status: 200},
		walkCase{name: "a destroyed session", node: jw, method: "GET", path: gone, hdr: vic, status: 200},
		walkCase{name: "destroy it again", node: open, method: "DELETE", path: gone, status: 200},
		walkCase{name: "events, the next page", node: open, method: "GET", path: s1 + "/events?limit=2&cursor=" + p1.NextCursor, status: 200},
		walkCase{name: "events, some types", node: open, method: "GET", path: s1 + "/events?type=chat.user,permission.requested&type=permission.resolved", status: 200},
		walkCase{name: "events of the default session", node: open, method: "GET", path: ws + "/sessions/default/events", status: 200},
		walkCase{name: "events, from the last", node: open, method: "GET", path: s1 + "/events?cursor=" + last(s1Events), status: 200},
		walkCase{name: "workspace events, some types", node: jw, method: "GET", path: ws + "/events?type=prompt.queued,prompt.withdrawn", hdr: vic, status: 200},
		walkCase{name: "workspace events, a small page", node: open, method: "GET", path: ws + "/events?limit=3", status: 200},
		walkCase{name: "stream from the start", node: open, method: "GET", path: s1 + "/events/stream", status: 200, sseUntil: last(s1Events)},
		walkCase{name: "stream as a viewer", node: jw, method: "GET", path: s1 + "/events/stream", hdr: vic, status: 200, sseUntil: last(s1Events)},
		walkCase{name: "stream from a cursor of another stream", node: open, method: "GET", path: s1 + "/events/stream", hdr: map[string]string{"Last-Event-ID": "999999.abcdef"}, status: 200, sseUntil: "reset"},
		walkCase{name: "workspace stream from the start", node: open, method: "GET", path: ws + "/events/stream", status: 200, sseUntil: last(wsEvents)},
		walkCase{name: "workspace stream from a cursor", node: jw, method: "GET", path: ws + "/events/stream?cursor=" + wsEvents[0]["id"].(string), hdr: vic, status: 200, sseUntil: last(wsEvents)},
	)

	// Every operation of the document was walked, with good and bad input.
	var keys []string
	for k := range w.cover {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		c := w.cover[k]
		t.Logf("%-58s %3d good %3d bad", k, c.good, c.bad)
		if c.good == 0 {
			t.Errorf("%s: no good case in the walk", k)
		}
		if c.bad == 0 {
			t.Errorf("%s: no bad case in the walk", k)
		}
	}
	// And what the event routes answered holds every type the document
	// says they have.
	for op, schema := range map[string]string{
		"listEvents": "Event", "streamEvents": "Event",
		"listWorkspaceEvents": "WorkspaceEvent", "streamWorkspaceEvents": "WorkspaceEvent",
	} {
		s := w.doc.Components.Schemas[schema]
		if s == nil || s.Value.Properties["type"] == nil {
			t.Fatalf("the document has no %s with a type", schema)
		}
		for _, typ := range s.Value.Properties["type"].Value.Enum {
			if !w.types[op][typ.(string)] {
				t.Errorf("%s answered no %s event (of %v)", op, typ, slices.Sorted(maps.Keys(w.types[op])))
			}
		}
		for typ := range w.types[op] {
			if !slices.Contains(s.Value.Properties["type"].Value.Enum, any(typ)) {
				t.Errorf("%s answered a %s event, which %s does not list", op, typ, schema)
			}
		}
	}
	t.Logf("walked %d operations in %d cases (and %d polls while waiting)", len(keys), w.cases, w.polls)
}

// countOf counts the events of type typ whose field is value.
func countOf(evs []map[string]any, typ, field string, value any) int {
	n := 0
	for _, ev := range evs {
		if ev["type"] == typ && ev[field] == value {
			n++
		}
	}
	return n
}

// lastOf is the index of the last event of type typ whose field is value.
func lastOf(evs []map[string]any, typ, field string, value any) int {
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i]["type"] == typ && evs[i][field] == value {
			return i
		}
	}
	return -1
}

// The walk's validation is strict: a body, a status or a content type
// the document does not describe fails it.
func TestOpenAPIWalkValidatorIsStrict(t *testing.T) {
	w := newWalker(t, nil)
	req, _ := http.NewRequest("GET", "http://127.0.0.1/v1/workspaces/w", nil)
	route, params, err := w.router.FindRoute(req)
	if err != nil {
		t.Fatal(err)
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route}
	if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	good := `{"workspaceId":"w","sandboxId":"","agent":"mock","createdAt":1,"owner":null,"status":"active","sessions":[],"permissionPolicy":"ask"}`
	for _, tc := range []struct {
		status int
		ctype  string
		body   string
		ok     bool
	}{
		{200, "application/json", good, true},
		{200, "application/json", strings.Replace(good, `"workspaceId":"w",`, "", 1), false},
		{200, "application/json", strings.Replace(good, `"ask"`, `"sometimes"`, 1), false},
		{200, "text/plain", good, false},
		{418, "application/problem+json", `{"type":"urn:tandem:error:bad_request","title":"x","status":418}`, false},
		{404, "application/problem+json", `{"type":"urn:tandem:error:workspace_not_found","title":"Workspace not found","status":404}`, true},
		{404, "application/problem+json", `{"type":"urn:tandem:error:no_such_type","title":"x","status":404}`, false},
		{404, "application/json", `{"type":"urn:tandem:error:workspace_not_found","title":"x","status":404}`, false},
	} {
		out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: tc.status,
			Header: http.Header{"Content-Type": {tc.ctype}}, Options: &openapi3filter.Options{IncludeResponseStatus: true}}
		out.SetBodyBytes(bytes.Clone([]byte(tc.body)))
		if err := openapi3filter.ValidateResponse(context.Background(), out); (err == nil) != tc.ok {
			t.Errorf("%d %s %.60s: validation error %v, want ok=%v", tc.status, tc.ctype, tc.body, err, tc.ok)
		}
	}
}
