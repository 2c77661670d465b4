// Package eventlog is Tandem's one Redis adapter. It owns the source of
// truth, one Redis Stream per session, written only through a fenced
// append script, read by cursor, and announced on a per-workspace pub/sub
// doorbell (Log, Bell); and, in Store, everything else Tandem keeps in
// Redis: workspace settings, session records, owner records, the inbox and
// its consumer group, the redsync locks, presence reports and the set of
// workspaces that may need an owner. The data model it reads and writes is
// in eventlog/model, which imports no Redis client.
//
// Every key is built in keys.go, from ids checked there (checkIDs): an id
// with ":", "{" or "}" could make one key collide with another. Every
// script is a file of lua/ (scripts.go embeds them); lua/fence.lua is the
// one fence check, put in front of every script that writes for an owner;
// redisErr (errors.go) is the one place script and Redis errors become
// ErrStaleWriter, ErrUnavailable or stay what Redis said.
//
// # Usage
//
//	log := eventlog.New(rdb, eventlog.Config{})
//	epoch, _ := log.AcquireEpoch(ctx, "ws1")          // become the writer
//	evs, err := log.Append(ctx, "ws1", "default", epoch, eventlog.Record{Type: "chat.user", Body: body})
//	page, err := log.Read(ctx, "ws1", "default", cursor, 100)
//
// # Redis layout
//
// Every key of a workspace carries the hash tag {ws:ID}, so the append script
// touches keys of one slot and works on Redis Cluster:
//
//	{ws:ID}:fence            counter: the current writer's epoch
//	{ws:ID}:events:SID       stream: entry id "<eventIndex>-0", fields t, d, ts, ep, src?
//	{ws:ID}:events:SID:state hash: n (last eventIndex), gen (stream generation), src (last source position)
//	{ws:ID}:notify           pub/sub channel: one message per appended entry
//	{ws:ID}:meta             hash: settings; {ws:ID}:owner hash: the owner record
//	{ws:ID}:lock             the redsync mutex; {ws:ID}:sessions zset + {ws:ID}:session:SID hashes
//	{ws:ID}:inbox            stream + consumer group "owner": commands for the owner
//	{ws:ID}:idem:H, :rate:H  idempotency keys and prompt-rate buckets; {ws:ID}:presence hash
//	tandem:active            zset: workspaces that may need an owner, scored by when to look (the one untagged key; active.go)
//	(the state also holds tok and rcpt: the last append call's token and reply, so that the call sent again lands once)
//
// # Guarantees
//
// The append script checks the caller's epoch against {ws:ID}:fence and
// rejects a stale writer with ErrStaleWriter before it changes anything.
// Within a session, eventIndex is 1, 2, 3… with no gap: the script assigns
// it, and every entry of one Append call lands or none does.
//
// A stream carries a generation, chosen by the script when the stream is
// first written. Cursors name both the generation and the index, so a stream
// that was wiped (a Redis that lost its data) is detected as ErrCursorUnknown
// and never silently resumed at a wrong position.
//
// The inbox read (ReadInbox, lua/inbox_read.lua) is fenced and idempotent:
// it returns the entries already pending for the caller's consumer after
// the last one it knows it received before any new one, so a reply lost
// on the way (Redis killed after the read, a connection cut, go-redis
// sending it again) delivers them again. Tested by TestReadInboxIsFenced,
// TestReadInboxAfterLostReply; ids by TestInvalidIDsRefused. Its ack and
// claim (lua/inbox_ack.lua, lua/inbox_claim.lua) are fenced too; the ack
// deletes what it acknowledged, so the inbox holds only what is pending or
// unread, and a complete claim deletes empty consumers. Tested by
// TestAckAndClaimAreFenced, TestInboxStaysBounded,
// TestClaimDeletesEmptyConsumers.
//
// # Concurrency properties
//
// Log and Store are safe for concurrent use. Appends from one epoch are serialised by
// Redis; callers that need their own appends in a given order must not issue
// them concurrently. The doorbell (Bell) delivers messages of one workspace
// in append order, but may lose messages across a reconnect: it reports every
// (re)subscription so that the caller can catch up from the stream, and it
// never reports an entry that was not appended. Callers may NOT assume that a
// message arrives before Append returns, or at all.
package eventlog
