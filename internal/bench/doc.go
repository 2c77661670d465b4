// Package bench is Tandem's load tool: scenarios that measure a node the
// way users experience it, each printing a table and returning results
// for JSON.
//
//   - fanout: C SSE connections over W workspaces while events are
//     appended at R per second through the owner path; delivered events
//     per second, append→receive latency, node CPU per delivery, node RSS
//     per connection (idle and active).
//   - append: sustained appends through the owner path, one hot session
//     (batched) and 50 sessions (one event per call), next to
//     redis-benchmark XADD on the same Redis in the same run.
//   - replay: a client resuming N events behind with Last-Event-ID: time
//     to the last event.
//   - prompt: prompt → first agent chunk → end of turn through Tandem's
//     HTTP API with the scripted agent, against the same prompts sent
//     straight to the Sandbox Agent server.
//
// Every scenario either starts its own stack (redis-server, one tandem
// node as a separate process so that its CPU and memory are its own, and
// for prompt the Sandbox Agent server) on loopback, or uses given URLs,
// which must be loopback. Every loop is bounded in count and time.
package bench
