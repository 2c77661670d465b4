package workspace

// Agent failures everyone can see, and bounded: an agent the sandbox does
// not offer is refused when a workspace or session names it; an agent
// session that cannot be made (session/new, initialize or authenticate
// failing, or the sandbox refusing the agent) appends one session.status
// agent_error per distinct failure (message and code, scrubbed), retries
// with the open's bounded backoff without the stream growing (the
// handshake of a retry is appended only when it succeeds), and after
// AgentFailureLimit failures in a row ends each queued prompt with
// turn_ended stopReason "error". When the agent advertises an
// authentication method that reads environment variables, authenticate is
// called with it before session/new, as the SDK's autoAuthenticate does;
// otherwise the agent_error names the methods the agent offers.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tandem-dev/tandem/acp"
	"github.com/tandem-dev/tandem/eventlog/model"
)

// StatusAgentError is the session.status of an agent that cannot start.
const StatusAgentError = "agent_error"

// stateAgentError is the stream state field naming the last agent_error
// appended (a digest), so it is appended once per distinct failure.
const stateAgentError = "agent_error"

// ErrUnknownAgent: the sandbox does not offer the agent named.
var ErrUnknownAgent = errors.New("unknown agent")

// UnknownAgentError names the agent refused and those the sandbox offers.
type UnknownAgentError struct {
	Agent     string
	Available []string
}

func (e *UnknownAgentError) Error() string {
	return fmt.Sprintf("%v: %q; the sandbox offers %s", ErrUnknownAgent, e.Agent, strings.Join(e.Available, ", "))
}

func (e *UnknownAgentError) Unwrap() error { return ErrUnknownAgent }

// checkAgent refuses an agent the sandbox does not list. A sandbox that
// cannot say (unreachable, or without the route) lets it through: the
// owner's agent_error says what went wrong then.
func (m *Manager) checkAgent(ctx context.Context, sb Sandbox, agent string) error {
	c, err := m.sandboxClient(sb)
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	list, err := c.Agents(ctx)
	if err != nil {
		m.logger.Debug("the sandbox's agents are not known; not checked", slog.String("agent", agent), slog.Any("err", err))
		return nil
	}
	ids := make([]string, 0, len(list))
	for _, a := range list {
		ids = append(ids, a.ID)
	}
	if slices.Contains(ids, agent) {
		return nil
	}
	slices.Sort(ids)
	return &UnknownAgentError{Agent: agent, Available: ids}
}

// checkSessionAgent checks an agent a session is created with against the
// workspace's sandbox.
func (m *Manager) checkSessionAgent(ctx context.Context, ws, agent string) error {
	if agent == "" {
		return nil
	}
	md, err := m.loadMeta(ctx, ws)
	if err != nil {
		return err
	}
	return m.checkAgent(ctx, md.Sandbox, agent)
}

// authMethod is an ACP auth method as initialize advertises it.
type authMethod struct {
	ID          string            `json:"id"`
	Name        string            `json:"name,omitempty"`
	Description string            `json:"description,omitempty"`
	Type        string            `json:"type,omitempty"`
	VarName     string            `json:"varName,omitempty"`
	Vars        []json.RawMessage `json:"vars,omitempty"`
}

// fromEnv reports whether the method reads environment variables, which
// the agent process inherits from the sandbox.
func (a authMethod) fromEnv() bool {
	return a.Type == "env_var" || a.VarName != "" || len(a.Vars) > 0
}

// autoAuthenticate authenticates with the first method of the agent that
// reads environment variables, if it offers one; it returns the methods.
func autoAuthenticate(ctx context.Context, conn *acp.Conn, initResult json.RawMessage) ([]authMethod, error) {
	var r struct {
		AuthMethods []authMethod `json:"authMethods"`
	}
	_ = json.Unmarshal(initResult, &r)
	for _, m := range r.AuthMethods {
		if m.fromEnv() {
			_, err := conn.Call(ctx, acp.MethodAuthenticate, map[string]any{"methodId": m.ID})
			return r.AuthMethods, err
		}
	}
	return r.AuthMethods, nil
}

var secretRE = regexp.MustCompile(`(?i)(bearer\s+\S+|\b(sk|pk|rk|ghp|gho|xox[abpr])[-_][A-Za-z0-9_-]{8,}|[A-Za-z0-9+/_=-]{32,})`)

// scrub keeps an error message short and without what looks like a
// credential.
func scrub(s string) string {
	s = secretRE.ReplaceAllString(s, "[redacted]")
	if len(s) > 500 {
		s = s[:500] + "…"
	}
	return s
}

// agentFailure describes a failed open that the agent (or the sandbox
// refusing it) caused; nil for a transient failure (the network, Redis).
func agentFailure(err error, methods []authMethod) map[string]any {
	var re *acp.RPCError
	var se *acp.StatusError
	var f map[string]any
	switch {
	case errors.As(err, &re):
		f = map[string]any{"code": re.Code, "message": scrub(re.Message)}
	case errors.As(err, &se) && !errors.Is(err, acp.ErrUnknownConnection):
		msg := strings.TrimSpace(se.Title + ": " + se.Detail)
		f = map[string]any{"status": se.Status, "message": scrub(strings.Trim(msg, ": "))}
	case errors.Is(err, acp.ErrAgentExited):
		f = map[string]any{"message": "the agent process exited"}
	default:
		return nil
	}
	if len(methods) > 0 {
		var names []string
		for _, m := range methods {
			if !m.fromEnv() {
				names = append(names, m.ID)
			}
		}
		if len(names) > 0 {
			f["authMethods"] = names
			f["message"] = fmt.Sprint(f["message"], " (the agent authenticates with one of: ", strings.Join(names, ", "), ")")
		}
	}
	return f
}

