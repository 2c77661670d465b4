package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/tandem-dev/tandem/internal/ssetest"
)

// Permission requests on the real Sandbox Agent server with the scripted
// agent's [permission] (it asks before its text, and says the option it
// got: "permission: <optionId>").

// eventsOf returns the bodies of the collected events of type typ.
func eventsOf(evs []ssetest.Event, typ string) []map[string]any {
	var out []map[string]any
	for _, ev := range evs {
		if ev.Type == typ {
			var b map[string]any
			if json.Unmarshal([]byte(ev.Data), &b) == nil {
				out = append(out, b)
			}
		}
	}
	return out
}

func hasEvent(typ string) func([]ssetest.Event) bool {
	return func(evs []ssetest.Event) bool { return len(eventsOf(evs, typ)) > 0 }
}

// followWith is follow with request headers (a bearer token).
func followWith(t testing.TB, n *node, ws, sid string, hdr http.Header) *collector {
	ctx, cancel := context.WithCancel(context.Background())
	c := &collector{cancel: cancel, done: make(chan struct{})}
	conn, err := ssetest.Dial(ctx, n.URL()+"/v1/workspaces/"+ws+"/sessions/"+sid+"/events/stream", "", hdr)
	if err != nil {
		cancel()
		t.Fatalf("stream: %v", err)
	}
	go func() {
		defer close(c.done)
		defer conn.Close()
		for {
			ev, err := conn.Next()
			if err != nil {
				return
			}
			if ev.Type == "" || ev.Type == "presence" {
				continue
			}
			c.mu.Lock()
			c.events = append(c.events, ev)
			c.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); <-c.done })
	return c
}

// agentResponses reads the responses to the agent's own requests that the
// scripted agent logged: how many were awaited, and how many came for no
// request (a second reply).
func (e *env) agentResponses(t testing.TB) (awaited, unawaited int, results []string) {
	t.Helper()
	f, err := os.Open(e.promptLog)
	if os.IsNotExist(err) {
		return 0, 0, nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l struct {
			Kind    string
			Awaited bool
			Result  json.RawMessage
		}
		if json.Unmarshal(sc.Bytes(), &l) != nil || l.Kind != "response" {
			continue
		}
		if l.Awaited {
			awaited++
			results = append(results, string(l.Result))
		} else {
			unawaited++
		}
	}
	return awaited, unawaited, results
}

type problem struct {
	Type       string
	Status     int
	Detail     string
	Resolution map[string]any
}

func answer(t testing.TB, n *node, ws, sid, rid string, body any, hdr map[string]string) (int, map[string]any, problem) {
	t.Helper()
	var raw json.RawMessage
	code := call(t, "POST", n.URL()+"/v1/workspaces/"+ws+"/sessions/"+sid+"/permissions/"+rid, body, hdr, &raw)
	var res map[string]any
	var p problem
	if code == 200 {
		_ = json.Unmarshal(raw, &res)
	} else {
		_ = json.Unmarshal(raw, &p)
	}
	return code, res, p
}

