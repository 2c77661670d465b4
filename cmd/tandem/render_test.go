package main

import (
	"bytes"
	"flag"
	"strings"
	"testing"

	"github.com/tandem-dev/tandem/streamclient"
)

func chunk(text string) string {
	return `{"sender":"agent","connectionId":"c","payload":{"jsonrpc":"2.0","method":"session/update","params":{"sessionId":"x","update":{"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":"` + text + `"}}}}}`
}

func TestRender(t *testing.T) {
	events := []struct{ typ, data string }{
		{"presence", `{"users":[{"userId":"bob","connections":2},{"userId":"ann","connections":1}]}`},
		{"chat.user", `{"id":"a:1","eventIndex":1,"createdAt":1000,"userId":"ann","text":"hello","promptId":"p1"}`},
		{"session.event", `{"sender":"client","payload":{"jsonrpc":"2.0","id":5,"method":"session/prompt"}}`},
		{"session.status", `{"createdAt":1000,"status":"turn_started","detail":{"promptId":"p1","userId":"ann","requestId":5}}`},
		{"session.event", chunk("You said")},
		{"session.event", chunk(": hel")},
		{"session.event", `{"sender":"agent","payload":{"method":"session/update","params":{"update":{"sessionUpdate":"tool_call","toolCallId":"t1","title":"Read file","status":"pending"}}}}`},
		{"session.event", `{"sender":"agent","payload":{"method":"session/update","params":{"update":{"sessionUpdate":"tool_call_update","toolCallId":"t1"}}}}`},
		{"session.event", `{"sender":"agent","payload":{"method":"session/update","params":{"update":{"sessionUpdate":"tool_call_update","toolCallId":"t1","status":"completed"}}}}`},
		{"session.event", chunk("lo\\nsecond line")},
		{"session.event", `{"sender":"agent","payload":{"jsonrpc":"2.0","id":5,"result":{"stopReason":"end_turn"}}}`},
		{"session.status", `{"createdAt":2500,"status":"turn_ended","detail":{"promptId":"p1","stopReason":"end_turn","reason":""}}`},
		{"presence", `{"users":[{"userId":"ann","connections":1},{"userId":"bob","connections":2}]}`},
		{"session.status", `{"status":"owner_changed","detail":{"node":"b","epoch":2}}`},
		{"session.event", chunk("loose")},
		{"session.status", `{"createdAt":3000,"status":"turn_ended","detail":{"promptId":"p2","stopReason":"error","reason":"the agent connection was lost"}}`},
		{"session.event", `{"sender":"agent","payload":{"jsonrpc":"2.0","id":7,"error":{"code":-32603,"message":"boom"}}}`},
		{"session.event", `{"sender":"agent","payload":{"jsonrpc":"2.0","id":"tandem.dispatch.1-0","error":{"code":-32601,"message":"method not found: _tandem/dispatch"}}}`},
		{"reset", `{"reason":"cursor_expired","oldest":"a:9"}`},
		{"session.status", `{"status":"sandbox_unhealthy","detail":{"failures":3}}`},
		{"session.status", `{"status":"something_new","detail":{"x":[1]}}`},
	}
	var out bytes.Buffer
	r := newRenderer(&out)
	for _, ev := range events {
		r.Render(ev.typ, []byte(ev.data))
	}
	r.Flush()
	want := `* here: ann, bob (2)
ann: hello
── turn started for ann
agent: You said: hel
  [tool] Read file: pending
  [tool] Read file: completed
agent: lo
second line
── turn ended (end_turn, 1.5 s)
* node b now runs the session
agent: loose
── turn failed: the agent connection was lost
agent error: boom
! the stream could not resume at your cursor (cursor_expired): it continues from the oldest event kept
* the sandbox is not responding (3 failed health checks); restarting it
* session status: something_new
`
	if got := out.String(); got != want {
		t.Fatalf("rendered:\n%s\nwant:\n%s", got, want)
	}
}

func TestPrintJSON(t *testing.T) {
	for _, tc := range []struct {
		name string
		ev   streamclient.Event
		want string
	}{
		{"OK persisted as is", streamclient.Event{ID: "a:1", Type: "chat.user", Data: []byte(`{"id":"a:1","type":"chat.user","text":"x"}`)}, `{"id":"a:1","type":"chat.user","text":"x"}` + "\n"},
		{"OK reset gets its type", streamclient.Event{Type: "reset", Data: []byte(`{"reason":"cursor_expired","oldest":"a:9"}`)}, `{"type":"reset","reason":"cursor_expired","oldest":"a:9"}` + "\n"},
		{"OK empty object", streamclient.Event{Type: "reset", Data: []byte(`{}`)}, `{"type":"reset"}` + "\n"},
		{"OK presence left out", streamclient.Event{Type: "presence", Data: []byte(`{"users":[]}`)}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := printJSON(&b, tc.ev); err != nil {
				t.Fatal(err)
			}
			if b.String() != tc.want {
				t.Fatalf("got %q, want %q", b.String(), tc.want)
			}
		})
	}
}

func TestParseArgs(t *testing.T) {
	for _, tc := range []struct {
		args []string
		pos  string
		json bool
		url  string
	}{
		{[]string{"demo"}, "demo", false, "d"},
		{[]string{"--json", "demo", "s1"}, "demo s1", true, "d"},
		{[]string{"demo", "--url", "http://x", "s1", "--json"}, "demo s1", true, "http://x"},
		{[]string{"-url=http://y", "demo", "--", "--json"}, "demo --json", false, "http://y"},
		{[]string{"demo", "-"}, "demo -", false, "d"},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		j := fs.Bool("json", false, "")
		u := fs.String("url", "d", "")
		pos, err := parseArgs(fs, tc.args)
		if err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		if strings.Join(pos, " ") != tc.pos || *j != tc.json || *u != tc.url {
			t.Errorf("%q: positional %q json %v url %q", tc.args, pos, *j, *u)
		}
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(&bytes.Buffer{})
	if _, err := parseArgs(fs, []string{"--nope", "x"}); err == nil {
		t.Error("an unknown flag was accepted")
	}
}

// Permission requests show their options and how to answer; their
// resolutions and the configuration statuses say who did what.
func TestRenderPermission(t *testing.T) {
	var out bytes.Buffer
	r := newRenderer(&out)
	r.Render("permission.requested", []byte(`{"requestId":"perm-1","toolCall":{"title":"Run tests","kind":"execute","rawInput":{"command":["go","test"]}},"options":[{"optionId":"allow-once","name":"Allow once"},{"optionId":"reject-once","name":"Reject"}]}`))
	r.Render("permission.resolved", []byte(`{"requestId":"perm-1","optionId":"allow-once","outcome":"selected","by":"bob"}`))
	r.Render("permission.resolved", []byte(`{"requestId":"perm-2","outcome":"cancelled","by":"timeout","reason":"nobody answered in time"}`))
	r.Render("session.status", []byte(`{"status":"mode_changed","detail":{"mode":"code","by":"ann"}}`))
	r.Render("session.status", []byte(`{"status":"agent_error","detail":{"message":"cwd is not a directory","code":-32602}}`))
	r.Flush()
	want := `? the agent asks: Run tests (execute)
    $ go test
    request perm-1, options: allow-once (Allow once), reject-once (Reject)
    answer with: tandem approve WORKSPACE [SESSION] perm-1 OPTION_ID
* bob chose allow-once for request perm-1
* timeout cancelled (nobody answered in time) for request perm-2
* ann set the mode to code
! the agent could not start: cwd is not a directory
`
	if got := out.String(); got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
}
