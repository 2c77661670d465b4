package workspace

// Modes, models and config options of a session: what the agent's
// session/new offers is kept in the SessionRecord (modes, models,
// configOptions, the SDK's names); a change asked for through any node
// (PATCH) goes through the inbox to the owner, which sends session/set_mode,
// session/set_model or session/set_config_option (whichever the agent
// advertises), appends session.status mode_changed / model_changed /
// config_changed with who asked, and records it as wanted, so that it is
// applied again to the agent session made when the session is restored.

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"path"
	"slices"
	"time"

	"github.com/tandem-dev/tandem/acp"
	"github.com/tandem-dev/tandem/eventlog/model"
)

// ACP methods of session configuration.
const (
	MethodSetMode         = "session/set_mode"
	MethodSetModel        = "session/set_model" // unstable in ACP; Sandbox Agent passes it on
	MethodSetConfigOption = "session/set_config_option"
)

// Status values of session configuration.
const (
	StatusModeChanged   = "mode_changed"
	StatusModelChanged  = "model_changed"
	StatusConfigChanged = "config_changed"
	StatusConfigFailed  = "config_failed"
)

// cmdConfigure carries a configuration change to the owner.
const cmdConfigure = "configure"

// SessionUpdater updates a session record's configuration fields under
// the fence (eventlog.Store).
type SessionUpdater interface {
	UpdateSession(ctx context.Context, ws, sid string, epoch uint64, fields map[string]string) error
}

// SessionInit is what a session's agent sessions are made with
// (session/new's cwd and mcpServers), as the SDK's sessionInit.
type SessionInit struct {
	Cwd        string            `json:"cwd,omitempty"`
	MCPServers []json.RawMessage `json:"mcpServers,omitempty"`
}

// SessionChange is a change of a session's configuration; empty fields
// change nothing.
type SessionChange struct {
	Mode          string            `json:"mode,omitempty"`
	Model         string            `json:"model,omitempty"`
	ConfigOptions map[string]string `json:"configOptions,omitempty"`
}

func (c SessionChange) empty() bool {
	return c.Mode == "" && c.Model == "" && len(c.ConfigOptions) == 0
}

// SessionOptions are what POST /sessions may give besides id and agent.
type SessionOptions struct {
	Agent       string
	Mode, Model string
	SessionInit *SessionInit
}

// sessionWant is what people asked for, kept in the session record
// (field want) and applied to every new agent session of it.
type sessionWant struct {
	SessionChange
	SessionInit *SessionInit `json:"sessionInit,omitempty"`
	By          string       `json:"by,omitempty"`
}

func wantOf(rec SessionRecord) sessionWant {
	var w sessionWant
	_ = json.Unmarshal(rec.Want, &w)
	return w
}

// configureCmd is a cmdConfigure's text.
type configureCmd struct {
	SessionChange
	SessionInit *SessionInit `json:"sessionInit,omitempty"`
}

func validName(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] == 0x7f {
			return false
		}
	}
	return true
}

func (c SessionChange) check() error {
	if c.Mode != "" && !validName(c.Mode) {
		return invalid("mode must be 1-128 printable characters without spaces")
	}
	if c.Model != "" && !validName(c.Model) {
		return invalid("model must be 1-128 printable characters without spaces")
	}
	if len(c.ConfigOptions) > 32 {
		return invalid("at most 32 configOptions at once")
	}
	for k, v := range c.ConfigOptions {
		if !validName(k) || !validName(v) {
			return invalid("configOptions: ids and values must be 1-128 printable characters without spaces")
		}
	}
	return nil
}

func (si *SessionInit) check() error {
	if si == nil {
		return nil
	}
	if si.Cwd != "" && (!path.IsAbs(si.Cwd) || len(si.Cwd) > 4096) {
		return invalid("sessionInit.cwd must be an absolute path")
	}
	if len(si.MCPServers) > 64 {
		return invalid("sessionInit.mcpServers: at most 64")
	}
	for _, s := range si.MCPServers {
		var o map[string]json.RawMessage
		if json.Unmarshal(s, &o) != nil {
			return invalid("sessionInit.mcpServers: each must be an object")
		}
	}
	return nil
}

