package eventlog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
)

// userWorkspaceScript counts a workspace against its creator
// (lua/user_workspace.lua).
var userWorkspaceScript = loadScript("user_workspace", false)

// UserWorkspacesKey is the set of the workspaces a user created. It is
// not a workspace's key (no hash tag of one): the scripts that use it
// touch no other key.
func UserWorkspacesKey(user string) string {
	sum := sha256.Sum256([]byte(user))
	return "tandem:user:" + hex.EncodeToString(sum[:12]) + ":workspaces"
}

// ReserveWorkspace counts ws against user, unless user already has most
// others: it reports whether ws is counted, and whether this call added
// it.
func (l *Log) ReserveWorkspace(ctx context.Context, user, ws string, most int) (counted, added bool, err error) {
	if err := checkIDs(ws); err != nil {
		return false, false, err
	}
	n, err := userWorkspaceScript.Run(ctx, l.rdb, []string{UserWorkspacesKey(user)}, ws, most).Int64()
	if err != nil {
		return false, false, redisErr("reserve workspace "+ws, err)
	}
	return n > 0, n == 2, nil
}

// UserWorkspaces lists the workspaces counted against user.
func (l *Log) UserWorkspaces(ctx context.Context, user string) ([]string, error) {
	ws, err := l.rdb.SMembers(ctx, UserWorkspacesKey(user)).Result()
	if err != nil {
		return nil, redisErr("user workspaces", err)
	}
	return ws, nil
}

// ReleaseWorkspace stops counting ws against user.
func (l *Log) ReleaseWorkspace(ctx context.Context, user, ws string) error {
	if err := l.rdb.SRem(ctx, UserWorkspacesKey(user), ws).Err(); err != nil {
		return redisErr("release workspace "+ws, err)
	}
	return nil
}
