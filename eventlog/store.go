package eventlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tandem-dev/tandem/eventlog/model"
)

// Store is the Redis side of workspaces besides their event streams:
// settings, session records, owner records, the active set and presence
// reports (this file), the inbox (inbox.go) and the locks (lock.go). It
// embeds the Log, so that one value is all the workspace package needs.
// It decides nothing: it reads and writes the layout, and the workspace
// package, which knows no Redis, decides with what it returns.
type Store struct {
	*Log
	locks locker
}

// NewStore returns the Store of the workspaces whose streams l holds.
func NewStore(l *Log) *Store {
	return &Store{Log: l, locks: newLocker(l.rdb)}
}

// unavailable wraps a failure to reach Redis.
func unavailable(op string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", op, err)
	}
	return redisErr(op, err)
}

// Signal publishes msg on ws's doorbell as a signal.
func (s *Store) Signal(ctx context.Context, ws, msg string) error {
	if err := checkIDs(ws); err != nil {
		return err
	}
	return Signal(ctx, s.rdb, ws, msg)
}

// PutWorkspace creates or updates a workspace's settings and reports
// whether it was created. An id that is deleted (marked, tombstoned, or
// left with sessions and no settings) is refused with
// model.ErrWorkspaceDeleted, and nothing changes, until it is purged. Its
// owner is signalled to reload them.
func (s *Store) PutWorkspace(ctx context.Context, ws string, m model.WorkspaceMeta, now int64) (bool, error) {
	if err := checkIDs(ws); err != nil {
		return false, err
	}
	n, err := putWorkspaceScript.Run(ctx, s.rdb, []string{MetaKey(ws), SessionsKey(ws)},
		now, m.SandboxURL, m.SandboxToken, m.SandboxID, m.Agent, strings.Join(m.Agents, ","), m.PermissionPolicy, m.SpeakerLabels).Int64()
	if err != nil {
		return false, unavailable("put workspace", err)
	}
	if n < 0 {
		return false, fmt.Errorf("put workspace %s: %w", ws, model.ErrWorkspaceDeleted)
	}
	return n == 1, nil
}

// splitAgents reads the agents field, a comma-joined list ("" for none).
func splitAgents(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func parseMeta(v map[string]string) model.WorkspaceMeta {
	created, _ := strconv.ParseInt(v["createdAt"], 10, 64)
	return model.WorkspaceMeta{
		SandboxURL:   v["sandboxUrl"],
		SandboxToken: v["sandboxToken"],
		SandboxID:    v["sandboxId"],
		Agent:        v["agent"],
		Agents:       splitAgents(v["agents"]),
		CreatedAt:    created,
		Deleted:      v["deletedAt"] != "",

		PermissionPolicy: v["permissionPolicy"],
		SpeakerLabels:    v["speakerLabels"],
	}
}

// WorkspaceMeta returns a workspace's settings; found is false when it has
// none (never created, or deleted and cleaned up).
func (s *Store) WorkspaceMeta(ctx context.Context, ws string) (m model.WorkspaceMeta, found bool, err error) {
	if err := checkIDs(ws); err != nil {
		return m, false, err
	}
	v, err := s.rdb.HGetAll(ctx, MetaKey(ws)).Result()
	if err != nil {
		return m, false, unavailable("load workspace", err)
	}
	if v["createdAt"] == "" {
		return m, false, nil // none, or a tombstone (finish_delete.lua)
	}
	return parseMeta(v), true, nil
}

// WorkspaceExists reports whether the workspace exists and is not marked
// deleted.
func (s *Store) WorkspaceExists(ctx context.Context, ws string) (bool, error) {
	if err := checkIDs(ws); err != nil {
		return false, err
	}
	v, err := s.rdb.HMGet(ctx, MetaKey(ws), "createdAt", "deletedAt").Result()
	if err != nil {
		return false, unavailable("workspace exists", err)
	}
	return v[0] != nil && v[1] == nil, nil
}

// Workspace reads a workspace's settings, owner (when its lock is held)
// and session ids at once.
func (s *Store) Workspace(ctx context.Context, ws string) (model.WorkspaceView, error) {
	if err := checkIDs(ws); err != nil {
		return model.WorkspaceView{}, err
	}
	var metaCmd, ownerCmd *redis.MapStringStringCmd
	var lockCmd *redis.IntCmd
	var sessCmd *redis.StringSliceCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		metaCmd = p.HGetAll(ctx, MetaKey(ws))
		ownerCmd = p.HGetAll(ctx, OwnerKey(ws))
		lockCmd = p.Exists(ctx, LockKey(ws))
		sessCmd = p.ZRange(ctx, SessionsKey(ws), 0, -1)
		return nil
	})
	if err != nil {
		return model.WorkspaceView{}, unavailable("get workspace", err)
	}
	view := model.WorkspaceView{Found: metaCmd.Val()["createdAt"] != "", Meta: parseMeta(metaCmd.Val()), Sessions: sessCmd.Val()}
	if o := ownerCmd.Val(); len(o) > 0 && lockCmd.Val() == 1 {
		ep, _ := strconv.ParseUint(o["epoch"], 10, 64)
		since, _ := strconv.ParseInt(o["since"], 10, 64)
		view.Owner = &model.OwnerRecord{Node: o["node"], Epoch: ep, Since: since, Health: o["health"]}
	}
	return view, nil
}