// offered checks a change against what the agent offers, when the record
// knows it.
func offered(rec SessionRecord, c SessionChange) error {
	if c.Mode != "" && len(rec.Modes) > 0 {
		var m struct {
			AvailableModes []struct {
				ID string `json:"id"`
			} `json:"availableModes"`
		}
		_ = json.Unmarshal(rec.Modes, &m)
		var ids []string
		for _, x := range m.AvailableModes {
			ids = append(ids, x.ID)
		}
		if !slices.Contains(ids, c.Mode) {
			return invalid("mode %q: the agent offers %q", c.Mode, ids)
		}
	}
	if c.Model != "" && len(rec.Models) > 0 {
		var m struct {
			AvailableModels []struct {
				ModelID string `json:"modelId"`
			} `json:"availableModels"`
		}
		_ = json.Unmarshal(rec.Models, &m)
		var ids []string
		for _, x := range m.AvailableModels {
			ids = append(ids, x.ModelID)
		}
		if !slices.Contains(ids, c.Model) {
			return invalid("model %q: the agent offers %q", c.Model, ids)
		}
	}
	if len(c.ConfigOptions) > 0 && len(rec.ConfigOptions) > 0 {
		var opts []struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(rec.ConfigOptions, &opts)
		var ids []string
		for _, o := range opts {
			ids = append(ids, o.ID)
		}
		for k := range c.ConfigOptions {
			if !slices.Contains(ids, k) {
				return invalid("config option %q: the agent offers %q", k, ids)
			}
		}
	}
	return nil
}

// ConfigureSession asks the owner to change a session's mode, model or
// config options for user; like a prompt, it is accepted into the inbox
// and carried out in order.
func (m *Manager) ConfigureSession(ctx context.Context, ws, sid, user string, c SessionChange) (Accepted, error) {
	if c.empty() {
		return Accepted{}, invalid("give mode, model or configOptions")
	}
	if err := c.check(); err != nil {
		return Accepted{}, err
	}
	rec, err := m.GetSession(ctx, ws, sid)
	if err != nil {
		return Accepted{}, err
	}
	if rec.DestroyedAt != nil {
		return Accepted{}, fmt.Errorf("%s/%s: %w", ws, sid, ErrSessionDestroyed)
	}
	if err := offered(rec, c); err != nil {
		return Accepted{}, err
	}
	b, _ := json.Marshal(configureCmd{SessionChange: c})
	r, err := m.enqueue(ctx, ws, enqueueReq{kind: cmdConfigure, sid: sid, user: user, text: string(b)})
	if err != nil {
		return Accepted{}, err
	}
	return Accepted{ID: r.id, SessionID: sid}, nil
}

// CreateSessionWith is CreateSession with a mode, model and sessionInit
// for a session it creates (a session resumed keeps its own).
func (m *Manager) CreateSessionWith(ctx context.Context, ws, id, user string, o SessionOptions) (SessionRecord, bool, error) {
	if o.Agent != "" && !validAgent(o.Agent) {
		return SessionRecord{}, false, invalid("agent %q: want 1-64 characters of [a-z0-9._-]", o.Agent)
	}
	c := SessionChange{Mode: o.Mode, Model: o.Model}
	if err := c.check(); err != nil {
		return SessionRecord{}, false, err
	}
	if err := o.SessionInit.check(); err != nil {
		return SessionRecord{}, false, err
	}
	if err := m.checkSessionAgent(ctx, ws, o.Agent); err != nil {
		return SessionRecord{}, false, err
	}
	text := ""
	if !c.empty() || o.SessionInit != nil {
		b, _ := json.Marshal(configureCmd{SessionChange: c, SessionInit: o.SessionInit})
		text = string(b)
	}
	r, err := m.enqueue(ctx, ws, enqueueReq{kind: cmdOpen, sid: id, agent: o.Agent, create: true, user: user, text: text})
	if err != nil {
		return SessionRecord{}, false, err
	}
	rec, err := m.GetSession(ctx, ws, id)
	return rec, r.created, err
}

func (o *owner) records() SessionUpdater { return o.m.store }

// openWith takes the configuration an open command carries: for a session
// that has no agent session yet, it becomes what is wanted.
func (o *owner) openWith(ctx context.Context, s *session, e inboxEntry) bool {
	if e.Text == "" || s.rec.AgentSessionID != "" || len(s.rec.Want) > 0 {
		return true
	}
	var c configureCmd
	if json.Unmarshal([]byte(e.Text), &c) != nil {
		return true
	}
	w := sessionWant{SessionChange: c.SessionChange, SessionInit: c.SessionInit, By: e.User}
	return o.saveWant(ctx, s, w)
}

// saveWant records what is wanted; false when Redis did not answer.
func (o *owner) saveWant(ctx context.Context, s *session, w sessionWant) bool {
	b, _ := json.Marshal(w)
	if err := o.records().UpdateSession(ctx, o.ws, s.id, o.epoch, map[string]string{model.SessionWant: string(b)}); err != nil {
		return o.stale(err)
	}
	s.rec.Want = b
	return true
}