// agentFailed records a failed open caused by the agent, once per
// distinct failure, and ends the queued prompts after too many.
func (o *owner) agentFailed(ctx context.Context, s *session, r openResult) {
	f := agentFailure(r.err, r.authMethods)
	if f == nil {
		return
	}
	s.agentFailures++
	b, _ := json.Marshal(f)
	sum := sha256.Sum256(b)
	key := hex.EncodeToString(sum[:8])
	if s.agentErr == "" {
		st, err := o.log().State(ctx, o.ws, s.id)
		if err != nil {
			return
		}
		s.agentErr = st[stateAgentError]
	}
	if key != s.agentErr {
		f["agent"] = o.agentOf(s)
		f["attempt"] = s.agentFailures
		if _, err := o.log().AppendState(ctx, o.ws, s.id, o.epoch, map[string]string{stateAgentError: key}, statusRecord(StatusAgentError, f)); err != nil {
			o.stale(err)
			return
		}
		s.agentErr = key
	}
	if s.agentFailures >= o.m.cfg.AgentFailureLimit && len(s.queue) > 0 {
		o.failQueued(ctx, s, fmt.Sprint("the agent could not start: ", f["message"]))
	}
}

func (o *owner) agentOf(s *session) string {
	if s.rec.Agent != "" {
		return s.rec.Agent
	}
	return o.meta.Agent
}

// failQueued ends each queued prompt: its chat.user, turn_started and
// turn_ended with stopReason "error" and the reason, so that every
// accepted prompt has its turn in the stream.
func (o *owner) failQueued(ctx context.Context, s *session, reason string) {
	var recs []model.Record
	var ids []string
	last := s.state.LastInbox
	for _, e := range s.queue {
		user, _ := json.Marshal(map[string]any{"userId": e.User, "text": e.Text, "promptId": e.ID})
		recs = append(recs, model.Record{Type: TypeChatUser, Body: user},
			statusRecord(StatusTurnStarted, map[string]any{"promptId": e.ID, "userId": e.User}),
			statusRecord(StatusTurnEnded, map[string]any{"stopReason": "error", "promptId": e.ID, "reason": reason}))
		ids = append(ids, e.ID)
		if last == "" || idAfter(e.ID, last) {
			last = e.ID
		}
	}
	if _, err := o.log().AppendState(ctx, o.ws, s.id, o.epoch, stateWrite{lastInbox: last}.fields(), recs...); err != nil {
		if !o.stale(err) {
			o.logger.Warn("ending the queued prompts failed; will retry", slog.String("sid", s.id), slog.Any("err", err))
		}
		return
	}
	for range ids {
		o.m.obs.TurnEnded("error")
	}
	s.state.LastInbox = last
	s.queue = nil
	s.agentDown = true
	s.agentFailures = 0
	s.failures = 1 // the backoff starts again, and retries stay held back
	o.ack(ctx, ids...)
}

// agentStarted forgets the failures once an agent session was made.
func (o *owner) agentStarted(ctx context.Context, s *session) {
	s.agentFailures, s.agentDown = 0, false
	if s.agentErr == "" {
		return
	}
	if _, err := o.log().AppendState(ctx, o.ws, s.id, o.epoch, map[string]string{stateAgentError: ""}); err != nil {
		o.stale(err)
		return
	}
	s.agentErr = ""
}

// handshake holds back the messages of a retried open (initialize,
// authenticate, session/new and their answers) until it succeeds, so
// that an agent failing again and again does not grow the stream: they
// are appended in order, with their ACP ids, once session/new succeeded,
// and dropped when it failed. A nil handshake holds nothing back.
type handshake struct {
	mu   sync.Mutex
	on   bool
	recs []model.Record
}

func (h *handshake) wrapMsg(next func(acp.Event, acp.Envelope) error, connID string) func(acp.Event, acp.Envelope) error {
	if h == nil {
		return next
	}
	return func(ev acp.Event, env acp.Envelope) error {
		h.mu.Lock()
		if h.on {
			h.recs = append(h.recs, envelopeRecord(connID, "agent", ev.Data, ev.ID))
			h.mu.Unlock()
			return nil
		}
		h.mu.Unlock()
		return next(ev, env)
	}
}

func (h *handshake) wrapSend(next func(context.Context, []byte) error, connID string) func(context.Context, []byte) error {
	if h == nil {
		return next
	}
	return func(ctx context.Context, msg []byte) error {
		h.mu.Lock()
		if h.on {
			h.recs = append(h.recs, envelopeRecord(connID, "client", msg, ""))
			h.mu.Unlock()
			return nil
		}
		h.mu.Unlock()
		return next(ctx, msg)
	}
}

// flush appends what was held back, in order, and lets later messages
// through; messages arriving meanwhile wait, so they land after it.
func (h *handshake) flush(ctx context.Context, o *owner, sid, connID string) error {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.recs) > 0 {
		if _, err := o.log().AppendState(ctx, o.ws, sid, o.epoch, stateWrite{conn: ptr(connID)}.fields(), h.recs...); err != nil {
			return err
		}
	}
	h.on, h.recs = false, nil
	return nil
}
