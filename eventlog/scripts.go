package eventlog

import (
	"embed"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Every Lua script Tandem runs is a file of lua/, embedded (as
// centrifugal/centrifuge keeps its internal/redis_lua). Scripts that write
// for a workspace's owner get lua/fence.lua, the one fence check, in front
// of their body; they call stale() where they check it.

//go:embed lua/*.lua
var luaFiles embed.FS

// loadScript returns the script lua/name.lua, with the fence check in
// front when fenced.
func loadScript(name string, fenced bool) *redis.Script {
	body := mustRead(name)
	if fenced {
		fence := mustRead("fence")
		// A "#!lua" shebang (flags for Redis 7) must stay the first line.
		if rest, ok := strings.CutPrefix(body, "#!lua\n"); ok {
			body = "#!lua\n" + fence + rest
		} else {
			body = fence + body
		}
	}
	return redis.NewScript(body)
}

func mustRead(name string) string {
	b, err := luaFiles.ReadFile("lua/" + name + ".lua")
	if err != nil {
		panic("eventlog: script " + name + ": " + err.Error())
	}
	return string(b)
}

var (
	// appendScript is the only writer of session streams (append.go).
	appendScript = loadScript("append", true)
	// inboxReadScript reads the inbox for the owner (inbox.go).
	inboxReadScript = loadScript("inbox_read", true)
	// inboxAckScript acknowledges and deletes inbox entries for the owner
	// (inbox.go).
	inboxAckScript = loadScript("inbox_ack", true)
	// inboxClaimScript claims pending inbox entries for a new owner and
	// deletes the consumers of earlier ones (inbox.go).
	inboxClaimScript = loadScript("inbox_claim", true)
	// fencedHSetScript updates a session record for the owner (store.go).
	fencedHSetScript = loadScript("fenced_hset", true)
	// finishDeleteScript removes a deleted workspace's settings (store.go).
	finishDeleteScript = loadScript("finish_delete", true)
	// acquireEpochScript sets a workspace's fence to a new epoch (append.go).
	acquireEpochScript = loadScript("acquire_epoch", false)
	// ownerSetScript writes the owner record of the fence's epoch (store.go).
	ownerSetScript = loadScript("owner_set", true)
	// ownerDelScript removes the owner record of an epoch (store.go).
	ownerDelScript = loadScript("owner_del", false)
	// enqueueScript accepts a command for the owner (store.go).
	enqueueScript = redis.NewScript(mustRead("wsappend") + mustRead("enqueue"))
	// withdrawScript withdraws a prompt not yet dispatched (withdraw.go).
	withdrawScript = redis.NewScript(mustRead("wsappend") + mustRead("withdraw"))
	// presenceReadScript reads presence reports, deleting dead nodes'
	// (store.go).
	presenceReadScript = loadScript("presence_read", false)
	// deleteWorkspaceScript marks a workspace deleted (store.go).
	deleteWorkspaceScript = loadScript("delete_workspace", false)
	// putWorkspaceScript creates or updates a workspace unless its id is
	// deleted (store.go).
	putWorkspaceScript = loadScript("put_workspace", false)
	// purgeWorkspaceScript removes every key of a deleted workspace
	// (purge.go).
	purgeWorkspaceScript = loadScript("purge_workspace", false)
)