// DeleteWorkspace marks the workspace and its sessions deleted and puts a
// destroy command in its inbox, in one step; found is false when it does
// not exist (or is already marked deleted).
func (s *Store) DeleteWorkspace(ctx context.Context, ws string) (found bool, err error) {
	if err := checkIDs(ws); err != nil {
		return false, err
	}
	res, err := s.runStrings(ctx, deleteWorkspaceScript,
		[]string{MetaKey(ws), SessionsKey(ws), InboxKey(ws)},
		sessionKeyPrefix(ws), NotifyChannel(ws))
	if err != nil {
		return false, unavailable("delete workspace", err)
	}
	return res[0] != "err_ws", nil
}

// FinishDelete replaces a deleted workspace's settings by its tombstone
// while epoch is its writer, and removes its active mark.
func (s *Store) FinishDelete(ctx context.Context, ws string, epoch uint64) error {
	if err := checkIDs(ws); err != nil {
		return err
	}
	err := finishDeleteScript.Run(ctx, s.rdb, []string{FenceKey(ws), MetaKey(ws)}, epoch).Err()
	s.rdb.ZRem(ctx, ActiveKey, ws)
	if err != nil && !errors.Is(err, redis.Nil) {
		return redisErr("finish delete "+ws, err)
	}
	return nil
}

// Enqueue runs the enqueue script (lua/enqueue.lua): the command is
// validated against the workspace and session, deduplicated, rate limited
// and appended to the inbox in one step; its owner's doorbell rings.
func (s *Store) Enqueue(ctx context.Context, ws string, e model.Enqueue) (model.Enqueued, error) {
	if err := checkIDs(ws, e.Session); err != nil {
		return model.Enqueued{}, err
	}
	create := "0"
	if e.Create {
		create = "1"
	}
	res, err := s.runStrings(ctx, enqueueScript,
		[]string{MetaKey(ws), SessionsKey(ws), SessionKey(ws, e.Session), InboxKey(ws), IdemKey(ws, e.IdemKey), RateKey(ws, e.RateKey),
			WorkspaceStreamKey(ws), WorkspaceStateKey(ws), StateKey(ws, e.Session), FenceKey(ws)},
		e.Kind, e.Session, create, e.User, e.Text, e.IdemTTL.Milliseconds(), NotifyChannel(ws), e.Agent,
		e.RateInterval.Milliseconds(), e.RateTolerance.Milliseconds(), e.MaxSessions,
		s.cfg.workspaceMaxLen(), newToken()[:tagLen])
	if err != nil {
		return model.Enqueued{}, unavailable("enqueue "+e.Kind, err)
	}
	if len(res) != 3 {
		return model.Enqueued{}, fmt.Errorf("enqueue %s: unexpected reply %v", e.Kind, res)
	}
	out := model.Enqueued{Status: model.EnqueueStatus(res[0]), Created: res[2] == "1"}
	switch out.Status {
	case model.EnqueueOK, model.EnqueueDuplicate:
		out.ID = res[1]
	case model.EnqueueRateLimited:
		ms, _ := strconv.ParseInt(res[1], 10, 64)
		out.RetryAfter = time.Duration(ms) * time.Millisecond
	}
	return out, nil
}

