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
// The hub reads the event log through Source and drives the doorbell
// through Doorbell, two narrow interfaces; every byte it writes comes from
// package sse.
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
// Where the client's bytes go is a sink (sink.go): a hijacked TCP
// connection written with raw non-blocking writes, another hijacked
// connection, or the ResponseWriter. The hub works only against that
// interface; tests give it a fake one (fakes_test.go).
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
// Where the contract's guarantees live in this package (architecture.md,
// "Guarantees"):
//
//   - 1, order and completeness. A feed's ring holds a run of events with
//     no gap: feed.offer accepts only the event after its head and asks
//     for a sync otherwise (feed.go, sync.go); the audit in sweep catches a
//     doorbell that never rang (hub.go). A client moves only from its own
//     cursor: follow (follow.go) writes from the ring or the Source after
//     it, worker.write (deliver.go) writes the frames after it and detaches
//     a client it could not finish, which then resumes from its pending
//     bytes and cursor; an unresumable cursor gets sse.AppendReset and
//     goes on from the oldest event. Tested here by
//     TestFeedDeliversInOrderToEveryClient, TestSlowClientCatchesUpInOrder,
//     TestMissedDoorbellIsFilledFromSource, TestResetOnCursorThatCannotResume
//     and TestSourceDownThenBack; end to end on Redis by node's
//     TestStreamClientsAtCursorsThroughBurstsAndReconnects,
//     TestStreamSlowClientDoesNotSlowFastOne and TestStreamResets.
//   - 7, a transient fault never ends a native EventSource. Serve fails
//     with ErrClosed before writing anything when the hub is shutting down,
//     which httpapi answers with sse.WriteReconnect (200, retry:); a stream
//     already started when Run ends is closed after its retry: preamble, an
//     end the EventSource reconnects from with its Last-Event-ID; a Source
//     that fails is retried with backoff, the stream kept open with
//     keepalives. Tested here by TestCloseEndsStreams and
//     TestSourceDownThenBack; end to end by node's
//     TestStreamWhileDrainingGetsRetry, TestStreamWhileRedisDownGetsRetry
//     and TestShutdownEndsStreamsPromptly.
//
// # Concurrency properties
//
// Serve may be called from any number of goroutines. Run owns the workers,
// the catch-up goroutines of slow clients, the feed syncers and the sweeper;
// it returns only after all of them have exited and every client connection
// it holds has been closed. Callers may NOT assume that Serve returns when
// the client goes away: an attached client is noticed at the next write,
// at the latest at the next keepalive. Observer methods run on the hub's
// goroutines, some with a feed's lock held. The lock order of the hub's
// locks is stated on the Hub type.
package fanout
