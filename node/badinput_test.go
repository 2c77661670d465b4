package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tandem-dev/tandem/eventlog/model"
	"github.com/tandem-dev/tandem/internal/nodetest"
	"github.com/tandem-dev/tandem/internal/redistest"
)

// redisState is everything in Redis that a request could change, minus
// what changes by itself (owner and lock expiry, presence reports, the
// active set's scores).
func redisState(t *testing.T, rdb *redis.Client) string {
	t.Helper()
	ctx := context.Background()
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		if strings.HasSuffix(k, ":owner") || strings.HasSuffix(k, ":lock") || strings.HasSuffix(k, ":presence") ||
			strings.HasSuffix(k, ":events:~ws:state") {
			continue
		}
		if strings.HasSuffix(k, ":events:~ws") {
			// The workspace stream: what requests write there (at accept
			// and withdraw), not the owner's summaries and dispatch
			// notes, which it writes in the background.
			n := 0
			for _, m := range rdb.XRange(ctx, k, "-", "+").Val() {
				switch m.Values["t"] {
				case model.TypeSessionCreated, model.TypePromptQueued, model.TypePromptWithdrawn:
					n++
				}
			}
			fmt.Fprintf(&b, "%s requests wrote %d\n", k, n)
			continue
		}
		typ := rdb.Type(ctx, k).Val()
		fmt.Fprintf(&b, "%s %s ", k, typ)
		switch typ {
		case "stream":
			// Entries ever added, not XLEN: the owner deletes the inbox
			// entries it acknowledges, in the background.
			fmt.Fprint(&b, rdb.XInfoStream(ctx, k).Val().EntriesAdded)
		case "hash":
			fmt.Fprint(&b, rdb.HGetAll(ctx, k).Val())
		case "zset":
			fmt.Fprint(&b, rdb.ZRange(ctx, k, 0, -1).Val())
		case "string":
			fmt.Fprint(&b, rdb.Get(ctx, k).Val())
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// Bad input for every route gets a problem+json error with a stable type
// and changes nothing in Redis.
func TestBadInputChangesNothing(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	rdb := rs.Client(t)
	n := nodetest.Start(t, rs.URL(), nil)
	do := func(method, path, ctype, body string, hdr map[string]string) (int, map[string]any) {
		req, _ := http.NewRequest(method, n.URL+path, strings.NewReader(body))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var p map[string]any
		json.Unmarshal(raw, &p)
		if resp.StatusCode >= 400 && resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s %s: %d with Content-Type %q", method, path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		return resp.StatusCode, p
	}
	// A workspace with a session, and one destroyed session.
	if code, _ := do("PUT", "/v1/workspaces/w", "", "", nil); code != 201 {
		t.Fatalf("PUT: %d", code)
	}
	if code, _ := do("POST", "/v1/workspaces/w/sessions", "application/json", `{"id":"s1"}`, nil); code != 201 {
		t.Fatalf("create session: %d", code)
	}
	if code, _ := do("POST", "/v1/workspaces/w/sessions", "application/json", `{"id":"gone"}`, nil); code != 201 {
		t.Fatalf("create session: %d", code)
	}
	if code, _ := do("DELETE", "/v1/workspaces/w/sessions/gone", "", "", nil); code != 200 {
		t.Fatalf("delete session: %d", code)
	}
	time.Sleep(500 * time.Millisecond) // let the owner settle what it was asked
	long := strings.Repeat("x", 129)
	big := `{"text":"` + strings.Repeat("y", 33<<10) + `"}`
	huge := `{"text":"` + strings.Repeat("z", 2<<20) + `"}`
	const J = "application/json"
	for _, tc := range []struct {
		method, path, ctype, body string
		hdr                       map[string]string
		status                    int
		typ                       string
	}{
		{"PUT", "/v1/workspaces/" + long, "", "", nil, 400, "invalid_id"},
		{"PUT", "/v1/workspaces/a$b", "", "", nil, 400, "invalid_id"},
		{"PUT", "/v1/workspaces/w2", J, `{"agent":`, nil, 400, "malformed_json"},
		{"PUT", "/v1/workspaces/w2", "text/plain", `{"agent":"mock"}`, nil, 415, "unsupported_media_type"},
		{"PUT", "/v1/workspaces/w2", J, `{"agnt":"mock"}`, nil, 400, "malformed_json"},
		{"PUT", "/v1/workspaces/w2", J, `{"agent":"Bad Agent"}`, nil, 400, "invalid_request"},
		{"PUT", "/v1/workspaces/w2", J, `{"sandbox":{"baseUrl":"ftp://x"}}`, nil, 400, "invalid_request"},
		{"PUT", "/v1/workspaces/w2", J, `{"sandbox":{"baseUrl":"http://u:p@x"}}`, nil, 400, "invalid_request"},
		{"PUT", "/v1/workspaces/w2", J, `{"sandbox":{}}`, nil, 400, "invalid_request"},
		{"PUT", "/v1/workspaces/w2", J, `{"agent":"mock"} {}`, nil, 400, "malformed_json"},
		{"PUT", "/v1/workspaces/w2", J, `[]`, nil, 400, "malformed_json"},
		{"PUT", "/v1/workspaces/w2", J, huge, nil, 413, "body_too_large"},
		{"GET", "/v1/workspaces/nope", "", "", nil, 404, "workspace_not_found"},
		{"DELETE", "/v1/workspaces/nope", "", "", nil, 404, "workspace_not_found"},
		{"PATCH", "/v1/workspaces/w", "", "", nil, 405, "method_not_allowed"},
		{"GET", "/v1/workspaces/nope/sessions", "", "", nil, 404, "workspace_not_found"},
		{"GET", "/v1/workspaces/w/sessions?limit=0", "", "", nil, 400, "invalid_limit"},
		{"GET", "/v1/workspaces/w/sessions?cursor=zzz", "", "", nil, 400, "invalid_request"},
		{"POST", "/v1/workspaces/nope/sessions", J, `{"id":"x"}`, nil, 404, "workspace_not_found"},
		{"POST", "/v1/workspaces/w/sessions", J, `{"id":"bad id"}`, nil, 400, "invalid_id"},
		{"POST", "/v1/workspaces/w/sessions", J, `{"id":"x","agent":"NO!"}`, nil, 400, "invalid_request"},
		{"POST", "/v1/workspaces/w/sessions", J, `{"id":1}`, nil, 400, "malformed_json"},
		{"POST", "/v1/workspaces/w/sessions", "application/xml", `{"id":"x"}`, nil, 415, "unsupported_media_type"},
		{"POST", "/v1/workspaces/w/sessions", J, `{"id":"gone"}`, nil, 409, "session_destroyed"},
		{"GET", "/v1/workspaces/w/sessions/nope", "", "", nil, 404, "session_not_found"},
		{"GET", "/v1/workspaces/nope/sessions/s1", "", "", nil, 404, "workspace_not_found"},
		{"GET", "/v1/workspaces/w/sessions/" + long, "", "", nil, 400, "invalid_id"},
		{"DELETE", "/v1/workspaces/w/sessions/nope", "", "", nil, 404, "session_not_found"},
		{"POST", "/v1/workspaces/nope/sessions/default/prompt", J, `{"text":"hi"}`, nil, 404, "workspace_not_found"},
		{"POST", "/v1/workspaces/w/sessions/nope/prompt", J, `{"text":"hi"}`, nil, 404, "session_not_found"},
		{"POST", "/v1/workspaces/w/sessions/gone/prompt", J, `{"text":"hi"}`, nil, 409, "session_destroyed"},
		{"POST", "/v1/workspaces/w/sessions/s1/prompt", J, `{"text":""}`, nil, 400, "invalid_request"},
		{"POST", "/v1/workspaces/w/sessions/s1/prompt", J, `{"text":"  \n "}`, nil, 400, "invalid_request"},
		{"POST", "/v1/workspaces/w/sessions/s1/prompt", J, `{}`, nil, 400, "invalid_request"},
		{"POST", "/v1/workspaces/w/sessions/s1/prompt", J, ``, nil, 400, "malformed_json"},
		{"POST", "/v1/workspaces/w/sessions/s1/prompt", J, `{"text":5}`, nil, 400, "malformed_json"},
		{"POST", "/v1/workspaces/w/sessions/s1/prompt", J, `{"text":"hi"`, nil, 400, "malformed_json"},
		{"POST", "/v1/workspaces/w/sessions/s1/prompt", J, `{"text":"hi","user":"x"}`, nil, 400, "malformed_json"},
		{"POST", "/v1/workspaces/w/sessions/s1/prompt", "text/plain", `{"text":"hi"}`, nil, 415, "unsupported_media_type"},
		{"POST", "/v1/workspaces/w/sessions/s1/prompt", "", `{"text":"hi"}`, nil, 415, "unsupported_media_type"},
		{"POST", "/v1/workspaces/w/sessions/s1/prompt", J, big, nil, 413, "prompt_too_large"},
		{"POST", "/v1/workspaces/w/sessions/s1/prompt", J, huge, nil, 413, "body_too_large"},
		{"POST", "/v1/workspaces/w/sessions/s1/prompt", J, `{"text":"hi"}`, map[string]string{"X-User-Id": "bad user"}, 400, "invalid_user"},
		{"POST", "/v1/workspaces/w/sessions/s1/prompt", J, `{"text":"hi"}`, map[string]string{"Idempotency-Key": strings.Repeat("k", 300)}, 400, "invalid_request"},
		{"GET", "/v1/workspaces/w/sessions/s1/prompt", "", "", nil, 405, "method_not_allowed"},
		{"POST", "/v1/workspaces/nope/sessions/s1/cancel", "", "", nil, 404, "workspace_not_found"},
		{"POST", "/v1/workspaces/w/sessions/nope/cancel", "", "", nil, 404, "session_not_found"},
		{"POST", "/v1/workspaces/w/sessions/gone/cancel", "", "", nil, 409, "session_destroyed"},
		{"GET", "/v1/workspaces/nope/sessions/default/events", "", "", nil, 404, "workspace_not_found"},
		{"GET", "/v1/workspaces/w/sessions/nope/events", "", "", nil, 404, "session_not_found"},
		{"GET", "/v1/workspaces/w/sessions/s1/events?cursor=x", "", "", nil, 400, "cursor_malformed"},
		{"GET", "/v1/workspaces/nope/sessions/default/events/stream", "", "", nil, 404, "workspace_not_found"},
		{"GET", "/v1/workspaces/w/sessions/nope/events/stream", "", "", nil, 404, "session_not_found"},
		{"GET", "/v1/workspaces/w/sessions/s1/events/stream", "", "", map[string]string{"Last-Event-ID": "x"}, 400, "cursor_malformed"},
		// Permission requests, modes and sessionInit.
		{"PUT", "/v1/workspaces/w2", J, `{"permissionPolicy":"sometimes"}`, nil, 400, "invalid_request"},
		{"POST", "/v1/workspaces/w/sessions", J, `{"id":"x","mode":"bad mode"}`, nil, 400, "invalid_request"},
		{"POST", "/v1/workspaces/w/sessions", J, `{"id":"x","sessionInit":{"cwd":"relative"}}`, nil, 400, "invalid_request"},
		{"POST", "/v1/workspaces/w/sessions", J, `{"id":"x","sessionInit":{"cwd":"/tmp","env":{}}}`, nil, 400, "malformed_json"},
		{"POST", "/v1/workspaces/w/sessions", J, `{"id":"x","sessionInit":{"mcpServers":[1]}}`, nil, 400, "invalid_request"},
		{"PATCH", "/v1/workspaces/w/sessions/s1", J, `{}`, nil, 400, "invalid_request"},
		{"PATCH", "/v1/workspaces/w/sessions/s1", J, `{"mode":""}`, nil, 400, "invalid_request"},
		{"PATCH", "/v1/workspaces/w/sessions/s1", J, `{"mode":"code","zzz":1}`, nil, 400, "malformed_json"},
		{"PATCH", "/v1/workspaces/w/sessions/s1", J, `{"configOptions":{"a":1}}`, nil, 400, "malformed_json"},
		{"PATCH", "/v1/workspaces/w/sessions/nope", J, `{"mode":"code"}`, nil, 404, "session_not_found"},
		{"PATCH", "/v1/workspaces/w/sessions/gone", J, `{"mode":"code"}`, nil, 409, "session_destroyed"},
		{"POST", "/v1/workspaces/w/sessions/s1/permissions/perm-1", J, `{"optionId":"allow-once"}`, nil, 404, "permission_not_found"},
		{"POST", "/v1/workspaces/w/sessions/s1/permissions/a$b", J, `{"optionId":"allow-once"}`, nil, 404, "permission_not_found"},
		{"POST", "/v1/workspaces/w/sessions/s1/permissions/perm-1", J, `{}`, nil, 400, "invalid_request"},
		{"POST", "/v1/workspaces/w/sessions/s1/permissions/perm-1", J, `{"optionId":"a","outcome":"cancelled"}`, nil, 400, "invalid_request"},
		{"POST", "/v1/workspaces/w/sessions/s1/permissions/perm-1", J, `{"outcome":"maybe"}`, nil, 400, "invalid_request"},
		{"POST", "/v1/workspaces/w/sessions/s1/permissions/perm-1", J, `{"optionId":"a","by":"me"}`, nil, 400, "malformed_json"},
		{"POST", "/v1/workspaces/w/sessions/nope/permissions/perm-1", J, `{"optionId":"a"}`, nil, 404, "session_not_found"},
		{"POST", "/v1/workspaces/nope/sessions/s1/permissions/perm-1", J, `{"optionId":"a"}`, nil, 404, "workspace_not_found"},
		{"GET", "/v1/workspaces/w/sessions/s1/permissions/perm-1", "", "", nil, 405, "method_not_allowed"},
	} {
		before := redisState(t, rdb)
		code, p := do(tc.method, tc.path, tc.ctype, tc.body, tc.hdr)
		name := fmt.Sprintf("%s %s %.40s", tc.method, tc.path, tc.body)
		if code != tc.status || p["type"] != "urn:tandem:error:"+tc.typ {
			t.Errorf("%s: %d %v, want %d %s", name, code, p["type"], tc.status, tc.typ)
			continue
		}
		if p["title"] == "" || p["status"] != float64(code) {
			t.Errorf("%s: incomplete problem %v", name, p)
		}
		if after := redisState(t, rdb); after != before {
			t.Errorf("%s changed Redis:\nbefore:\n%s\nafter:\n%s", name, before, after)
		}
	}
	_ = bytes.MinRead
}