// runStrings runs a store script as appends are run (followed by WAIT when
// the log waits for replicas: an accepted prompt survives a failover as
// an appended event does); its reply is a list of strings.
func (s *Store) runStrings(ctx context.Context, script *redis.Script, keys []string, args ...any) ([]string, error) {
	raw, err := s.RunScript(ctx, script, keys, args...)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(raw))
	for i, v := range raw {
		str, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("script reply %d is %T, not a string", i, v)
		}
		out[i] = str
	}
	return out, nil
}

// MarkActive puts ws in the set of workspaces pollers check for an owner,
// due now, unless it is there (active.go).
func (s *Store) MarkActive(ctx context.Context, ws string) error {
	return s.scoreActive(ctx, "mark active", "mark", ws, 0)
}

// UnmarkActive removes ws from that set.
func (s *Store) UnmarkActive(ctx context.Context, ws string) error {
	return unavailableIf("unmark active", s.rdb.ZRem(ctx, ActiveKey, ws).Err())
}

// Active returns up to n workspaces of the active set.
func (s *Store) Active(ctx context.Context, n int) ([]string, error) {
	v, err := s.rdb.ZRange(ctx, ActiveKey, 0, int64(n-1)).Result()
	if err != nil {
		return nil, unavailable("active workspaces", err)
	}
	return v, nil
}

// Locked reports for each workspace whether its lock is held.
func (s *Store) Locked(ctx context.Context, wss []string) ([]bool, error) {
	for _, ws := range wss {
		if err := checkIDs(ws); err != nil {
			return nil, err
		}
	}
	cmds := make([]*redis.IntCmd, len(wss))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, ws := range wss {
			cmds[i] = p.Exists(ctx, LockKey(ws))
		}
		return nil
	})
	if err != nil {
		return nil, unavailable("locks", err)
	}
	out := make([]bool, len(wss))
	for i, c := range cmds {
		out[i] = c.Val() != 0
	}
	return out, nil
}

func unavailableIf(op string, err error) error {
	if err == nil {
		return nil
	}
	return unavailable(op, err)
}

// SetOwner records node as the owner of ws with epoch, expiring after ttl
// unless extended.
func (s *Store) SetOwner(ctx context.Context, ws string, o model.OwnerRecord, ttl time.Duration) error {
	if err := checkIDs(ws); err != nil {
		return err
	}
	err := ownerSetScript.Run(ctx, s.rdb, []string{FenceKey(ws), OwnerKey(ws)}, o.Epoch, o.Node, o.Since, o.Health, ttl.Milliseconds()).Err()
	if err != nil {
		return redisErr("record owner", err)
	}
	return nil
}

// sentKept bounds a workspace's sent-prompt evidence (RecordSent).
const sentKept = 256

// sentTTL is how long that evidence lasts without a new write: it matters
// only right after Redis lost writes.
const sentTTL = 24 * time.Hour

// RecordSent adds prompts (inbox ids, with the ms each was dispatched) to
// the evidence that they were sent to the agent: written by owners, also
// after they lost the workspace (it is no owner's state, only facts that
// stay true), so that it outlives Redis losing the records of their
// dispatch, and read by the next owner (SentPrompts). Bounded to the
// newest sentKept.
func (s *Store) RecordSent(ctx context.Context, ws string, ids []string, at []int64) error {
	if err := checkIDs(ws); err != nil {
		return err
	}
	if len(ids) == 0 {
		return nil
	}
	zs := make([]redis.Z, len(ids))
	for i, id := range ids {
		zs[i] = redis.Z{Score: float64(at[i]), Member: id}
	}
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.ZAdd(ctx, SentKey(ws), zs...)
		p.ZRemRangeByRank(ctx, SentKey(ws), 0, -sentKept-1)
		p.PExpire(ctx, SentKey(ws), sentTTL)
		return nil
	})
	return unavailableIf("record sent prompts", err)
}

// SentPrompts returns the prompts RecordSent holds.
func (s *Store) SentPrompts(ctx context.Context, ws string) ([]string, error) {
	if err := checkIDs(ws); err != nil {
		return nil, err
	}
	ids, err := s.rdb.ZRange(ctx, SentKey(ws), 0, -1).Result()
	if err != nil {
		return nil, unavailableIf("read sent prompts", err)
	}
	return ids, nil
}

// ExpireOwner extends the owner record's expiry.
func (s *Store) ExpireOwner(ctx context.Context, ws string, ttl time.Duration) error {
	return unavailableIf("owner record", s.rdb.PExpire(ctx, OwnerKey(ws), ttl).Err())
}