// Two people on two nodes: the agent asks; both see it; one answers
// through the node that is not the owner; the agent goes on with exactly
// that option; both see permission.resolved with who answered; a second
// answer gets 409 and changes nothing; a viewer gets 403.
func TestPermissionTwoPeopleTwoNodes(t *testing.T) {
	e := newEnv(t)
	secret := "permission-test-secret-0123456789abcdef"
	jwtEnv := map[string]string{"TANDEM_AUTH": "jwt", "TANDEM_JWT_SECRET": secret}
	a := e.node("a", jwtEnv)
	b := e.node("b", jwtEnv)
	const ws = "perm-room"
	mint := func(sub, role string) map[string]string {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"sub": sub, "role": role, "workspaces": []string{ws}, "exp": time.Now().Add(time.Hour).Unix(),
		}).SignedString([]byte(secret))
		if err != nil {
			t.Fatal(err)
		}
		return map[string]string{"Authorization": "Bearer " + tok}
	}
	admin, ann, bob, vic := mint("root", "admin"), mint("ann", "member"), mint("bob", "member"), mint("vic", "viewer")
	if code := call(t, "PUT", a.URL()+"/v1/workspaces/"+ws, nil, admin, nil); code != 201 {
		t.Fatalf("PUT workspace: %d", code)
	}
	if code := call(t, "POST", a.URL()+"/v1/workspaces/"+ws+"/sessions", map[string]string{"id": "default"}, ann, nil); code != 201 {
		t.Fatalf("create session: %d", code)
	}
	hdr := func(h map[string]string) http.Header {
		out := http.Header{}
		for k, v := range h {
			out.Set(k, v)
		}
		return out
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var info wsInfo
		if call(t, "GET", a.URL()+"/v1/workspaces/"+ws, nil, admin, &info) == 200 && info.Owner != nil {
			if info.Owner.Node != "a" {
				t.Fatalf("owner %s, want a", info.Owner.Node)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no owner within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	ca := followWith(t, a, ws, "default", hdr(ann))
	cb := followWith(t, b, ws, "default", hdr(bob))
	acc := prompt(t, a, ws, "default", "please write the file [permission] [chunks=2]", ann)

	req := eventsOf(ca.waitFor(t, "the request on a", 20*time.Second, hasEvent("permission.requested")), "permission.requested")[0]
	reqB := eventsOf(cb.waitFor(t, "the request on b", 20*time.Second, hasEvent("permission.requested")), "permission.requested")[0]
	rid, _ := req["requestId"].(string)
	if rid == "" || reqB["requestId"] != rid {
		t.Fatalf("requests: %v and %v", req, reqB)
	}
	tool, _ := req["toolCall"].(map[string]any)
	if opts, _ := req["options"].([]any); len(opts) != 4 || tool["kind"] != "edit" || req["expiresAt"].(float64) <= req["requestedAt"].(float64) {
		t.Fatalf("permission.requested %v", req)
	}

	// Refusals first: they change nothing.
	if code, _, p := answer(t, b, ws, "default", rid, map[string]string{"optionId": "allow-once"}, vic); code != 403 || !strings.HasSuffix(p.Type, ":forbidden") {
		t.Fatalf("viewer: %d %+v", code, p)
	}
	if code, _, p := answer(t, b, ws, "default", rid, map[string]string{"optionId": "sudo"}, bob); code != 400 || !strings.HasSuffix(p.Type, ":invalid_option") {
		t.Fatalf("an option not offered: %d %+v", code, p)
	}
	if code, _, p := answer(t, b, ws, "default", "perm-nope", map[string]string{"optionId": "allow-once"}, bob); code != 404 || !strings.HasSuffix(p.Type, ":permission_not_found") {
		t.Fatalf("an unknown request: %d %+v", code, p)
	}
	if code, _, p := answer(t, b, ws, "default", rid, map[string]any{"optionId": "allow-once", "extra": 1}, bob); code != 400 {
		t.Fatalf("an unknown field: %d %+v", code, p)
	}
	time.Sleep(500 * time.Millisecond)
	if n, _, _ := e.agentResponses(t); n != 0 {
		t.Fatalf("the agent got %d answers before anyone answered", n)
	}

	code, res, _ := answer(t, b, ws, "default", rid, map[string]string{"optionId": "allow-always"}, bob)
	if code != 200 || res["by"] != "bob" || res["optionId"] != "allow-always" || res["outcome"] != "selected" || res["requestId"] != rid {
		t.Fatalf("bob's answer: %d %v", code, res)
	}
	code, _, p := answer(t, a, ws, "default", rid, map[string]string{"outcome": "cancelled"}, ann)
	if code != 409 || !strings.HasSuffix(p.Type, ":permission_already_resolved") || p.Resolution["by"] != "bob" || p.Resolution["optionId"] != "allow-always" || !strings.Contains(p.Detail, "bob") {
		t.Fatalf("ann's second answer: %d %+v", code, p)
	}

	evA := ca.waitFor(t, "the turn's end on a", 20*time.Second, turnEnded(acc.ID))
	evB := cb.waitFor(t, "the turn's end on b", 20*time.Second, turnEnded(acc.ID))
	for _, evs := range [][]ssetest.Event{evA, evB} {
		r := eventsOf(evs, "permission.resolved")
		if len(r) != 1 || r[0]["by"] != "bob" || r[0]["optionId"] != "allow-always" || r[0]["requestId"] != rid {
			t.Fatalf("permission.resolved %v", r)
		}
	}
	time.Sleep(time.Second)
	entries := readStream(t, e.rdb, ws, "default")
	checkStream(t, entries)
	reply, ended := agentReply(entries, acc.ID)
	if !ended || !strings.HasPrefix(reply, "permission: allow-always\n") {
		t.Fatalf("the agent went on with %q (ended %v)", reply, ended)
	}
	awaited, unawaited, results := e.agentResponses(t)
	if awaited != 1 || unawaited != 0 || !strings.Contains(results[0], `"optionId":"allow-always"`) {
		t.Fatalf("the agent got %d answers (%d unawaited): %v", awaited, unawaited, results)
	}
	if n := len(eventsOf(ca.snapshot(), "permission.resolved")); n != 1 {
		t.Fatalf("%d permission.resolved after the second answer", n)
	}
}

// The owner is SIGKILLed while a request is open: the request is answered
// through the surviving node after it took over (it re-attached to the
// same ACP connection), the agent gets exactly one reply, and the turn
// completes. With the agent connection lost instead (the sandbox
// restarted), the request ends cancelled and the turn ends, within a
// bound.
func TestPermissionAcrossFailures(t *testing.T) {
	e := newEnv(t)
	a := e.node("a", nil)
	b := e.node("b", nil)
	const ws = "perm-fail"
	call(t, "PUT", a.URL()+"/v1/workspaces/"+ws, nil, nil, nil)
	call(t, "POST", a.URL()+"/v1/workspaces/"+ws+"/sessions", map[string]string{"id": "default"}, nil, nil)
	if owner := waitOwner(t, a, ws, "", 10*time.Second); owner != "a" {
		t.Fatalf("owner %s, want a", owner)
	}
	c := follow(t, b, ws, "default")
	acc := prompt(t, a, ws, "default", "one [permission] [chunks=2]", map[string]string{"X-User-Id": "ann"})
	rid := eventsOf(c.waitFor(t, "the request", 20*time.Second, hasEvent("permission.requested")), "permission.requested")[0]["requestId"].(string)
	a.kill()
	if owner := waitOwner(t, b, ws, "a", 15*time.Second); owner != "b" {
		t.Fatalf("owner %s, want b", owner)
	}
	code, res, _ := answer(t, b, ws, "default", rid, map[string]string{"optionId": "allow-once"}, map[string]string{"X-User-Id": "carol"})
	if code != 200 || res["by"] != "carol" {
		t.Fatalf("answer after the takeover: %d %v", code, res)
	}
	c.waitFor(t, "the turn's end", 20*time.Second, turnEnded(acc.ID))
	time.Sleep(time.Second)
	entries := readStream(t, e.rdb, ws, "default")
	checkStream(t, entries)
	reply, _ := agentReply(entries, acc.ID)
	if !strings.HasPrefix(reply, "permission: allow-once\n") {
		t.Fatalf("the agent went on with %q", reply)
	}
	if awaited, unawaited, _ := e.agentResponses(t); awaited != 1 || unawaited != 0 {
		t.Fatalf("the agent got %d awaited and %d unawaited answers, want exactly one", awaited, unawaited)
	}
	conns := map[string]bool{}
	for _, en := range entries {
		if en.Type == "session.event" {
			conns[en.Body["connectionId"].(string)] = true
		}
	}
	if len(conns) != 1 {
		t.Fatalf("connections %v: the session was not re-attached", conns)
	}
	if d := statusDetail(entries, acc.ID, "turn_ended"); d["stopReason"] != "end_turn" {
		t.Fatalf("turn_ended %v", d)
	}

	// Now the agent connection is lost with a request open.
	acc2 := prompt(t, b, ws, "default", "two [permission] [chunks=2]", map[string]string{"X-User-Id": "ann"})
	c.waitFor(t, "the second request", 20*time.Second, func(evs []ssetest.Event) bool { return len(eventsOf(evs, "permission.requested")) == 2 })
	rid2 := eventsOf(c.snapshot(), "permission.requested")[1]["requestId"].(string)
	start := time.Now()
	e.sandbox.Restart()
	c.waitFor(t, "the second turn's end", 30*time.Second, turnEnded(acc2.ID))
	c.waitFor(t, "the second request resolved", 10*time.Second, func(evs []ssetest.Event) bool { return len(eventsOf(evs, "permission.resolved")) == 2 })
	if took := time.Since(start); took > 20*time.Second {
		t.Fatalf("the turn ended %v after the connection was lost", took)
	}
	r := eventsOf(c.snapshot(), "permission.resolved")[1]
	if r["requestId"] != rid2 || r["outcome"] != "cancelled" || r["by"] != "tandem" || r["reason"] == nil {
		t.Fatalf("permission.resolved %v", r)
	}
	entries = readStream(t, e.rdb, ws, "default")
	if d := statusDetail(entries, acc2.ID, "turn_ended"); d["stopReason"] != "error" {
		t.Fatalf("turn_ended %v", d)
	}
	if code, _, p := answer(t, b, ws, "default", rid2, map[string]string{"optionId": "allow-once"}, nil); code != 409 || p.Resolution["by"] != "tandem" {
		t.Fatalf("a late answer: %d %+v", code, p)
	}
}

// statusDetail returns the detail of the session.status of this status
// for promptID.
func statusDetail(entries []streamEntry, promptID, status string) map[string]any {
	for _, en := range entries {
		if en.Type != "session.status" || en.Body["status"] != status {
			continue
		}
		if d, _ := en.Body["detail"].(map[string]any); d != nil && d["promptId"] == promptID {
			return d
		}
	}
	return nil
}

// The workspace's policy answers for the room: allow (allow_once) and
// reject (reject_once) by "policy"; with ask, a request nobody answers
// within TANDEM_PERMISSION_TIMEOUT is cancelled by "timeout".
func TestPermissionPolicies(t *testing.T) {
	e := newEnv(t)
	n := e.node("a", map[string]string{"TANDEM_PERMISSION_TIMEOUT": "2s"})
	const ws = "perm-policy"
	if code := call(t, "PUT", n.URL()+"/v1/workspaces/"+ws, map[string]string{"permissionPolicy": "sometimes"}, nil, nil); code != 400 {
		t.Fatalf("PUT with policy sometimes: %d", code)
	}
	call(t, "PUT", n.URL()+"/v1/workspaces/"+ws, nil, nil, nil)
	c := follow(t, n, ws, "default")
	for i, tc := range []struct{ policy, by, outcome, option, reply, stop string }{
		{"allow", "policy", "selected", "allow-once", "permission: allow-once\n", "end_turn"},
		{"reject", "policy", "selected", "reject-once", "permission: reject-once\n", "end_turn"},
		{"ask", "timeout", "cancelled", "", "permission: cancelled", "cancelled"},
	} {
		var info map[string]any
		if code := call(t, "PUT", n.URL()+"/v1/workspaces/"+ws, map[string]string{"permissionPolicy": tc.policy}, nil, &info); code/100 != 2 || info["permissionPolicy"] != tc.policy {
			t.Fatalf("PUT policy %s: %d %v", tc.policy, code, info)
		}
		start := time.Now()
		acc := prompt(t, n, ws, "default", tc.policy+" [permission] [chunks=1]", nil)
		c.waitFor(t, "the turn's end", 20*time.Second, turnEnded(acc.ID))
		took := time.Since(start)
		r := eventsOf(c.snapshot(), "permission.resolved")
		if len(r) != i+1 || r[i]["by"] != tc.by || r[i]["outcome"] != tc.outcome || (tc.option != "" && r[i]["optionId"] != tc.option) {
			t.Fatalf("%s: permission.resolved %v", tc.policy, r)
		}
		entries := readStream(t, e.rdb, ws, "default")
		reply, _ := agentReply(entries, acc.ID)
		if !strings.HasPrefix(reply, tc.reply) {
			t.Fatalf("%s: the agent said %q", tc.policy, reply)
		}
		if d := statusDetail(entries, acc.ID, "turn_ended"); d["stopReason"] != tc.stop {
			t.Fatalf("%s: turn_ended %v", tc.policy, d)
		}
		if tc.by == "timeout" && took < 2*time.Second {
			t.Fatalf("timed out after %v, before the 2s timeout", took)
		}
	}
}
