package workspace

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tandem-dev/tandem/eventlog"
)

// The store is the part of the workspace API any node serves: it reads
// and writes workspace settings and session records and enqueues commands
// for the owner. It never talks to a sandbox.

// validAgent: agent names as Sandbox Agent knows them (mock, codex,
// claude…).
func validAgent(a string) bool {
	if a == "" || len(a) > 64 {
		return false
	}
	for i := 0; i < len(a); i++ {
		c := a[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// checkSettings validates settings after defaults were filled in.
func (m *Manager) checkSettings(s Settings) error {
	if !validAgent(s.Agent) {
		return invalid("agent %q: want 1-64 characters of [a-z0-9._-]", s.Agent)
	}
	u, err := url.Parse(s.Sandbox.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return invalid("sandbox.baseUrl must be an http(s) URL without credentials, query or fragment")
	}
	if m.cfg.SandboxAllowed != nil && !m.cfg.SandboxAllowed(u) {
		return fmt.Errorf("%w: %s", ErrSandboxNotAllowed, u.Host)
	}
	if len(s.Sandbox.Token) > 4096 || strings.ContainsAny(s.Sandbox.Token, "\r\n") {
		return invalid("sandbox.token is too long or holds line breaks")
	}
	if len(s.Sandbox.SandboxID) > 128 || strings.ContainsAny(s.Sandbox.SandboxID, "\r\n") {
		return invalid("sandbox.sandboxId is too long or holds line breaks")
	}
	return nil
}

// PutWorkspace creates or updates a workspace. Empty fields of s take the
// node's defaults. It reports whether the workspace was created.
func (m *Manager) PutWorkspace(ctx context.Context, ws string, s Settings) (bool, error) {
	if s.Sandbox.BaseURL == "" {
		s.Sandbox = m.cfg.DefaultSandbox
	}
	if s.Agent == "" {
		s.Agent = m.cfg.DefaultAgent
	}
	if err := m.checkSettings(s); err != nil {
		return false, err
	}
	now := time.Now().UnixMilli()
	var created *redis.BoolCmd
	_, err := m.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		created = p.HSetNX(ctx, metaKey(ws), "createdAt", now)
		p.HDel(ctx, metaKey(ws), "deletedAt") // a deleted workspace comes back
		p.HSet(ctx, metaKey(ws),
			"sandboxUrl", strings.TrimRight(s.Sandbox.BaseURL, "/"),
			"sandboxToken", s.Sandbox.Token,
			"sandboxId", s.Sandbox.SandboxID,
			"agent", s.Agent,
			"updatedAt", now)
		return nil
	})
	if err != nil {
		return false, unavailable("put workspace", err)
	}
	// A running owner reloads its settings.
	_ = eventlog.Signal(ctx, m.rdb, ws, sigMeta)
	return created.Val(), nil
}

// meta is a workspace's stored settings.
type meta struct {
	Settings
	CreatedAt int64
}

func (m *Manager) loadMeta(ctx context.Context, ws string) (meta, error) {
	v, err := m.rdb.HGetAll(ctx, metaKey(ws)).Result()
	if err != nil {
		return meta{}, unavailable("load workspace", err)
	}
	if len(v) == 0 || v["deletedAt"] != "" {
		return meta{}, fmt.Errorf("%s: %w", ws, ErrWorkspaceNotFound)
	}
	return parseMeta(v), nil
}

func parseMeta(v map[string]string) meta {
	created, _ := strconv.ParseInt(v["createdAt"], 10, 64)
	return meta{
		Settings: Settings{
			Sandbox: Sandbox{BaseURL: v["sandboxUrl"], Token: v["sandboxToken"], SandboxID: v["sandboxId"]},
			Agent:   v["agent"],
		},
		CreatedAt: created,
	}
}

// Exists returns ErrWorkspaceNotFound unless the workspace exists.
func (m *Manager) Exists(ctx context.Context, ws string) error {
	v, err := m.rdb.HMGet(ctx, metaKey(ws), "createdAt", "deletedAt").Result()
	if err != nil {
		return unavailable("workspace exists", err)
	}
	if v[0] == nil || v[1] != nil {
		return fmt.Errorf("%s: %w", ws, ErrWorkspaceNotFound)
	}
	return nil
}

// GetWorkspace returns a workspace's settings (without its token), owner,
// status and sessions.
func (m *Manager) GetWorkspace(ctx context.Context, ws string) (Info, error) {
	var metaCmd, ownerCmd *redis.MapStringStringCmd
	var lockCmd *redis.IntCmd
	var sessCmd *redis.StringSliceCmd
	_, err := m.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		metaCmd = p.HGetAll(ctx, metaKey(ws))
		ownerCmd = p.HGetAll(ctx, ownerKey(ws))
		lockCmd = p.Exists(ctx, lockKey(ws))
		sessCmd = p.ZRange(ctx, sessionsKey(ws), 0, -1)
		return nil
	})
	if err != nil {
		return Info{}, unavailable("get workspace", err)
	}
	if len(metaCmd.Val()) == 0 || metaCmd.Val()["deletedAt"] != "" {
		return Info{}, fmt.Errorf("%s: %w", ws, ErrWorkspaceNotFound)
	}
	md := parseMeta(metaCmd.Val())
	info := Info{
		WorkspaceID: ws,
		SandboxID:   md.Sandbox.SandboxID,
		Agent:       md.Agent,
		CreatedAt:   md.CreatedAt,
		Status:      "idle",
		Sessions:    sessCmd.Val(),
	}
	if info.Sessions == nil {
		info.Sessions = []string{}
	}
	if o := ownerCmd.Val(); len(o) > 0 && lockCmd.Val() == 1 {
		ep, _ := strconv.ParseUint(o["epoch"], 10, 64)
		since, _ := strconv.ParseInt(o["since"], 10, 64)
		info.Owner = &Owner{Node: o["node"], Epoch: ep, Since: since}
		info.Status = "active"
		if o["health"] == "unhealthy" {
			info.Status = StatusSandboxUnhealthy
		}
	}
	return info, nil
}