// newSessionParams are the params of the session's next session/new.
func (o *owner) newSessionParams(s *session) acp.NewSessionParams {
	p := acp.NewSessionParams{Cwd: o.m.cfg.AgentCwd}
	if f := o.m.cfg.AgentCwdFor; f != nil {
		p.Cwd = cmp.Or(f(o.ws, o.meta.Sandbox), p.Cwd)
	}
	if si := wantOf(s.rec).SessionInit; si != nil {
		if si.Cwd != "" {
			p.Cwd = si.Cwd
		}
		p.MCPServers = si.MCPServers
	}
	return p
}

// configure carries out a cmdConfigure: it records the change as wanted
// and applies it to the agent session (when there is none yet, opening
// the session applies it).
func (o *owner) configure(ctx context.Context, s *session, e inboxEntry) bool {
	var c configureCmd
	if json.Unmarshal([]byte(e.Text), &c) != nil || c.empty() || s.rec.DestroyedAt != nil {
		o.ack(ctx, e.ID)
		return true
	}
	w := wantOf(s.rec)
	if c.Mode != "" {
		w.Mode = c.Mode
	}
	if c.Model != "" {
		w.Model = c.Model
	}
	if len(c.ConfigOptions) > 0 {
		if w.ConfigOptions == nil {
			w.ConfigOptions = map[string]string{}
		}
		maps.Copy(w.ConfigOptions, c.ConfigOptions)
	}
	w.By = e.User
	if !o.saveWant(ctx, s, w) {
		return false
	}
	if s.conn == nil || s.agentSID == "" {
		if !s.opening {
			o.open(ctx, s)
		}
		o.ack(ctx, e.ID) // applied when the session is opened
		return true
	}
	o.apply(ctx, s, c.SessionChange, e.User, "", e.ID)
	return true
}

// sessionOpened records what a new agent session offers and applies what
// is wanted to it.
func (o *owner) sessionOpened(ctx context.Context, s *session, result json.RawMessage, restored bool) {
	o.agentStarted(ctx, s)
	var nr struct {
		Modes         json.RawMessage `json:"modes"`
		Models        json.RawMessage `json:"models"`
		ConfigOptions json.RawMessage `json:"configOptions"`
	}
	_ = json.Unmarshal(result, &nr)
	f := map[string]string{}
	for k, v := range map[string]json.RawMessage{model.SessionModes: nr.Modes, model.SessionModels: nr.Models, model.SessionConfigOptions: nr.ConfigOptions} {
		if len(v) > 0 && string(v) != "null" {
			f[k] = string(v)
		}
	}
	if len(f) > 0 {
		if err := o.records().UpdateSession(ctx, o.ws, s.id, o.epoch, f); err != nil {
			if o.stale(err) {
				return
			}
			o.logger.Warn("recording the session's modes failed", slog.Any("err", err))
		}
		s.rec.Modes, s.rec.Models, s.rec.ConfigOptions = nr.Modes, nr.Models, nr.ConfigOptions
	}
	w := wantOf(s.rec)
	if w.empty() {
		return
	}
	c := w.SessionChange
	if c.Mode != "" && currentMode(s.rec.Modes) == c.Mode {
		c.Mode = ""
	}
	if c.Model != "" && currentModel(s.rec.Models) == c.Model {
		c.Model = ""
	}
	if c.empty() {
		return
	}
	reason := ""
	if restored {
		reason = "applied again to the restored session"
	}
	o.apply(ctx, s, c, w.By, reason, "")
}

func currentMode(modes json.RawMessage) string {
	var m struct {
		CurrentModeID string `json:"currentModeId"`
	}
	_ = json.Unmarshal(modes, &m)
	return m.CurrentModeID
}

func currentModel(models json.RawMessage) string {
	var m struct {
		CurrentModelID string `json:"currentModelId"`
	}
	_ = json.Unmarshal(models, &m)
	return m.CurrentModelID
}

// configOptionCategory returns the id of the config option of a category
// (mode, model), if the agent offers one.
func configOptionCategory(opts json.RawMessage, category string) string {
	var list []struct {
		ID       string `json:"id"`
		Category string `json:"category"`
	}
	_ = json.Unmarshal(opts, &list)
	for _, o := range list {
		if o.Category == category {
			return o.ID
		}
	}
	return ""
}

// configCall is one request of a change.
type configCall struct {
	status, what, value string // status to append, mode/model/config id, value
	method              string
	params              any
}

