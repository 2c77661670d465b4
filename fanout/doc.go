// Package fanout delivers session events from Redis to a node's SSE
// clients: one shared in-memory buffer per active session stream, and per
// client only a cursor.
//
// # Usage
//
//	hub := fanout.New(log, fanout.Config{})
//	bell := eventlog.NewBell(rdb, hub)    // the node's one pub/sub connection
//	hub.SetDoorbell(bell)
//	go bell.Run(ctx); go hub.Run(ctx)
//	hub.Serve(w, r, fanout.Stream{Workspace: ws, Session: sid, After: cursor})
//
// # How a client is served
//
// A stream starts in the "follow" loop on the request's goroutine: it writes
// what the client is missing, reading the session's buffer (the feed) when
// the client's cursor is inside it and Redis when it is older. Once caught
// up on a hijacked TCP connection, the client is attached to the feed and
// the handler returns: from then on no goroutine and no buffer is kept for
// it. The hub's workers write each new event, encoded once per node, to
// every attached client with a non-blocking write. A client whose socket
// buffer is full is detached: a goroutine of its own writes the rest of its
// frame and follows it, from the feed or from Redis, until it has caught up
// again. A slow client is therefore never disconnected for being slow, never
// delays another client, and costs memory only for the frame it is writing.
//
// Connections that cannot be hijacked (HTTP/2, TLS) stay in the follow loop
// for their whole life: correct, one goroutine each.
//
// # Guarantees
//
// Each client receives the events after its cursor in eventIndex order,
// with no gap and no duplicate. Where its cursor cannot be resumed (trimmed,
// or a stream that Redis lost) it receives a reset event and continues from
// the oldest retained event. A feed only accepts an event that directly
// follows the last one it holds; a gap, a (re)subscription of the doorbell,
// or the periodic audit makes it catch up from Redis.
//
// # Concurrency properties
//
// Serve may be called from any number of goroutines. Run owns the workers,
// the catch-up goroutines of slow clients, the feed syncers and the sweeper;
// it returns only after all of them have exited and every client connection
// it holds has been closed. Callers may NOT assume that Serve returns when
// the client goes away: an attached client is noticed at the next write,
// at the latest at the next keepalive.
package fanout