// SetOwnerHealth records the sandbox's health in the owner record.
func (s *Store) SetOwnerHealth(ctx context.Context, ws, health string) error {
	return unavailableIf("owner health", s.rdb.HSet(ctx, OwnerKey(ws), "health", health).Err())
}

// DeleteOwner removes the owner record if it is epoch's.
func (s *Store) DeleteOwner(ctx context.Context, ws string, epoch uint64) error {
	err := ownerDelScript.Run(ctx, s.rdb, []string{OwnerKey(ws)}, epoch).Err()
	if err != nil && !errors.Is(err, redis.Nil) {
		return redisErr("remove owner record", err)
	}
	return nil
}

func parseRecord(v map[string]string) model.SessionRecord {
	r := model.SessionRecord{
		ID:               v["id"],
		Agent:            v["agent"],
		AgentSessionID:   v["agentSessionId"],
		LastConnectionID: v["lastConnectionId"],
		SandboxID:        v["sandboxId"],
	}
	r.CreatedAt, _ = strconv.ParseInt(v["createdAt"], 10, 64)
	if d, err := strconv.ParseInt(v["destroyedAt"], 10, 64); err == nil {
		r.DestroyedAt = &d
	}
	if s := v["sessionInit"]; s != "" && json.Valid([]byte(s)) {
		r.SessionInit = []byte(s)
	}
	model.ParseSessionConfig(&r, v)
	return r
}

// Session returns a session's record; found is false when it has none.
func (s *Store) Session(ctx context.Context, ws, sid string) (rec model.SessionRecord, found bool, err error) {
	if err := checkIDs(ws, sid); err != nil {
		return rec, false, err
	}
	v, err := s.rdb.HGetAll(ctx, SessionKey(ws, sid)).Result()
	if err != nil {
		return rec, false, unavailable("load session", err)
	}
	if len(v) == 0 {
		return rec, false, nil
	}
	return parseRecord(v), true, nil
}

// SessionOf returns a session's record, read together with whether its
// workspace has settings.
func (s *Store) SessionOf(ctx context.Context, ws, sid string) (rec model.SessionRecord, wsFound, found bool, err error) {
	if err := checkIDs(ws, sid); err != nil {
		return rec, false, false, err
	}
	var metaN *redis.BoolCmd
	var v *redis.MapStringStringCmd
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		metaN = p.HExists(ctx, MetaKey(ws), "createdAt") // a tombstone has none
		v = p.HGetAll(ctx, SessionKey(ws, sid))
		return nil
	})
	if err != nil {
		return rec, false, false, unavailable("get session", err)
	}
	if !metaN.Val() {
		return rec, false, false, nil
	}
	if len(v.Val()) == 0 || v.Val()["id"] == "" {
		return rec, true, false, nil
	}
	return parseRecord(v.Val()), true, true, nil
}

// SessionIDs returns a workspace's session ids, oldest first.
func (s *Store) SessionIDs(ctx context.Context, ws string) ([]string, error) {
	if err := checkIDs(ws); err != nil {
		return nil, err
	}
	v, err := s.rdb.ZRange(ctx, SessionsKey(ws), 0, -1).Result()
	if err != nil {
		return nil, unavailable("sessions", err)
	}
	return v, nil
}

// MarkSessionDestroyed sets a session's destroyedAt unless it is set.
func (s *Store) MarkSessionDestroyed(ctx context.Context, ws, sid string, now int64) error {
	if err := checkIDs(ws, sid); err != nil {
		return err
	}
	return unavailableIf("delete session", s.rdb.HSetNX(ctx, SessionKey(ws, sid), "destroyedAt", now).Err())
}

// RecordAgentSession records a session's agent session, connection and
// the session/new it was made with, while epoch is the workspace's writer
// (else ErrStaleWriter).
func (s *Store) RecordAgentSession(ctx context.Context, ws, sid string, epoch uint64, agentSessionID, connID, init string) error {
	if err := checkIDs(ws, sid); err != nil {
		return err
	}
	err := fencedHSetScript.Run(ctx, s.rdb, []string{FenceKey(ws), SessionKey(ws, sid)}, epoch,
		"agentSessionId", agentSessionID, "lastConnectionId", connID, "sessionInit", init).Err()
	if err != nil {
		return redisErr("record session "+sid, err)
	}
	return nil
}

