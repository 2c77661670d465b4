// Package mockagent is a scripted ACP agent: the agent that tests (and `make
// run`) put behind Sandbox Agent's "mock" agent in place of its built-in echo.
// The binary cmd/tandem-mockagent serves it on stdin/stdout.
//
// # Protocol
//
// It speaks JSON-RPC 2.0 as newline-delimited JSON, as ACP's stdio transport
// does, and answers:
//
//   - initialize: protocolVersion 1, agentCapabilities.loadSession false, no
//     auth methods.
//   - authenticate: an empty result.
//   - session/new: a fresh random sessionId, with the modes ask (current) and
//     code, and the models mock-small (current) and mock-large; error -32602
//     when cwd is not a directory.
//   - session/set_mode, session/set_model: change the session's mode or
//     model (error -32602 for one not offered); set_mode then sends a
//     current_mode_update.
//   - session/prompt: a turn (below), answered with {stopReason}.
//   - session/cancel (notification): stops the running turn of that session,
//     which then answers {stopReason: "cancelled"}.
//   - any other request: error -32601 (method not found); other
//     notifications and responses are ignored.
//
// # Turns
//
// The reply to a prompt is exactly Reply(texts...): "You said: " followed by
// the concatenation of all the prompt's text blocks (so a replayed-history
// block placed before the new text is included), with every directive removed
// and surrounding white space trimmed. It is sent as session/update
// notifications of kind agent_message_chunk whose texts concatenate to the
// reply, then the session/prompt response {stopReason: "end_turn"}.
//
// Directives anywhere in the text tune the turn (the last one of a kind wins):
//
//	[chunks=N]   split the reply into N chunks (default 5; at least 1, at
//	             most one per character of the reply)
//	[delay=Dms]  wait D milliseconds before each update (default 20)
//	[tool]       before the text, send a tool_call (status pending) and a
//	             tool_call_update (status completed) for one mock tool call
//	[diff]       before the text, send a tool_call of kind edit (status
//	             in_progress) on DiffPath and a tool_call_update (status
//	             completed) whose content is the diff DiffOld → DiffNew
//	[crash]      answer nothing more and exit at once with status 2, as an
//	             agent process that dies (Serve returns ErrCrash)
//
// and, in the last text block only (the user's own, not a restored
// session's history):
//
//	[permission] before the text, send session/request_permission (an edit
//	             of a file with its diff; options allow-once, allow-always,
//	             reject-once, reject-always) and wait for the answer: a
//	             selected option is said first, "permission: <optionId>\n";
//	             cancelled sends "permission: cancelled" and ends the turn
//	             cancelled
//	[modes]      say the current mode and model first, "mode: M, model: X\n"
//
// With a prompt log, every response to the agent's own requests is logged
// too, as {"kind":"response","id","awaited","result"}: awaited is false for
// a response to no request waiting (a second reply).
//
// Example: the prompt "[chunks=2] [delay=0ms] hi" is answered "You said: hi"
// in two chunks, "You said" and ": hi".
//
// A session runs at most one turn at a time: a prompt for a session that is
// still busy gets error -32000.
//
// # Concurrency properties
//
// Requests are read in order; every turn runs in its own goroutine, so several
// sessions stream at once and initialize or session/new are answered while
// turns run. Each message is written whole, on one line, under a lock; the
// updates of one turn are written in order, and its response after its last
// update. Serve returns when its input ends, after cancelling the running
// turns and waiting for them.
package mockagent