// DeleteWorkspace destroys the workspace's sessions and marks it deleted;
// its owner (the node that owns it, or one that takes it for this) closes
// the sessions' ACP connections, removes the settings and lets the
// workspace go. The event streams stay, as history.
func (m *Manager) DeleteWorkspace(ctx context.Context, ws string) error {
	res, err := m.runScript(ctx, deleteWorkspaceScript,
		[]string{metaKey(ws), sessionsKey(ws), inboxKey(ws)},
		tag(ws)+":session:", eventlog.NotifyChannel(ws))
	if err != nil {
		return unavailable("delete workspace", err)
	}
	if res[0] == "err_ws" {
		return fmt.Errorf("%s: %w", ws, ErrWorkspaceNotFound)
	}
	m.markActive(ctx, ws)
	m.Demand(ws)
	return nil
}

var deleteWorkspaceScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HEXISTS', KEYS[1], 'deletedAt') == 1 then return {'err_ws'} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for _, sid in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  redis.call('HSETNX', ARGV[1] .. sid, 'destroyedAt', now)
end
redis.call('HSET', KEYS[1], 'deletedAt', now)
local id = redis.call('XADD', KEYS[3], '*', 'k', 'destroy_ws', 'at', now)
redis.call('PUBLISH', ARGV[2], '!inbox')
return {'ok', id}
`)

// enqueueScript validates a command against the workspace and the
// session, applies idempotency and appends the command to the inbox, all
// in one step.
//
// KEYS: meta, sessions zset, session hash, inbox, idempotency key, rate
// key
// ARGV: kind, sid, create (1: create the session when missing), user,
// text, idempotency TTL ms (0: no key), channel, agent for a created
// session ("" = the workspace's), rate interval ms (0: no limit), rate
// tolerance ms
//
// Returns {status, inbox id or retry-after ms, created}; status ok, dup,
// err_ws, err_session, err_destroyed, err_rate.
//
// The rate limit is GCRA, a token bucket kept as one timestamp (the
// theoretical arrival time) per user and workspace: a request is let
// through when that time is at most the tolerance (burst - 1 intervals)
// ahead of now, and moves it one interval on. A retried request with a
// known idempotency key is not counted.
var enqueueScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HEXISTS', KEYS[1], 'deletedAt') == 1 then return {'err_ws', '', '0'} end
local ttl = tonumber(ARGV[6])
if ttl > 0 then
  local prev = redis.call('GET', KEYS[5])
  if prev then return {'dup', prev, '0'} end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local s = redis.call('HMGET', KEYS[3], 'id', 'destroyedAt')
local interval = tonumber(ARGV[9])
local newTat = 0
if interval > 0 then
  local tat = tonumber(redis.call('GET', KEYS[6]) or '0')
  if tat < now then tat = now end
  local tolerance = tonumber(ARGV[10])
  if tat - now > tolerance then
    return {'err_rate', string.format('%d', tat - now - tolerance), '0'}
  end
  newTat = tat + interval
end
local created = '0'
if not s[1] then
  if ARGV[3] ~= '1' then return {'err_session', '', '0'} end
  local m = redis.call('HMGET', KEYS[1], 'agent', 'sandboxId')
  local agent = ARGV[8]
  if agent == '' then agent = m[1] or '' end
  redis.call('HSET', KEYS[3], 'id', ARGV[2], 'agent', agent, 'createdAt', now, 'sandboxId', m[2] or '')
  redis.call('ZADD', KEYS[2], now, ARGV[2])
  created = '1'
elseif s[2] and ARGV[1] ~= 'destroy' then
  return {'err_destroyed', '', '0'}
end
local id = redis.call('XADD', KEYS[4], '*', 'k', ARGV[1], 'sid', ARGV[2], 'user', ARGV[4], 'text', ARGV[5], 'at', now)
if ttl > 0 then redis.call('SET', KEYS[5], id, 'PX', ttl) end
if interval > 0 then redis.call('SET', KEYS[6], string.format('%d', newTat), 'PX', math.ceil(newTat - now) + 1000) end
redis.call('PUBLISH', ARGV[7], '!inbox')
return {'ok', id, created}
`)

