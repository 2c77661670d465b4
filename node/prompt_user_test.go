package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/tandem-dev/tandem/eventlog"
	"github.com/tandem-dev/tandem/internal/nodetest"
	"github.com/tandem-dev/tandem/internal/redistest"
)

// The prompt body takes the SDK's userId when it is the caller's own
// identity (conn.prompt({userId, text}) works unchanged); another user's
// id is refused with 403 user_mismatch and queues nothing.
func TestPromptUserID(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	n := nodetest.Start(t, srv.URL(), nil)
	base := n.URL + "/v1/workspaces/sdk"
	if code := api(t, "PUT", base, nil, nil); code != 201 {
		t.Fatalf("PUT: %d", code)
	}
	post := func(body string) (int, map[string]any) {
		req, _ := http.NewRequest("POST", base+"/sessions/default/prompt", bytes.NewBufferString(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-User-Id", "ann")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var out map[string]any
		json.Unmarshal(b, &out)
		return resp.StatusCode, out
	}
	rdb := srv.Client(t)
	// The inbox's entries as text (the owner may acknowledge and trim
	// the accepted prompt meanwhile, so its length proves nothing).
	inbox := func() string {
		msgs, err := rdb.XRange(context.Background(), eventlog.InboxKey("sdk"), "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(msgs)
		return string(b)
	}
	code, out := post(`{"userId":"ann","text":"hi"}`)
	if code != 202 || out["id"] == "" || out["sessionId"] != "default" {
		t.Fatalf("own userId: %d %v", code, out)
	}
	for _, body := range []string{`{"userId":"bob","text":"hi"}`, `{"userId":"","text":"hi"}`} {
		code, out = post(body)
		if code != 403 || out["type"] != "urn:tandem:error:user_mismatch" {
			t.Fatalf("%s: %d %v", body, code, out)
		}
	}
	if in := inbox(); bytes.Contains([]byte(in), []byte("bob")) {
		t.Fatalf("a refused prompt was queued: %s", in)
	}
}
