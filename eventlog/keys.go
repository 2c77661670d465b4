package eventlog

// Key names. Every key of a workspace starts with the hash tag {ws:ID}.

func tag(ws string) string { return "{ws:" + ws + "}" }

// FenceKey is the fencing-epoch counter of a workspace.
func FenceKey(ws string) string { return tag(ws) + ":fence" }

// StreamKey is the event stream of one session.
func StreamKey(ws, sid string) string { return tag(ws) + ":events:" + sid }

// StateKey is the hash that holds a session stream's head, generation and
// last source position.
func StateKey(ws, sid string) string { return tag(ws) + ":events:" + sid + ":state" }

// NotifyChannel is the pub/sub channel of a workspace's doorbell.
func NotifyChannel(ws string) string { return tag(ws) + ":notify" }

// workspaceOfChannel returns the workspace id of a NotifyChannel name.
func workspaceOfChannel(ch string) (string, bool) {
	const pre, suf = "{ws:", "}:notify"
	if len(ch) <= len(pre)+len(suf) || ch[:len(pre)] != pre || ch[len(ch)-len(suf):] != suf {
		return "", false
	}
	return ch[len(pre) : len(ch)-len(suf)], true
}
