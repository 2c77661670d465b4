package node_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"
	"github.com/tandem-dev/tandem/auth"
	"github.com/tandem-dev/tandem/eventlog"
	"github.com/tandem-dev/tandem/httpapi"
	"github.com/tandem-dev/tandem/internal/nodetest"
	"github.com/tandem-dev/tandem/internal/redistest"
	"github.com/tandem-dev/tandem/internal/ssetest"
	"github.com/tandem-dev/tandem/node"
)

var jwtSecret = []byte("test-secret-test-secret-test-secret!")

func token(t testing.TB, sub, role string, workspaces []string, mut func(jwt.MapClaims)) string {
	t.Helper()
	c := jwt.MapClaims{"sub": sub, "role": role, "workspaces": workspaces, "aud": "tandem", "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix()}
	if mut != nil {
		mut(c)
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(jwtSecret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func jwtNode(t testing.TB, redisURL string, mut func(*node.Config)) *nodetest.Node {
	v, err := auth.NewVerifier(auth.Config{Secret: jwtSecret, Audience: "tandem", Leeway: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return nodetest.Start(t, redisURL, func(c *node.Config) {
		c.Auth = httpapi.JWTAuth{Verifier: v}
		if mut != nil {
			mut(c)
		}
	})
}

func send(t testing.TB, method, url, body string, hdr map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(b)
}

// keysOf snapshots one workspace's keys (what a request could change),
// without the owner's own bookkeeping.
func keysOf(t testing.TB, rdb *redis.Client, ws string) string {
	ctx := context.Background()
	keys, _ := rdb.Keys(ctx, "{ws:"+ws+"}*").Result()
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		if strings.HasSuffix(k, ":owner") || strings.HasSuffix(k, ":lock") || strings.HasSuffix(k, ":presence") || strings.HasSuffix(k, ":fence") {
			continue
		}
		switch rdb.Type(ctx, k).Val() {
		case "stream":
			// Entries ever added, not XLEN: the owner deletes the inbox
			// entries it acknowledges, in the background.
			fmt.Fprintf(&b, "%s=%d;", k, rdb.XInfoStream(ctx, k).Val().EntriesAdded)
		case "hash":
			fmt.Fprintf(&b, "%s=%v;", k, rdb.HGetAll(ctx, k).Val())
		case "zset":
			fmt.Fprintf(&b, "%s=%v;", k, rdb.ZRange(ctx, k, 0, -1).Val())
		default:
			fmt.Fprintf(&b, "%s=%s;", k, rdb.Get(ctx, k).Val())
		}
	}
	return b.String()
}

// Every route × role × credential gets exactly the intended status, and a
// refused request changes nothing.
func TestAuthorizationMatrix(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	rdb := rs.Client(t)
	// Every case makes a workspace as root: no cap on how many.
	n := jwtNode(t, rs.URL(), func(c *node.Config) { c.HTTP.MaxWorkspacesPerUser = -1 })
	type route struct {
		method, path, body string
		min                auth.Role
		ok                 int
	}
	routes := []route{
		{"GET", "/v1/workspaces/%s", "", auth.RoleViewer, 200},
		{"PUT", "/v1/workspaces/%s", `{"agent":"mock"}`, auth.RoleAdmin, 200},
		{"PUT", "/v1/workspaces/%s", `{"agent":"mock","agents":["codex"]}`, auth.RoleAdmin, 200},
		{"GET", "/v1/workspaces/%s/presence", "", auth.RoleViewer, 200},
		{"GET", "/v1/workspaces/%s/sessions", "", auth.RoleViewer, 200},
		{"POST", "/v1/workspaces/%s/sessions", `{"id":"s2"}`, auth.RoleMember, 201},
		{"GET", "/v1/workspaces/%s/sessions/s1", "", auth.RoleViewer, 200},
		{"POST", "/v1/workspaces/%s/sessions/s1/prompt", `{"text":"hi"}`, auth.RoleMember, 202},
		{"POST", "/v1/workspaces/%s/sessions/s1/cancel", "", auth.RoleMember, 202},
		{"GET", "/v1/workspaces/%s/sessions/s1/events", "", auth.RoleViewer, 200},
		{"GET", "/v1/workspaces/%s/sessions/s1/events/stream", "", auth.RoleViewer, 200},
		{"DELETE", "/v1/workspaces/%s/sessions/s1", "", auth.RoleMember, 200},
		{"DELETE", "/v1/workspaces/%s", "", auth.RoleAdmin, 204},
		{"DELETE", "/v1/workspaces/%s?purge=true", "", auth.RoleAdmin, 204},
	}
	roles := []string{"viewer", "member", "admin"}
	type cred struct {
		name   string
		token  func(ws, role string) string
		status func(r route, role auth.Role) int
	}
	deny401 := func(route, auth.Role) int { return 401 }
	creds := []cred{
		{"right workspace", func(ws, role string) string { return token(t, "u-"+role, role, []string{ws}, nil) },
			func(r route, role auth.Role) int {
				if role >= r.min {
					return r.ok
				}
				return 403
			}},
		{"pattern for the workspace", func(ws, role string) string { return token(t, "u-"+role, role, []string{"m*"}, nil) },
			func(r route, role auth.Role) int {
				if role >= r.min {
					return r.ok
				}
				return 403
			}},
		{"wrong workspace", func(ws, role string) string { return token(t, "u-"+role, role, []string{"other"}, nil) },
			func(route, auth.Role) int { return 403 }},
		{"no token", func(string, string) string { return "" }, deny401},
		{"expired token", func(ws, role string) string {
			return token(t, "u", role, []string{ws}, func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Minute).Unix() })
		}, deny401},
		{"bad signature", func(ws, role string) string {
			tok := token(t, "u", role, []string{ws}, nil)
			return tok[:len(tok)-4] + "AAAA"
		}, deny401},
		{"alg none", func(ws, role string) string {
			s, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "u", "role": role, "workspaces": []string{ws}, "aud": "tandem", "exp": time.Now().Add(time.Hour).Unix()}).SignedString(jwt.UnsafeAllowNoneSignatureType)
			return s
		}, deny401},
		{"wrong audience", func(ws, role string) string {
			return token(t, "u", role, []string{ws}, func(c jwt.MapClaims) { c["aud"] = "someone-else" })
		}, deny401},
	}
	admin := func(ws string) map[string]string {
		return map[string]string{"Authorization": "Bearer " + token(t, "root", "admin", []string{ws}, nil)}
	}
	seq := 0
	for _, r := range routes {
		for _, roleName := range roles {
			role, _ := auth.ParseRole(roleName)
			for _, c := range creds {
				seq++
				ws := fmt.Sprintf("m%d", seq)
				// A fresh workspace with a session for every case, made by an admin.
				if code, body := send(t, "PUT", n.URL+"/v1/workspaces/"+ws, "", admin(ws)); code != 201 {
					t.Fatalf("setup PUT: %d %s", code, body)
				}
				if code, body := send(t, "POST", n.URL+"/v1/workspaces/"+ws+"/sessions", `{"id":"s1"}`, admin(ws)); code != 201 {
					t.Fatalf("setup session: %d %s", code, body)
				}
				hdr := map[string]string{}
				if tok := c.token(ws, roleName); tok != "" {
					hdr["Authorization"] = "Bearer " + tok
				}
				want := c.status(r, role)
				before := keysOf(t, rdb, ws)
				url := n.URL + fmt.Sprintf(r.path, ws)
				var code int
				var body string
				if strings.HasSuffix(r.path, "/stream") {
					code, body = streamStatus(t, url, hdr)
				} else {
					code, body = send(t, r.method, url, r.body, hdr)
				}
				if code != want {
					t.Errorf("%s %s as %s with %s: %d %s, want %d", r.method, r.path, roleName, c.name, code, body, want)
				}
				if code >= 400 {
					if after := keysOf(t, rdb, ws); after != before {
						t.Errorf("%s %s as %s with %s was refused but changed Redis:\n%s\n%s", r.method, r.path, roleName, c.name, before, after)
					}
					if code == 401 && !strings.Contains(body, "urn:tandem:error:") {
						t.Errorf("401 without a problem body: %s", body)
					}
				}
			}
		}
	}
}

// streamStatus opens a stream and returns its status (and closes it).
func streamStatus(t testing.TB, url string, hdr map[string]string) (int, string) {
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	return 200, ""
}

// A member cannot speak as another user, a viewer cannot prompt, and a
// token for workspace A opens neither B's stream nor its history.
func TestIdentityIsTheToken(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	rdb := rs.Client(t)
	n := jwtNode(t, rs.URL(), nil)
	adminA := map[string]string{"Authorization": "Bearer " + token(t, "root", "admin", []string{"*"}, nil)}
	for _, ws := range []string{"a", "b"} {
		send(t, "PUT", n.URL+"/v1/workspaces/"+ws, "", adminA)
	}
	ann := map[string]string{"Authorization": "Bearer " + token(t, "ann", "member", []string{"a"}, nil), "X-User-Id": "bob"}
	code, body := send(t, "POST", n.URL+"/v1/workspaces/a/sessions/default/prompt", `{"text":"I am bob"}`, ann)
	if code != 202 {
		t.Fatalf("prompt: %d %s", code, body)
	}
	// The body may name the caller (the SDK's prompt({userId, text})),
	// never another user.
	if code, body := send(t, "POST", n.URL+"/v1/workspaces/a/sessions/default/prompt", `{"text":"x","userId":"bob"}`, ann); code != 403 || !strings.Contains(body, "urn:tandem:error:user_mismatch") {
		t.Fatalf("a body naming another user: %d %s, want 403 user_mismatch", code, body)
	}
	entries, _ := rdb.XRange(context.Background(), "{ws:a}:inbox", "-", "+").Result()
	var users []string
	for _, e := range entries {
		if e.Values["k"] == "prompt" {
			users = append(users, fmt.Sprint(e.Values["user"]))
		}
	}
	if len(users) != 1 || users[0] != "ann" {
		t.Fatalf("prompt users %v, want [ann]: the identity must be the token's subject", users)
	}
	viewer := map[string]string{"Authorization": "Bearer " + token(t, "vic", "viewer", []string{"a"}, nil)}
	if code, _ := send(t, "POST", n.URL+"/v1/workspaces/a/sessions/default/prompt", `{"text":"hi"}`, viewer); code != 403 {
		t.Fatalf("viewer prompt: %d", code)
	}
	if code, _ := send(t, "GET", n.URL+"/v1/workspaces/b/sessions/default/events", "", ann); code != 403 {
		t.Fatalf("history of b with a token for a: %d", code)
	}
	if code, _ := streamStatus(t, n.URL+"/v1/workspaces/b/sessions/default/events/stream", ann); code != 403 {
		t.Fatalf("stream of b with a token for a: %d", code)
	}
	// Never from the query string.
	if code, _ := send(t, "GET", n.URL+"/v1/workspaces/a/sessions/default/events?access_token="+token(t, "ann", "viewer", []string{"a"}, nil), "", nil); code != 401 {
		t.Fatalf("token in the query string: %d, want 401", code)
	}
}

// A stream ends when its token expires; the client's reconnect with a
// fresh token resumes at its cursor.
func TestStreamEndsWithToken(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	n := jwtNode(t, rs.URL(), nil)
	l := eventlog.New(rs.Client(t), eventlog.Config{})
	ep := holdWorkspace(t, l, "x", "s")
	evs := appendN(t, l, "x", "s", ep, 0, 5, 5)
	url := n.URL + "/v1/workspaces/x/sessions/s/events/stream"
	short := token(t, "ann", "viewer", []string{"x"}, func(c jwt.MapClaims) { c["exp"] = time.Now().Add(2 * time.Second).Unix() })
	c, err := ssetest.Dial(context.Background(), url, "", http.Header{"Authorization": {"Bearer " + short}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var got []ssetest.Event
	if err := collect(c, evs[4].ID, time.Now().Add(5*time.Second), &got); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for {
		if _, err := c.Next(); err != nil {
			break // closed by the node
		}
		if time.Since(start) > 10*time.Second {
			t.Fatal("the stream outlived its token")
		}
	}
	t.Logf("stream closed %v after the last event (token lifetime 2s, leeway 1s)", time.Since(start))
	more := appendN(t, l, "x", "s", ep, 5, 3, 5)
	fresh := token(t, "ann", "viewer", []string{"x"}, nil)
	c2, err := ssetest.Dial(context.Background(), url, got[len(got)-1].ID, http.Header{"Authorization": {"Bearer " + fresh}})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	var rest []ssetest.Event
	if err := collect(c2, more[2].ID, time.Now().Add(5*time.Second), &rest); err != nil {
		t.Fatal(err)
	}
	checkReceived(t, "first connection", got, evs)
	checkReceived(t, "after the fresh token", rest, more)
	// The expired token itself cannot reconnect.
	if _, err := ssetest.Dial(context.Background(), url, got[len(got)-1].ID, http.Header{"Authorization": {"Bearer " + short}}); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("reconnect with the expired token: %v", err)
	}
}