// ListSessions returns up to limit session records ordered by (createdAt,
// id), after the one at (afterScore, afterID) (afterScore < 0: from the
// first), and the position of the next page (nextScore < 0 at the end).
func (s *Store) ListSessions(ctx context.Context, ws string, afterScore int64, afterID string, limit int) (recs []model.SessionRecord, nextScore int64, nextID string, err error) {
	if err := checkIDs(ws); err != nil {
		return nil, -1, "", err
	}
	min := "-inf"
	if afterScore >= 0 {
		min = strconv.FormatInt(afterScore, 10)
	}
	// Members of equal score come in id order; skip those up to the cursor.
	var out []redis.Z
	offset := int64(0)
	for len(out) < limit+1 {
		zs, err := s.rdb.ZRangeArgsWithScores(ctx, redis.ZRangeArgs{
			Key: SessionsKey(ws), Start: min, Stop: "+inf", ByScore: true, Offset: offset, Count: int64(limit + 1),
		}).Result()
		if err != nil {
			return nil, -1, "", unavailable("list sessions", err)
		}
		for _, z := range zs {
			id := z.Member.(string)
			if afterScore >= 0 && int64(z.Score) == afterScore && id <= afterID {
				continue
			}
			out = append(out, z)
		}
		if len(zs) < limit+1 {
			break
		}
		offset += int64(len(zs))
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Score != out[j].Score {
			return out[i].Score < out[j].Score
		}
		return out[i].Member.(string) < out[j].Member.(string)
	})
	nextScore = -1
	if len(out) > limit {
		out = out[:limit]
		last := out[len(out)-1]
		nextScore, nextID = int64(last.Score), last.Member.(string)
	}
	cmds := make([]*redis.MapStringStringCmd, len(out))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, z := range out {
			cmds[i] = p.HGetAll(ctx, SessionKey(ws, z.Member.(string)))
		}
		return nil
	})
	if err != nil {
		return nil, -1, "", unavailable("list sessions", err)
	}
	recs = make([]model.SessionRecord, 0, len(out))
	for _, c := range cmds {
		if len(c.Val()) > 0 {
			recs = append(recs, parseRecord(c.Val()))
		}
	}
	return recs, nextScore, nextID, nil
}

// ReportPresence writes node's reports of its stream clients: reports for
// the workspaces in put, removal for those in drop, and rings the doorbell
// of those in changed with signal sig. Reports expire after ttl.
func (s *Store) ReportPresence(ctx context.Context, node string, put map[string][]byte, drop, changed []string, ttl time.Duration, sig string) error {
	for ws := range put {
		if err := checkIDs(ws); err != nil {
			return err
		}
	}
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for ws, b := range put {
			p.HSet(ctx, PresenceKey(ws), node, b)
			p.PExpire(ctx, PresenceKey(ws), ttl)
		}
		for _, ws := range drop {
			p.HDel(ctx, PresenceKey(ws), node)
		}
		for _, ws := range changed {
			p.Publish(ctx, NotifyChannel(ws), SignalPrefix+sig)
		}
		return nil
	})
	return unavailableIf("presence", err)
}

// PresenceReports returns every node's report of a workspace (node →
// JSON of a model.PresenceReport). Reports expired for more than
// PresenceGrace are deleted as they are read (lua/presence_read.lua): a
// node that died leaves no field behind in a key other nodes keep alive.
func (s *Store) PresenceReports(ctx context.Context, ws string) (map[string]string, error) {
	if err := checkIDs(ws); err != nil {
		return nil, err
	}
	v, err := presenceReadScript.Run(ctx, s.rdb, []string{PresenceKey(ws)}, PresenceGrace.Milliseconds()).StringSlice()
	if err != nil {
		return nil, unavailable("presence", err)
	}
	out := make(map[string]string, len(v)/2)
	for i := 0; i+1 < len(v); i += 2 {
		out[v[i]] = v[i+1]
	}
	return out, nil
}

// PresenceGrace is how long after its expiry a presence report is kept
// (clocks of nodes and Redis may disagree by that much).
const PresenceGrace = 10 * time.Second

// isNoGroup reports whether err says the inbox has no consumer group.
func isNoGroup(err error) bool { return err != nil && strings.Contains(err.Error(), "NOGROUP") }