// Inbox command kinds.
const (
	cmdPrompt    = "prompt"
	cmdCancel    = "cancel"
	cmdOpen      = "open"
	cmdDestroy   = "destroy"
	cmdDestroyWS = "destroy_ws"
)

// Signals on the workspace's doorbell.
const (
	sigInbox = "inbox"
	sigMeta  = "meta"
)

type enqueueReq struct {
	kind, sid, user, text, idem, agent string
	create                             bool
	limited                            bool // counts against the user's prompt rate
}

type enqueueRes struct {
	id        string
	created   bool
	duplicate bool
}

func (m *Manager) enqueue(ctx context.Context, ws string, r enqueueReq) (enqueueRes, error) {
	ttl := m.cfg.IdempotencyTTL.Milliseconds()
	var sum [32]byte
	if r.idem != "" {
		sum = sha256.Sum256([]byte(r.user + "\x00" + r.sid + "\x00" + r.idem))
	} else {
		// A call without a key gets one of its own, kept briefly: a client
		// library that sends the script again after a lost reply (go-redis
		// does when Redis restarts) then gets the first entry back instead
		// of a second one.
		_, _ = rand.Read(sum[:16])
		ttl = 10_000
	}
	ik := idemKey(ws, hex.EncodeToString(sum[:16]))
	create := "0"
	if r.create {
		create = "1"
	}
	var interval, tolerance int64
	if r.limited && m.cfg.PromptRate > 0 {
		interval = max(1, int64(1000/m.cfg.PromptRate))
		tolerance = interval * int64(max(m.cfg.PromptBurst, 1)-1)
	}
	userSum := sha256.Sum256([]byte(r.user))
	rk := rateKey(ws, hex.EncodeToString(userSum[:12]))
	res, err := m.runScript(ctx, enqueueScript,
		[]string{metaKey(ws), sessionsKey(ws), sessionKey(ws, r.sid), inboxKey(ws), ik, rk},
		r.kind, r.sid, create, r.user, r.text, ttl, eventlog.NotifyChannel(ws), r.agent, interval, tolerance)
	if err != nil {
		return enqueueRes{}, unavailable("enqueue "+r.kind, err)
	}
	switch res[0] {
	case "err_ws":
		return enqueueRes{}, fmt.Errorf("%s: %w", ws, ErrWorkspaceNotFound)
	case "err_session":
		return enqueueRes{}, fmt.Errorf("%s/%s: %w", ws, r.sid, ErrSessionNotFound)
	case "err_destroyed":
		return enqueueRes{}, fmt.Errorf("%s/%s: %w", ws, r.sid, ErrSessionDestroyed)
	case "err_rate":
		ms, _ := strconv.ParseInt(res[1], 10, 64)
		return enqueueRes{}, &RateLimitError{RetryAfter: time.Duration(ms) * time.Millisecond}
	}
	// Marked after the command is in the inbox: an owner going idle removes
	// the mark and then checks the inbox, so either it sees the command or
	// the mark made here outlives its release and a poller takes over.
	m.markActive(ctx, ws)
	m.Demand(ws)
	return enqueueRes{id: res[1], created: res[2] == "1", duplicate: res[0] == "dup"}, nil
}

