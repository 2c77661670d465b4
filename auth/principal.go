package auth

import (
	"path"
	"time"
)

// Role is what a principal may do; each role includes the ones below it.
type Role int

const (
	RoleNone   Role = iota
	RoleViewer      // read and stream
	RoleMember      // also prompt, cancel, create and destroy sessions
	RoleAdmin       // also create, configure and delete workspaces
)

// ParseRole returns the role named s.
func ParseRole(s string) (Role, bool) {
	switch s {
	case "viewer":
		return RoleViewer, true
	case "member":
		return RoleMember, true
	case "admin":
		return RoleAdmin, true
	}
	return RoleNone, false
}

func (r Role) String() string {
	switch r {
	case RoleViewer:
		return "viewer"
	case RoleMember:
		return "member"
	case RoleAdmin:
		return "admin"
	}
	return "none"
}

// Principal is an authenticated caller.
type Principal struct {
	User       string
	Role       Role
	Workspaces []string  // ids or path.Match patterns
	Expires    time.Time // when the token stops being accepted (exp + leeway); zero: never
}

// CanOpen reports whether the principal's token opens workspace ws.
func (p Principal) CanOpen(ws string) bool {
	for _, pat := range p.Workspaces {
		if pat == ws {
			return true
		}
		if ok, err := path.Match(pat, ws); err == nil && ok {
			return true
		}
	}
	return false
}

// Allows reports whether the principal may act with role r in ws.
func (p Principal) Allows(ws string, r Role) bool {
	return p.Role >= r && p.CanOpen(ws)
}
