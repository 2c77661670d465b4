package workspace

// Keys of a workspace; all carry the {ws:ID} hash tag of eventlog's keys so
// that scripts touching several of them work on Redis Cluster.

func tag(ws string) string             { return "{ws:" + ws + "}" }
func metaKey(ws string) string         { return tag(ws) + ":meta" }
func lockKey(ws string) string         { return tag(ws) + ":lock" }
func ownerKey(ws string) string        { return tag(ws) + ":owner" }
func sessionsKey(ws string) string     { return tag(ws) + ":sessions" }
func sessionKey(ws, sid string) string { return tag(ws) + ":session:" + sid }
func inboxKey(ws string) string        { return tag(ws) + ":inbox" }
func idemKey(ws, hash string) string   { return tag(ws) + ":idem:" + hash }
func presenceKey(ws string) string     { return tag(ws) + ":presence" }
func rateKey(ws, user string) string   { return tag(ws) + ":rate:" + user }

// activeKey lists workspaces that may need an owner (a prompt was accepted
// for them); owners remove theirs when they go idle. It is the one key
// without a workspace tag.
const activeKey = "tandem:active"

// consumerGroup is the inbox's consumer group; each owner reads as consumer
// "<node>/<epoch>".
const consumerGroup = "owner"
