package node_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/tandem-dev/tandem/internal/nodetest"
)

func api(t *testing.T, method, url string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		json.Unmarshal(b, out)
	}
	return resp.StatusCode
}

type record struct {
	ID, Agent   string
	CreatedAt   int64
	DestroyedAt *int64
}

// The session and workspace routes: create, resume, list in pages, get,
// destroy; delete the workspace and create it again.
func TestWorkspaceAndSessionRoutes(t *testing.T) { forEachRedis(t, workspaceAndSessionRoutes) }

func workspaceAndSessionRoutes(t *testing.T, redisURL string) {
	n := nodetest.Start(t, redisURL, nil)
	base := n.URL + "/v1/workspaces/room"
	t.Run("OK create and update", func(t *testing.T) {
		if code := api(t, "PUT", base, map[string]any{"agent": "claude", "sandbox": map[string]string{"baseUrl": "http://127.0.0.1:9", "token": "s3cret", "sandboxId": "sb-1"}}, nil); code != 201 {
			t.Fatalf("PUT: %d", code)
		}
		var info map[string]any
		if code := api(t, "PUT", base, map[string]any{"agent": "mock", "agents": []string{"codex"}}, &info); code != 200 {
			t.Fatalf("second PUT: %d", code)
		}
		raw, _ := json.Marshal(info)
		if bytes.Contains(raw, []byte("s3cret")) {
			t.Fatal("the sandbox token was returned")
		}
		if info["agent"] != "mock" || info["workspaceId"] != "room" {
			t.Fatalf("info %v", info)
		}
	})
	t.Run("OK sessions", func(t *testing.T) {
		var r record
		if code := api(t, "POST", base+"/sessions", map[string]string{"id": "s1", "agent": "codex"}, &r); code != 201 || r.ID != "s1" || r.Agent != "codex" {
			t.Fatalf("create: %d %+v", code, r)
		}
		if code := api(t, "POST", base+"/sessions", map[string]string{"id": "s1"}, &r); code != 200 || r.Agent != "codex" {
			t.Fatalf("resume: %d %+v", code, r)
		}
		for _, id := range []string{"s2", "s3"} {
			time.Sleep(2 * time.Millisecond)
			api(t, "POST", base+"/sessions", map[string]string{"id": id}, nil)
		}
		var anon record
		if code := api(t, "POST", base+"/sessions", nil, &anon); code != 201 || anon.ID == "" || anon.Agent != "mock" {
			t.Fatalf("create without id: %d %+v", code, anon)
		}
		var page struct {
			Items      []record
			NextCursor string
		}
		api(t, "GET", base+"/sessions?limit=2", nil, &page)
		if len(page.Items) != 2 || page.Items[0].ID != "s1" || page.Items[1].ID != "s2" || page.NextCursor == "" {
			t.Fatalf("first page %+v", page)
		}
		var page2 struct {
			Items      []record
			NextCursor string
		}
		api(t, "GET", base+"/sessions?limit=2&cursor="+page.NextCursor, nil, &page2)
		if len(page2.Items) != 2 || page2.Items[0].ID != "s3" || page2.Items[1].ID != anon.ID || page2.NextCursor != "" {
			t.Fatalf("second page %+v", page2)
		}
		if code := api(t, "DELETE", base+"/sessions/s2", nil, &r); code != 200 || r.DestroyedAt == nil {
			t.Fatalf("delete: %d %+v", code, r)
		}
		var got record
		api(t, "GET", base+"/sessions/s2", nil, &got)
		if got.DestroyedAt == nil {
			t.Fatal("destroyedAt not kept")
		}
		if code := api(t, "POST", base+"/sessions/s2/prompt", map[string]string{"text": "hi"}, nil); code != 409 {
			t.Fatalf("prompt to a destroyed session: %d", code)
		}
	})
	t.Run("OK delete and create again", func(t *testing.T) {
		if code := api(t, "DELETE", base, nil, nil); code != 204 {
			t.Fatalf("DELETE: %d", code)
		}
		if code := api(t, "GET", base, nil, nil); code != 404 {
			t.Fatalf("GET after DELETE: %d", code)
		}
		if code := api(t, "DELETE", base, nil, nil); code != 404 {
			t.Fatalf("second DELETE: %d", code)
		}
		if code := api(t, "POST", base+"/sessions/s1/prompt", map[string]string{"text": "hi"}, nil); code != 404 {
			t.Fatalf("prompt to a deleted workspace: %d", code)
		}
		// The id is tombstoned until a purge.
		if code := api(t, "PUT", base, nil, nil); code != 409 {
			t.Fatalf("PUT of a deleted id: %d", code)
		}
		if code := api(t, "DELETE", base+"?purge=true", nil, nil); code != 204 {
			t.Fatalf("purge: %d", code)
		}
		if code := api(t, "PUT", base, nil, nil); code != 201 {
			t.Fatalf("PUT after the purge: %d", code)
		}
		if code := api(t, "GET", base+"/sessions/s1", nil, nil); code != 404 {
			t.Fatalf("a session of the purged workspace: %d", code)
		}
	})
}
