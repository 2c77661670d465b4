// Package acp is Tandem's client for one Sandbox Agent server: it speaks the
// Agent Client Protocol (JSON-RPC 2.0) to the agents the server runs, over the
// server's HTTP transport (a POST per message sent, one SSE stream per
// connection for every message the agent sends). It knows nothing of Redis or
// workspaces.
//
// # Usage
//
// A Client makes single calls: Health, InstallAgent, Post (one message),
// Stream (follow a connection's SSE stream), Delete, Connections.
//
// A Conn is one ACP connection (a server id) with a request/response API on
// top of the POST+SSE pair:
//
//	conn, err := client.Dial(ctx, acp.ConnConfig{
//		ServerID:  "ws-1-abc",
//		Agent:     "mock", // create; empty to re-attach with LastEventID
//		OnMessage: func(ev acp.Event, env acp.Envelope) error { return persist(ev.ID, env) },
//	})
//	defer conn.Close()
//	_, err = conn.Call(ctx, acp.MethodInitialize, acp.InitializeParams{ProtocolVersion: acp.ProtocolVersion})
//
// The SSE stream is the source of truth. Sandbox Agent 0.4.2 may never answer
// a POST whose agent reply is late, so Call takes its response from the stream
// (matched by JSON-RPC id) and never waits for the POST. Every message on the
// stream, responses included, reaches OnMessage with its SSE id, so an owner
// can persist each one together with the id to resume from.
//
// # Errors
//
// ErrUnknownConnection means the server does not know the connection: it was
// never created, was deleted, or the server restarted. ErrAgentExited means
// the agent process behind it ended; the server keeps the connection but it
// is useless. ErrEventsLost means messages fell out of the server's replay
// buffer (1024 messages) before they were read. In these cases the caller
// creates a new connection (and restores its ACP session). ErrStreamLagged
// is not final: Sandbox Agent 0.4.2 drops live messages for a reader that
// falls behind, and resuming after the last message handled gets them from
// the replay buffer, which a Conn does by itself. Other HTTP failures are
// *StatusError, and errors the agent answers are *RPCError.
//
// # Concurrency properties
//
// Client and Conn are safe for concurrent use. A Conn has one goroutine, its
// stream reader, which calls OnMessage for messages in stream order, one at a
// time, and resolves a Call only after OnMessage has returned for that
// response and for every message before it. Callers may NOT assume that
// messages they send reach the agent in the order of their calls when the
// calls are concurrent, nor that a Call's POST has ended when Call returns
// (it is abandoned; the server still delivers the message). Close stops the
// reader and waits for it; Stream returns only after its HTTP response is
// closed.
package acp