// markActive puts ws in the set of workspaces pollers check for an owner.
func (m *Manager) markActive(ctx context.Context, ws string) {
	_ = m.rdb.ZAdd(ctx, activeKey, redis.Z{Score: float64(time.Now().UnixMilli()), Member: ws}).Err()
}

// MaxPromptBytes is the default bound of a prompt's text.
const MaxPromptBytes = 32 << 10

// Prompt accepts a prompt for the owner: once it returns, the prompt is in
// the inbox and reaches the agent exactly once. The default session is
// created on the first prompt. A repeated idempotency key (per user and
// session) returns the first prompt's id and enqueues nothing.
func (m *Manager) Prompt(ctx context.Context, ws, sid, user, text, idem string) (Accepted, error) {
	if strings.TrimSpace(text) == "" {
		return Accepted{}, invalid("text is empty")
	}
	if len(text) > m.cfg.MaxPromptBytes {
		return Accepted{}, fmt.Errorf("%w: text is %d bytes, at most %d", ErrTooLarge, len(text), m.cfg.MaxPromptBytes)
	}
	if len(idem) > 256 {
		return Accepted{}, invalid("Idempotency-Key is longer than 256 bytes")
	}
	r, err := m.enqueue(ctx, ws, enqueueReq{kind: cmdPrompt, sid: sid, user: user, text: text, idem: idem, create: sid == DefaultSession, limited: true})
	if err != nil {
		return Accepted{}, err
	}
	if !r.duplicate {
		m.obs.PromptAccepted()
	}
	return Accepted{ID: r.id, SessionID: sid, Duplicate: r.duplicate}, nil
}

// Cancel asks the owner to cancel the session's running turn, if any.
func (m *Manager) Cancel(ctx context.Context, ws, sid, user string) (string, error) {
	r, err := m.enqueue(ctx, ws, enqueueReq{kind: cmdCancel, sid: sid, user: user})
	return r.id, err
}

// CreateSession resumes the session id, or creates it with agent (the
// workspace's default when ""), and has the owner open it. It reports
// whether it was created.
func (m *Manager) CreateSession(ctx context.Context, ws, id, agent string) (SessionRecord, bool, error) {
	if agent != "" && !validAgent(agent) {
		return SessionRecord{}, false, invalid("agent %q: want 1-64 characters of [a-z0-9._-]", agent)
	}
	r, err := m.enqueue(ctx, ws, enqueueReq{kind: cmdOpen, sid: id, agent: agent, create: true})
	if err != nil {
		return SessionRecord{}, false, err
	}
	rec, err := m.GetSession(ctx, ws, id)
	return rec, r.created, err
}

// DeleteSession destroys a session: its turn is cancelled, its connection
// closed, and its record gets destroyedAt. Destroying a destroyed session
// is a no-op.
func (m *Manager) DeleteSession(ctx context.Context, ws, sid string) (SessionRecord, error) {
	if _, err := m.rdb.HSetNX(ctx, sessionKey(ws, sid), "destroyedAt", time.Now().UnixMilli()).Result(); err != nil {
		return SessionRecord{}, unavailable("delete session", err)
	}
	if _, err := m.enqueue(ctx, ws, enqueueReq{kind: cmdDestroy, sid: sid}); err != nil {
		return SessionRecord{}, err
	}
	return m.GetSession(ctx, ws, sid)
}

