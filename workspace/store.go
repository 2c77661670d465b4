package workspace

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tandem-dev/tandem/eventlog/model"
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
	if len(s.Agents) > 32 {
		return invalid("agents: at most 32")
	}
	for _, a := range s.Agents {
		if !validAgent(a) {
			return invalid("agents: %q: want 1-64 characters of [a-z0-9._-]", a)
		}
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
	switch s.PermissionPolicy {
	case "", PolicyAsk, PolicyAllow, PolicyReject:
	default:
		return invalid("permissionPolicy %q: want ask, allow or reject", s.PermissionPolicy)
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
	if s.Agent != m.cfg.DefaultAgent {
		if err := m.checkAgent(ctx, s.Sandbox, s.Agent); err != nil {
			return false, err
		}
	}
	created, err := m.store.PutWorkspace(ctx, ws, model.WorkspaceMeta{
		SandboxURL:   strings.TrimRight(s.Sandbox.BaseURL, "/"),
		SandboxToken: s.Sandbox.Token,
		SandboxID:    s.Sandbox.SandboxID,
		Agent:        s.Agent,
		Agents:       s.Agents,

		PermissionPolicy: s.PermissionPolicy,
		SpeakerLabels:    labelsOf(s.SpeakerLabels),
	}, time.Now().UnixMilli())
	if err != nil {
		return false, err
	}
	// A running owner reloads its settings.
	_ = m.store.Signal(ctx, ws, sigMeta)
	return created, nil
}

// meta is a workspace's stored settings.
type meta struct {
	Settings
	CreatedAt int64
}

func (m *Manager) loadMeta(ctx context.Context, ws string) (meta, error) {
	v, found, err := m.store.WorkspaceMeta(ctx, ws)
	if err != nil {
		return meta{}, err
	}
	if !found || v.Deleted {
		return meta{}, fmt.Errorf("%s: %w", ws, ErrWorkspaceNotFound)
	}
	return metaOf(v), nil
}

func metaOf(v model.WorkspaceMeta) meta {
	return meta{
		Settings: Settings{
			Sandbox: Sandbox{BaseURL: v.SandboxURL, Token: v.SandboxToken, SandboxID: v.SandboxID},
			Agent:   v.Agent,
			Agents:  v.Agents,

			PermissionPolicy: policyOf(v.PermissionPolicy),
			SpeakerLabels:    ptr(v.SpeakerLabels != "off"),
		},
		CreatedAt: v.CreatedAt,
	}
}

// labelsOf is the stored form of a speakerLabels setting: "" keeps it.
func labelsOf(b *bool) string {
	switch {
	case b == nil:
		return ""
	case *b:
		return "on"
	}
	return "off"
}

// policyOf is a stored permission policy: ask when none is stored.
func policyOf(p string) string {
	if p == "" {
		return PolicyAsk
	}
	return p
}

// Exists returns ErrWorkspaceNotFound unless the workspace exists.
func (m *Manager) Exists(ctx context.Context, ws string) error {
	ok, err := m.store.WorkspaceExists(ctx, ws)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%s: %w", ws, ErrWorkspaceNotFound)
	}
	return nil
}

// GetWorkspace returns a workspace's settings (without its token), owner,
// status and sessions.
func (m *Manager) GetWorkspace(ctx context.Context, ws string) (Info, error) {
	v, err := m.store.Workspace(ctx, ws)
	if err != nil {
		return Info{}, err
	}
	if !v.Found || v.Meta.Deleted {
		return Info{}, fmt.Errorf("%s: %w", ws, ErrWorkspaceNotFound)
	}
	info := Info{
		WorkspaceID: ws,
		SandboxID:   v.Meta.SandboxID,
		Agent:       v.Meta.Agent,
		Agents:      v.Meta.Agents,
		CreatedAt:   v.Meta.CreatedAt,
		Status:      "idle",
		Sessions:    v.Sessions,

		PermissionPolicy: policyOf(v.Meta.PermissionPolicy),
		SpeakerLabels:    v.Meta.SpeakerLabels != "off",
	}
	if info.Sessions == nil {
		info.Sessions = []string{}
	}
	if o := v.Owner; o != nil {
		info.Owner = &Owner{Node: o.Node, Epoch: o.Epoch, Since: o.Since}
		info.Status = "active"
		if o.Health == "unhealthy" {
			info.Status = StatusSandboxUnhealthy
		}
	}
	return info, nil
}

