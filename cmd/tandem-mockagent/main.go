// Command tandem-mockagent is a scripted ACP agent speaking JSON-RPC 2.0 over
// stdin and stdout (newline-delimited JSON). Tests, and `make run`, install it
// as Sandbox Agent's "mock" agent, so prompts get a predictable streamed
// answer: "You said: " and the prompt text, in several agent_message_chunk
// updates, then stopReason end_turn (or cancelled after session/cancel).
//
// Directives in the prompt text tune a turn and are removed from the reply:
//
//	[chunks=N]   number of chunks (default 5)
//	[delay=Dms]  pause before each update (default 20 ms)
//	[tool]       a tool_call and its completed tool_call_update before the text
//	[crash]      exit at once with status 2, answering nothing
//	[permission] ask for a permission first, and say the option chosen
//	[modes]      say the current mode and model first (session/set_mode and
//	             session/set_model change them)
//
// See package internal/sandboxtest/mockagent for the exact contract.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/tandem-dev/tandem/internal/sandboxtest/mockagent"
)

// With TANDEM_MOCKAGENT_LOG set, every prompt received is appended to that
// file as one JSON line, so that tests can check what reached the agent.
func main() {
	var log *os.File
	if p := os.Getenv("TANDEM_MOCKAGENT_LOG"); p != "" {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			fmt.Fprintln(os.Stderr, "tandem-mockagent:", err)
			os.Exit(1)
		}
		log = f
	}
	var err error
	if log != nil {
		err = mockagent.ServeLogged(os.Stdin, os.Stdout, log)
	} else {
		err = mockagent.Serve(os.Stdin, os.Stdout)
	}
	if errors.Is(err, mockagent.ErrCrash) {
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tandem-mockagent:", err)
		os.Exit(1)
	}
}
