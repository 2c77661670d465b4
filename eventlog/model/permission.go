package model

// Permission requests of the agent, kept per session in
// {ws:ID}:perms:SID (field r:<requestId> the request, a:<requestId> the
// answer that won), so that any node can answer them and the answer that
// came first is decided in Redis.

// PermissionClaim is an answer to a permission request, as the claim
// script takes it.
type PermissionClaim struct {
	Session, RequestID string
	// OptionID is the option chosen; "" for the outcome cancelled (no
	// check against the options offered).
	OptionID string
	User     string // put in the inbox entry
	// Resolution is the JSON the owner and every later answer get.
	Resolution []byte
}

// PermissionStatus is the claim script's verdict.
type PermissionStatus string

const (
	PermissionOK            PermissionStatus = "ok"
	PermissionResolved      PermissionStatus = "resolved" // answered before: Body is that answer
	PermissionNotFound      PermissionStatus = "not_found"
	PermissionInvalidOption PermissionStatus = "invalid_option" // Body is the request
	PermissionNoWorkspace   PermissionStatus = "err_ws"
	PermissionNoSession     PermissionStatus = "err_session"
	PermissionDestroyed     PermissionStatus = "err_destroyed"
)

// PermissionClaimed is the answer of a claim.
type PermissionClaimed struct {
	Status  PermissionStatus
	Body    []byte
	InboxID string // ok: the inbox entry that carries the answer to the owner
}

// PermissionSet is a session's permissions hash: request id → request
// JSON, request id → answer JSON, and the requests the owner carried out.
type PermissionSet struct {
	Requests, Answers map[string]string
	Done              map[string]bool
}

// ParsePermissionSet reads the hash's fields.
func ParsePermissionSet(h map[string]string) PermissionSet {
	ps := PermissionSet{Requests: map[string]string{}, Answers: map[string]string{}, Done: map[string]bool{}}
	for k, v := range h {
		if len(k) < 3 || k[1] != ':' {
			continue
		}
		id := k[2:]
		switch k[0] {
		case 'r':
			ps.Requests[id] = v
		case 'a':
			ps.Answers[id] = v
		case 'd':
			ps.Done[id] = true
		}
	}
	return ps
}