// DeleteWorkspace destroys the workspace's sessions and marks it deleted;
// its owner (the node that owns it, or one that takes it for this) closes
// the sessions' ACP connections, replaces the settings by a tombstone and
// lets the workspace go. The event streams stay, as history, and the id
// cannot be created again (ErrWorkspaceDeleted) until PurgeWorkspace.
func (m *Manager) DeleteWorkspace(ctx context.Context, ws string) error {
	found, err := m.store.DeleteWorkspace(ctx, ws)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("%s: %w", ws, ErrWorkspaceNotFound)
	}
	m.markActive(ctx, ws)
	m.Demand(ws)
	return nil
}

// PurgeWorkspace removes everything of the workspace from the store, so
// that its id can be created again with no sessions and no history. A
// workspace not deleted yet is deleted first.
//
// The purge itself runs only once the deletion finished and no owner
// holds the lock (the store refuses otherwise, changing nothing): the
// owner has destroyed the sessions and stopped appending, and an ex-owner
// still running on old in-memory heads finds the fence gone, so its
// fenced writes fail stale (the fence is checked before the heads: it
// stops, never taking the emptied streams for a rewind and restarting),
// and pollers never take a workspace without settings. Running the purge
// as a fenced step of the owner's finishDelete would also hold, but would
// tie the HTTP answer to whichever node owns the workspace; waiting here
// for the owner to let go keeps the purge one script on one node. The
// wait is bounded by Config.PurgeWait, then ErrWorkspaceBusy (retry).
func (m *Manager) PurgeWorkspace(ctx context.Context, ws string) error {
	deadline := time.Now().Add(m.cfg.PurgeWait)
	deleted := false
	for {
		st, err := m.store.PurgeWorkspace(ctx, ws)
		if err != nil {
			return fmt.Errorf("purge %s: %w", ws, err)
		}
		switch st {
		case model.PurgeOK:
			// The active mark is the one key outside the workspace's tag.
			if err := m.store.UnmarkActive(ctx, ws); err != nil {
				m.logger.Warn("purged workspace still marked active; pollers drop it", slog.String("ws", ws), slog.Any("err", err))
			}
			return nil
		case model.PurgeNone:
			return fmt.Errorf("%s: %w", ws, ErrWorkspaceNotFound)
		case model.PurgeLive:
			if deleted {
				// Created again between two tries: not this purge's to take.
				return fmt.Errorf("purge %s: %w", ws, ErrWorkspaceBusy)
			}
			if err := m.DeleteWorkspace(ctx, ws); err != nil && !errors.Is(err, ErrWorkspaceNotFound) {
				return fmt.Errorf("purge %s: %w", ws, err)
			}
			deleted = true
			continue
		}
		// Deleting, or an owner holds it: it finishes and lets go soon.
		m.Demand(ws)
		if !time.Now().Before(deadline) {
			return fmt.Errorf("purge %s: %w", ws, ErrWorkspaceBusy)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("purge %s: %w", ws, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

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
	ttl := m.cfg.IdempotencyTTL
	var sum [32]byte
	if r.idem != "" {
		sum = sha256.Sum256([]byte(r.user + "\x00" + r.sid + "\x00" + r.idem))
	} else {
		// A call without a key gets one of its own, kept briefly: a client
		// library that sends the script again after a lost reply (go-redis
		// does when Redis restarts) then gets the first entry back instead
		// of a second one.
		_, _ = rand.Read(sum[:16])
		ttl = 10 * time.Second
	}
	var interval, tolerance time.Duration
	if r.limited && m.cfg.PromptRate > 0 {
		interval = time.Duration(max(1, int64(1000/m.cfg.PromptRate))) * time.Millisecond
		tolerance = interval * time.Duration(max(m.cfg.PromptBurst, 1)-1)
	}
	userSum := sha256.Sum256([]byte(r.user))
	res, err := m.store.Enqueue(ctx, ws, model.Enqueue{
		Kind: r.kind, Session: r.sid, User: r.user, Text: r.text, Agent: r.agent, Create: r.create,
		IdemKey: hex.EncodeToString(sum[:16]), IdemTTL: ttl,
		RateKey: hex.EncodeToString(userSum[:12]), RateInterval: interval, RateTolerance: tolerance,
		MaxSessions: max(m.cfg.MaxSessions, 0),
	})
	if err != nil {
		return enqueueRes{}, err
	}
	switch res.Status {
	case model.EnqueueNoWorkspace:
		return enqueueRes{}, fmt.Errorf("%s: %w", ws, ErrWorkspaceNotFound)
	case model.EnqueueNoSession:
		return enqueueRes{}, fmt.Errorf("%s/%s: %w", ws, r.sid, ErrSessionNotFound)
	case model.EnqueueDestroyed:
		return enqueueRes{}, fmt.Errorf("%s/%s: %w", ws, r.sid, ErrSessionDestroyed)
	case model.EnqueueRateLimited:
		return enqueueRes{}, &RateLimitError{RetryAfter: res.RetryAfter}
	case model.EnqueueAgent:
		return enqueueRes{}, fmt.Errorf("%s: agent %q: %w", ws, r.agent, ErrAgentNotAllowed)
	case model.EnqueueTooMany:
		return enqueueRes{}, fmt.Errorf("%s: %w (%d)", ws, ErrSessionLimit, m.cfg.MaxSessions)
	}
	// Marked after the command is in the inbox: an owner going idle removes
	// the mark and then checks the inbox, so either it sees the command or
	// the mark made here outlives its release and a poller takes over.
	m.markActive(ctx, ws)
	m.Demand(ws)
	return enqueueRes{id: res.ID, created: res.Created, duplicate: res.Status == model.EnqueueDuplicate}, nil
}

// markActive puts ws in the set of workspaces pollers check for an owner.
func (m *Manager) markActive(ctx context.Context, ws string) {
	_ = m.store.MarkActive(ctx, ws)
}

// MaxPromptBytes is the default bound of a prompt's text.
const MaxPromptBytes = 32 << 10

// Prompt accepts a prompt for the owner: once it returns, the prompt is in
// the inbox and reaches the agent at most once (its turn ends answered,
// or delivery_unknown when a new owner cannot tell). The default session is
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

// validPromptID: an inbox entry id, "<ms>-<seq>".
func validPromptID(id string) bool {
	ms, seq, ok := strings.Cut(id, "-")
	if !ok || ms == "" || seq == "" || len(id) > 41 {
		return false
	}
	for _, c := range ms + seq {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// Withdraw withdraws prompt id (the id its 202 answered) of session sid
// for user, unless it was dispatched: a withdrawn prompt never reaches the
// agent (the owner's dispatch of it fails and it skips it), and the room
// sees prompt.withdrawn on the workspace stream. Only its sender may, or
// an admin.
func (m *Manager) Withdraw(ctx context.Context, ws, sid, id, user string, admin bool) error {
	if !validPromptID(id) {
		return fmt.Errorf("%s/%s/%s: %w", ws, sid, id, ErrPromptNotFound)
	}
	st, _, err := m.store.Withdraw(ctx, ws, model.Withdraw{Session: sid, ID: id, User: user, Admin: admin})
	if err != nil {
		return err
	}
	switch st {
	case model.WithdrawOK:
		return nil
	case model.WithdrawNoWorkspace:
		return fmt.Errorf("%s: %w", ws, ErrWorkspaceNotFound)
	case model.WithdrawDispatched:
		return fmt.Errorf("%s/%s/%s: %w", ws, sid, id, ErrPromptDispatched)
	case model.WithdrawForbidden:
		return fmt.Errorf("%s/%s/%s: %w", ws, sid, id, ErrNotSender)
	}
	return fmt.Errorf("%s/%s/%s: %w", ws, sid, id, ErrPromptNotFound)
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
	if err := m.checkSessionAgent(ctx, ws, agent); err != nil {
		return SessionRecord{}, false, err
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
	if err := m.store.MarkSessionDestroyed(ctx, ws, sid, time.Now().UnixMilli()); err != nil {
		return SessionRecord{}, err
	}
	if _, err := m.enqueue(ctx, ws, enqueueReq{kind: cmdDestroy, sid: sid}); err != nil {
		return SessionRecord{}, err
	}
	return m.GetSession(ctx, ws, sid)
}

// GetSession returns a session's record.
func (m *Manager) GetSession(ctx context.Context, ws, sid string) (SessionRecord, error) {
	rec, wsFound, found, err := m.store.SessionOf(ctx, ws, sid)
	if err != nil {
		return SessionRecord{}, err
	}
	if !wsFound {
		return SessionRecord{}, fmt.Errorf("%s: %w", ws, ErrWorkspaceNotFound)
	}
	if !found {
		return SessionRecord{}, fmt.Errorf("%s/%s: %w", ws, sid, ErrSessionNotFound)
	}
	return rec, nil
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
	recs, nextScore, nextID, err := m.store.ListSessions(ctx, ws, afterScore, afterID, limit)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if nextScore >= 0 {
		next = strconv.FormatInt(nextScore, 10) + ":" + nextID
	}
	return recs, next, nil
}