// calls turns a change into the requests the agent advertises.
func (o *owner) calls(s *session, c SessionChange) []configCall {
	var out []configCall
	byOption := func(status, what, category, value string) {
		if id := configOptionCategory(s.rec.ConfigOptions, category); id != "" && (category == "mode" && len(s.rec.Modes) == 0 || category == "model" && len(s.rec.Models) == 0) {
			out = append(out, configCall{status, what, value, MethodSetConfigOption, map[string]any{"sessionId": s.agentSID, "configId": id, "value": value}})
			return
		}
		m, key := MethodSetMode, "modeId"
		if category == "model" {
			m, key = MethodSetModel, "modelId"
		}
		out = append(out, configCall{status, what, value, m, map[string]any{"sessionId": s.agentSID, key: value}})
	}
	if c.Mode != "" {
		byOption(StatusModeChanged, "mode", "mode", c.Mode)
	}
	if c.Model != "" {
		byOption(StatusModelChanged, "model", "model", c.Model)
	}
	for _, k := range slices.Sorted(maps.Keys(c.ConfigOptions)) {
		out = append(out, configCall{StatusConfigChanged, k, c.ConfigOptions[k], MethodSetConfigOption, map[string]any{"sessionId": s.agentSID, "configId": k, "value": c.ConfigOptions[k]}})
	}
	return out
}

// apply sends a change to the agent on a helper goroutine; prompts wait
// until it is done. Each request's result is appended as a session.status
// with who asked; entry ("" for none) is acknowledged then.
func (o *owner) apply(ctx context.Context, s *session, c SessionChange, by, reason, entry string) {
	calls := o.calls(s, c)
	conn := s.conn
	s.configuring++
	o.spawn(func() {
		type outcome struct {
			call   configCall
			result json.RawMessage
			err    error
		}
		var outs []outcome
		for _, cl := range calls {
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			res, err := conn.Call(cctx, cl.method, cl.params)
			cancel()
			outs = append(outs, outcome{cl, res, err})
		}
		o.report(func(ctx context.Context) {
			s.configuring--
			for _, out := range outs {
				o.applied(ctx, s, out.call, out.result, out.err, by, reason)
			}
			if entry != "" {
				o.ack(ctx, entry)
			}
			o.dispatch(ctx, s)
		})
	})
}

// applied records the result of one configuration request.
func (o *owner) applied(ctx context.Context, s *session, cl configCall, result json.RawMessage, err error, by, reason string) {
	detail := map[string]any{cl.what: cl.value, "by": by}
	if cl.status == StatusConfigChanged {
		detail = map[string]any{"configId": cl.what, "value": cl.value, "by": by}
	}
	if reason != "" {
		detail["reason"] = reason
	}
	status := cl.status
	f := map[string]string{}
	if err != nil {
		status = StatusConfigFailed
		detail["method"] = cl.method
		var re *acp.RPCError
		if errors.As(err, &re) {
			detail["error"] = map[string]any{"code": re.Code, "message": re.Message}
		} else {
			detail["error"] = map[string]any{"message": "the agent did not answer"}
		}
	} else {
		switch {
		case cl.method == MethodSetMode:
			if b := withField(s.rec.Modes, "currentModeId", cl.value); b != nil {
				s.rec.Modes, f[model.SessionModes] = b, string(b)
			}
		case cl.method == MethodSetModel:
			if b := withField(s.rec.Models, "currentModelId", cl.value); b != nil {
				s.rec.Models, f[model.SessionModels] = b, string(b)
			}
		}
		var r struct {
			ConfigOptions json.RawMessage `json:"configOptions"`
		}
		if json.Unmarshal(result, &r) == nil && len(r.ConfigOptions) > 0 && string(r.ConfigOptions) != "null" {
			s.rec.ConfigOptions, f[model.SessionConfigOptions] = r.ConfigOptions, string(r.ConfigOptions)
		}
	}
	if len(f) > 0 {
		if err := o.records().UpdateSession(ctx, o.ws, s.id, o.epoch, f); err != nil && o.stale(err) {
			return
		}
	}
	if _, err := o.log().Append(ctx, o.ws, s.id, o.epoch, statusRecord(status, detail)); err != nil && !o.stale(err) {
		o.logger.Warn("recording a configuration change failed", slog.String("sid", s.id), slog.Any("err", err))
	}
}

// withField returns the JSON object obj with field set to v (nil when obj
// is not an object).
func withField(obj json.RawMessage, field, v string) json.RawMessage {
	var m map[string]any
	if len(obj) == 0 || json.Unmarshal(obj, &m) != nil || m == nil {
		return nil
	}
	m[field] = v
	b, _ := json.Marshal(m)
	return b
}
