// Package acptest is an in-process stand-in for a Sandbox Agent server and
// its agent, for unit tests of code that speaks ACP over HTTP (the acp
// package's Client and Conn, the workspace owner).
//
// # Usage
//
// A Server is an http.RoundTripper: give Server.Client (or an http.Client
// whose Transport is the Server) to acp.Config.HTTPClient, and use
// Server.URL as the base URL. Nothing listens on a socket, so a Server also
// works inside a testing/synctest bubble, where network I/O would not be
// "durably blocking": every wait of a Server is on a channel or a timer.
//
//	sb := acptest.New()
//	defer sb.Close()
//	client, _ := acp.New(acp.Config{BaseURL: sb.URL, HTTPClient: sb.Client()})
//
// It speaks what Sandbox Agent 0.4.2 speaks to acp.Client:
//
//   - POST /v1/acp/{id}?agent=A creates the connection on its first message;
//     a POST without agent to an unknown connection answers 400 "missing
//     required 'agent'" as 0.4.2 does. Requests answer 200 with their
//     JSON-RPC response (a session/prompt only when its turn ends),
//     notifications and responses 202.
//   - GET /v1/acp/{id}: the connection's SSE stream, every message the agent
//     sent with "id:" 1, 2, 3…, resumed after Last-Event-ID from a replay
//     buffer of ReplayBuffer messages; 404 for an unknown connection; a
//     heartbeat comment every 15 s.
//   - DELETE /v1/acp/{id}, GET /v1/acp (the list), GET /v1/health.
//
// Its agent answers initialize, session/new, session/prompt and
// session/cancel. A prompt's reply is "You said: <text>" (directives
// removed) in agent_message_chunk updates, then {stopReason: "end_turn"}.
// Directives in the prompt's last text block (the user's own text, after
// any replayed history) tune a turn:
//
//	[chunks=N]    N chunks (default 5)
//	[delay=Dms]   D ms before each chunk (default 20)
//	[hang]        no chunk and no answer until cancelled
//	[permission]  first a session/request_permission request; the turn
//	              goes on once the client answers it
//
// Knobs make the server misbehave: SetHealthy(false) answers the health
// check 503; Restart forgets every connection (a restarted server: streams
// end, and the connections are unknown from then on); Hang makes every
// request wait until Unhang or its context ends; FailPosts makes the next
// POSTs fail before they are written.
//
// # Concurrency properties
//
// A Server is safe for concurrent use. Each turn runs on a goroutine of its
// own, owned by the Server: Close cancels the running turns and waits for
// them. A turn does not end when the POST that started it is abandoned (as
// Sandbox Agent, it streams to its end). Stream bodies read the buffer of
// their connection directly; they start no goroutine.
package acptest