// GetSession returns a session's record.
func (m *Manager) GetSession(ctx context.Context, ws, sid string) (SessionRecord, error) {
	var metaN *redis.IntCmd
	var v *redis.MapStringStringCmd
	_, err := m.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		metaN = p.HLen(ctx, metaKey(ws))
		v = p.HGetAll(ctx, sessionKey(ws, sid))
		return nil
	})
	if err != nil {
		return SessionRecord{}, unavailable("get session", err)
	}
	if metaN.Val() == 0 {
		return SessionRecord{}, fmt.Errorf("%s: %w", ws, ErrWorkspaceNotFound)
	}
	if len(v.Val()) == 0 || v.Val()["id"] == "" {
		return SessionRecord{}, fmt.Errorf("%s/%s: %w", ws, sid, ErrSessionNotFound)
	}
	return parseRecord(v.Val()), nil
}

func parseRecord(v map[string]string) SessionRecord {
	r := SessionRecord{
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
		r.SessionInit = json.RawMessage(s)
	}
	return r
}

// ListSessions returns up to limit sessions ordered by (createdAt, id),
// after cursor ("" from the first), and the cursor of the next page ("" at
// the end).
func (m *Manager) ListSessions(ctx context.Context, ws, cursor string, limit int) ([]SessionRecord, string, error) {
	if err := m.Exists(ctx, ws); err != nil {
		return nil, "", err
	}
	var afterScore int64 = -1
	afterID := ""
	if cursor != "" {
		s, id, ok := strings.Cut(cursor, ":")
		n, err := strconv.ParseInt(s, 10, 64)
		if !ok || err != nil || n < 0 || id == "" {
			return nil, "", invalid("cursor is not one this server issued")
		}
		afterScore, afterID = n, id
	}
	min := "-inf"
	if afterScore >= 0 {
		min = strconv.FormatInt(afterScore, 10)
	}
	// Members of equal score come in id order; skip those up to the cursor.
	var out []redis.Z
	offset := int64(0)
	for len(out) < limit+1 {
		zs, err := m.rdb.ZRangeArgsWithScores(ctx, redis.ZRangeArgs{
			Key: sessionsKey(ws), Start: min, Stop: "+inf", ByScore: true, Offset: offset, Count: int64(limit + 1),
		}).Result()
		if err != nil {
			return nil, "", unavailable("list sessions", err)
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
	next := ""
	if len(out) > limit {
		out = out[:limit]
		last := out[len(out)-1]
		next = strconv.FormatInt(int64(last.Score), 10) + ":" + last.Member.(string)
	}
	cmds := make([]*redis.MapStringStringCmd, len(out))
	_, err := m.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, z := range out {
			cmds[i] = p.HGetAll(ctx, sessionKey(ws, z.Member.(string)))
		}
		return nil
	})
	if err != nil {
		return nil, "", unavailable("list sessions", err)
	}
	recs := make([]SessionRecord, 0, len(out))
	for _, c := range cmds {
		if len(c.Val()) > 0 {
			recs = append(recs, parseRecord(c.Val()))
		}
	}
	return recs, next, nil
}

// unavailable wraps a Redis failure so that the API maps it to 503.
func unavailable(op string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", op, err)
	}
	return fmt.Errorf("%s: %w: %w", op, eventlog.ErrUnavailable, err)
}

// runScript runs a script of the store through the event log, which
// follows it with WAIT when it is configured to wait for replicas: an
// accepted prompt (a 202) survives a failover as an appended event does.
// The reply is a list of strings.
func (m *Manager) runScript(ctx context.Context, script *redis.Script, keys []string, args ...any) ([]string, error) {
	raw, err := m.log.RunScript(ctx, script, keys, args...)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(raw))
	for i, v := range raw {
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("script reply %d is %T, not a string", i, v)
		}
		out[i] = s
	}
	return out, nil
}
