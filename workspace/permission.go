package workspace

// Permission requests: the agent's session/request_permission becomes a
// room event that anyone allowed may answer, through any node.
//
// The owner records each request in the session's permissions hash under
// the fence, then appends, with the agent's envelope, permission.requested
// {requestId, toolCall, options, requestedAt, expiresAt}. requestId is
// Tandem's own, derived from the ACP connection and the JSON-RPC id, so it
// is the same for every owner. An answer (a person's, the workspace's
// policy, the timeout, or Tandem's own when the agent connection was lost
// or the turn cancelled) is claimed in Redis by one script, first answer
// wins, which puts it in the inbox; the owner carries it out in inbox
// order: it appends permission.resolved {requestId, optionId|outcome, by,
// at} together with its reply to the agent and the request's id in the
// stream state (perm_done: carried out, so a successor does not append it
// again), then posts the reply on the connection the request came on.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/tandem-dev/tandem/acp"
	"github.com/tandem-dev/tandem/eventlog/model"
)

// Event types of permission requests.
const (
	TypePermissionRequested = "permission.requested"
	TypePermissionResolved  = "permission.resolved"
)

// MethodRequestPermission is the agent's request for a permission.
const MethodRequestPermission = "session/request_permission"

// Permission policies of a workspace.
const (
	PolicyAsk    = "ask"    // people answer (the default)
	PolicyAllow  = "allow"  // Tandem answers allow_once, else allow_always
	PolicyReject = "reject" // Tandem answers reject_once, else reject_always
)

// Who answered, when no person did.
const (
	ByPolicy  = "policy"
	ByTimeout = "timeout"
	ByTandem  = "tandem" // the agent connection was lost
)

// Outcomes of a permission request (ACP's RequestPermissionOutcome).
const (
	OutcomeSelected  = "selected"
	OutcomeCancelled = "cancelled"
)

// cmdPermission is the inbox command that carries an answer to the owner.
const cmdPermission = "permission"

// statePermDone is the stream state field listing the requests whose
// answer was carried out lately (space-separated, the newest last).
const statePermDone = "perm_done"

const permDoneKeep = 32

// Errors of answering a permission request.
var (
	ErrPermissionNotFound = errors.New("permission request not found")
	ErrPermissionResolved = errors.New("permission request already resolved")
	ErrInvalidOption      = errors.New("option not offered")
)

// AlreadyResolvedError is the answer that came first.
type AlreadyResolvedError struct{ Resolution Resolution }

func (e *AlreadyResolvedError) Error() string {
	how := e.Resolution.Outcome
	if e.Resolution.OptionID != "" {
		how = e.Resolution.OptionID
	}
	return fmt.Sprintf("%v by %s (%s)", ErrPermissionResolved, e.Resolution.By, how)
}

func (e *AlreadyResolvedError) Unwrap() error { return ErrPermissionResolved }

// Permissions is the store of permission requests (eventlog.Store).
type Permissions interface {
	PutPermission(ctx context.Context, ws, sid string, epoch uint64, rid string, req []byte, ttl time.Duration) ([]byte, error)
	PermissionDone(ctx context.Context, ws, sid string, epoch uint64, rid string, ttl time.Duration) error
	ClaimPermission(ctx context.Context, ws string, c model.PermissionClaim) (model.PermissionClaimed, error)
	Permissions(ctx context.Context, ws, sid string) (model.PermissionSet, error)
}

// PermissionOption is an option the agent offers.
type PermissionOption struct {
	OptionID string `json:"optionId"`
	Name     string `json:"name"`
	Kind     string `json:"kind"` // allow_once, allow_always, reject_once, reject_always
}

// permRequest is a request as the permissions hash keeps it.
type permRequest struct {
	RequestID   string             `json:"requestId"`
	RPCID       json.RawMessage    `json:"rpcId"`
	Conn        string             `json:"connectionId"`
	ToolCall    json.RawMessage    `json:"toolCall"`
	Options     []PermissionOption `json:"options"`
	OptionIDs   []string           `json:"optionIds"`
	RequestedAt int64              `json:"requestedAt"`
	ExpiresAt   int64              `json:"expiresAt"`
}

// Resolution is how a permission request was answered.
type Resolution struct {
	RequestID string `json:"requestId"`
	OptionID  string `json:"optionId,omitempty"`
	Outcome   string `json:"outcome"` // selected, cancelled
	By        string `json:"by"`      // a user, policy, timeout or tandem
	At        int64  `json:"at"`      // ms
	Reason    string `json:"reason,omitempty"`
}

// pendingPerm is a request whose answer the owner has not carried out.
type pendingPerm struct {
	req permRequest
	// claimed: an answer is in the inbox (someone's, or one this owner
	// claimed), so the owner only waits for it.
	claimed bool
}

// permissionID is Tandem's id of a request: the same for every owner.
func permissionID(connID string, rpcID json.RawMessage) string {
	sum := sha256.Sum256([]byte(connID + "\x00" + strings.TrimSpace(string(rpcID))))
	return "perm-" + hex.EncodeToString(sum[:10])
}

// permTTL is how long a session's permissions hash is kept after its last
// write.
func (o *owner) permTTL() time.Duration { return max(24*time.Hour, 2*o.m.cfg.PermissionTimeout) }

func (o *owner) perms() Permissions { return o.m.store }

// parsePermissionRequest reads the agent's request into a permRequest.
func parsePermissionRequest(connID string, env acp.Envelope, now time.Time, timeout time.Duration) permRequest {
	var p struct {
		ToolCall json.RawMessage    `json:"toolCall"`
		Options  []PermissionOption `json:"options"`
	}
	_ = json.Unmarshal(env.Params, &p)
	r := permRequest{
		RequestID: permissionID(connID, env.ID), RPCID: env.ID, Conn: connID, ToolCall: p.ToolCall, Options: p.Options,
		RequestedAt: now.UnixMilli(), ExpiresAt: now.Add(timeout).UnixMilli(), OptionIDs: []string{},
	}
	if len(r.ToolCall) == 0 {
		r.ToolCall = json.RawMessage("{}")
	}
	if r.Options == nil {
		r.Options = []PermissionOption{}
	}
	for _, o := range r.Options {
		r.OptionIDs = append(r.OptionIDs, o.OptionID)
	}
	return r
}

func requestedRecord(r permRequest) model.Record {
	b, _ := json.Marshal(map[string]any{
		"requestId": r.RequestID, "connectionId": r.Conn, "toolCall": r.ToolCall, "options": r.Options,
		"requestedAt": r.RequestedAt, "expiresAt": r.ExpiresAt,
	})
	return model.Record{Type: TypePermissionRequested, Body: b}
}

// permAsked is a permission request in an ingest batch: the index of its
// permission.requested record.
type permAsked struct {
	idx int
	req permRequest
}

// recordPermissions records the batch's permission requests under the
// fence before their events are appended, and puts the stored request
// (the first one recorded, when a request is read again) in its event.
// It reports whether all were recorded.
func (o *owner) recordPermissions(ctx context.Context, work []*ingested) bool {
	for _, w := range work {
		for i := range w.perms {
			pa := &w.perms[i]
			js, _ := json.Marshal(pa.req)
			stored, err := o.perms().PutPermission(ctx, o.ws, w.s.id, o.epoch, pa.req.RequestID, js, o.permTTL())
			if err != nil {
				if !o.stale(err) {
					o.logger.Warn("recording a permission request failed; re-attaching", slog.Any("err", err))
				}
				return false
			}
			_ = json.Unmarshal(stored, &pa.req)
			w.recs[pa.idx] = requestedRecord(pa.req)
		}
	}
	return true
}

// permissionsAsked takes the batch's requests, once their events landed,
// as open, and answers those the policy answers.
func (o *owner) permissionsAsked(ctx context.Context, w *ingested) {
	if len(w.perms) == 0 {
		return
	}
	s := w.s
	if s.perms == nil {
		s.perms = map[string]*pendingPerm{}
	}
	for _, pa := range w.perms {
		if s.perms[pa.req.RequestID] == nil {
			s.perms[pa.req.RequestID] = &pendingPerm{req: pa.req}
		}
	}
	o.permissionTick(ctx, s)
}

// loadPermissions loads a session's requests not carried out yet.
func (o *owner) loadPermissions(ctx context.Context, s *session) error {
	ps, err := o.perms().Permissions(ctx, o.ws, s.id)
	if err != nil {
		return err
	}
	st, err := o.log().State(ctx, o.ws, s.id)
	if err != nil {
		return err
	}
	done := strings.Fields(st[statePermDone])
	s.perms = map[string]*pendingPerm{}
	for id, js := range ps.Requests {
		if ps.Done[id] || slices.Contains(done, id) {
			continue
		}
		var r permRequest
		if json.Unmarshal([]byte(js), &r) != nil {
			continue
		}
		_, answered := ps.Answers[id]
		s.perms[id] = &pendingPerm{req: r, claimed: answered}
	}
	if len(s.perms) > 0 && s.turn != nil {
		s.turn.delivery = deliveryWritten // the agent asks: it has the prompt
	}
	return nil
}

// permissionTick answers what the owner answers itself: by the policy,
// by the timeout, and requests of a connection that is gone.
func (o *owner) permissionTick(ctx context.Context, s *session) {
	now := time.Now()
	for _, p := range s.perms {
		if p.claimed {
			continue
		}
		res := Resolution{RequestID: p.req.RequestID, Outcome: OutcomeCancelled, At: now.UnixMilli()}
		switch {
		case p.req.Conn != s.connID && !s.opening:
			res.By, res.Reason = ByTandem, "the agent connection was lost"
		case o.meta.PermissionPolicy == PolicyAllow || o.meta.PermissionPolicy == PolicyReject:
			res.By = ByPolicy
			kinds := []string{"allow_once", "allow_always"}
			if o.meta.PermissionPolicy == PolicyReject {
				kinds = []string{"reject_once", "reject_always"}
			}
			if id := pickOption(p.req.Options, kinds); id != "" {
				res.Outcome, res.OptionID = OutcomeSelected, id
			} else {
				res.Reason = "no option of the kind the policy " + o.meta.PermissionPolicy + " answers"
			}
		case now.UnixMilli() >= p.req.ExpiresAt:
			res.By, res.Reason = ByTimeout, "nobody answered in time"
		default:
			continue
		}
		o.claimPermission(ctx, s, p, res)
	}
}

// cancelPermissions answers the session's open requests cancelled, as ACP
// wants when the turn is cancelled.
func (o *owner) cancelPermissions(ctx context.Context, s *session, user string) {
	for _, p := range s.perms {
		if !p.claimed {
			o.claimPermission(ctx, s, p, Resolution{RequestID: p.req.RequestID, Outcome: OutcomeCancelled, By: user, At: time.Now().UnixMilli(), Reason: "the turn was cancelled"})
		}
	}
}

func pickOption(opts []PermissionOption, kinds []string) string {
	for _, k := range kinds {
		for _, o := range opts {
			if o.Kind == k {
				return o.OptionID
			}
		}
	}
	return ""
}

// claimPermission claims the owner's own answer; a failure is tried again
// by the next tick.
func (o *owner) claimPermission(ctx context.Context, s *session, p *pendingPerm, res Resolution) {
	_, err := o.m.claim(ctx, o.ws, s.id, res)
	switch {
	case err == nil || errors.Is(err, ErrPermissionResolved):
		p.claimed = true // its answer is in the inbox
	case errors.Is(err, ErrPermissionNotFound) || errors.Is(err, ErrSessionNotFound) || errors.Is(err, ErrWorkspaceNotFound) || errors.Is(err, ErrSessionDestroyed):
		delete(s.perms, p.req.RequestID)
	default:
		o.logger.Warn("answering a permission request failed; will retry", slog.String("sid", s.id), slog.Any("err", err))
	}
}

// permissionAnswered carries out an answer from the inbox; false means it
// cannot be decided now (Redis did not answer, or the connection the
// request came on is being re-attached) and is tried again.
func (o *owner) permissionAnswered(ctx context.Context, s *session, e inboxEntry) bool {
	var res Resolution
	if json.Unmarshal([]byte(e.Text), &res) != nil || res.RequestID == "" {
		o.ack(ctx, e.ID)
		return true
	}
	p := s.perms[res.RequestID]
	if p == nil {
		o.ack(ctx, e.ID) // carried out before
		return true
	}
	live := s.conn != nil && s.connID == p.req.Conn
	if !live && s.connID == p.req.Conn {
		return false // the connection may come back: wait for it
	}
	st, err := o.log().State(ctx, o.ws, s.id)
	if err != nil {
		return o.stale(err)
	}
	done := strings.Fields(st[statePermDone])
	result := map[string]any{"outcome": map[string]any{"outcome": OutcomeCancelled}}
	if res.Outcome == OutcomeSelected {
		result = map[string]any{"outcome": map[string]any{"outcome": OutcomeSelected, "optionId": res.OptionID}}
	}
	reply, _ := acp.NewResponse(p.req.RPCID, result, nil)
	if !slices.Contains(done, res.RequestID) {
		body := map[string]any{"requestId": res.RequestID, "outcome": res.Outcome, "by": res.By, "at": res.At}
		if res.OptionID != "" {
			body["optionId"] = res.OptionID
		}
		if res.Reason != "" {
			body["reason"] = res.Reason
		}
		if !live {
			body["delivered"] = false
			if res.Reason == "" {
				body["reason"] = "the agent connection was lost"
			}
		}
		b, _ := json.Marshal(body)
		recs := []model.Record{{Type: TypePermissionResolved, Body: b}}
		if live {
			recs = append(recs, envelopeRecord(s.connID, "client", reply, ""))
		}
		done = append(done, res.RequestID)
		if len(done) > permDoneKeep {
			done = done[len(done)-permDoneKeep:]
		}
		if _, err := o.log().AppendState(ctx, o.ws, s.id, o.epoch, map[string]string{statePermDone: strings.Join(done, " ")}, recs...); err != nil {
			if o.stale(err) {
				return true
			}
			o.logger.Warn("recording a permission answer failed; will retry", slog.String("sid", s.id), slog.Any("err", err))
			return false
		}
	}
	delete(s.perms, res.RequestID)
	o.lastBusy = time.Now()
	if !live {
		o.permissionDone(ctx, s, res.RequestID, e.ID)
		return true
	}
	client, connID, rid, id := o.sandbox(), s.connID, res.RequestID, e.ID
	o.spawn(func() {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		for attempt := 0; ; attempt++ {
			_, _, err := client.Post(ctx, connID, "", reply)
			if err == nil || errors.Is(err, acp.ErrUnknownConnection) || ctx.Err() != nil || attempt == 3 {
				if err != nil {
					o.logger.Warn("the answer to a permission request could not be sent", slog.String("sid", s.id), slog.Any("err", err))
				}
				break
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Duration(attempt+1) * 200 * time.Millisecond):
			}
		}
		o.report(func(ctx context.Context) { o.permissionDone(ctx, s, rid, id) })
	})
	return true
}

// permissionDone records that request rid was carried out and
// acknowledges its inbox entry.
func (o *owner) permissionDone(ctx context.Context, s *session, rid, entry string) {
	if err := o.perms().PermissionDone(ctx, o.ws, s.id, o.epoch, rid, o.permTTL()); err != nil && !o.stale(err) {
		o.logger.Warn("recording a permission request done failed", slog.Any("err", err))
	}
	o.ack(ctx, entry)
}

// claim puts an answer to a permission request in the inbox, unless one
// came first.
func (m *Manager) claim(ctx context.Context, ws, sid string, res Resolution) (Resolution, error) {
	b, _ := json.Marshal(res)
	c, err := m.store.ClaimPermission(ctx, ws, model.PermissionClaim{Session: sid, RequestID: res.RequestID, OptionID: res.OptionID, User: res.By, Resolution: b})
	if err != nil {
		return Resolution{}, err
	}
	switch c.Status {
	case model.PermissionOK:
	case model.PermissionResolved:
		var prev Resolution
		_ = json.Unmarshal(c.Body, &prev)
		return Resolution{}, &AlreadyResolvedError{Resolution: prev}
	case model.PermissionNotFound:
		return Resolution{}, fmt.Errorf("%s/%s/%s: %w", ws, sid, res.RequestID, ErrPermissionNotFound)
	case model.PermissionInvalidOption:
		var r permRequest
		_ = json.Unmarshal(c.Body, &r)
		return Resolution{}, &InvalidOptionError{OptionID: res.OptionID, Offered: r.OptionIDs}
	case model.PermissionNoWorkspace:
		return Resolution{}, fmt.Errorf("%s: %w", ws, ErrWorkspaceNotFound)
	case model.PermissionNoSession:
		return Resolution{}, fmt.Errorf("%s/%s: %w", ws, sid, ErrSessionNotFound)
	case model.PermissionDestroyed:
		return Resolution{}, fmt.Errorf("%s/%s: %w", ws, sid, ErrSessionDestroyed)
	default:
		return Resolution{}, fmt.Errorf("answer permission: unexpected status %q", c.Status)
	}
	m.markActive(ctx, ws)
	m.Demand(ws)
	return res, nil
}

// InvalidOptionError names the option refused and those offered.
type InvalidOptionError struct {
	OptionID string
	Offered  []string
}

func (e *InvalidOptionError) Error() string {
	return fmt.Sprintf("%v: %q is not one of %q", ErrInvalidOption, e.OptionID, e.Offered)
}

func (e *InvalidOptionError) Unwrap() error { return ErrInvalidOption }

// Answer is a person's answer to a permission request: an option offered,
// or Cancelled.
type Answer struct {
	OptionID  string
	Cancelled bool
}

// AnswerPermission answers a session's permission request for user: the
// first answer wins and reaches the agent through the owner; a later one
// fails with an *AlreadyResolvedError.
func (m *Manager) AnswerPermission(ctx context.Context, ws, sid, rid, user string, a Answer) (Resolution, error) {
	if (a.OptionID == "") == !a.Cancelled {
		return Resolution{}, invalid("give either optionId or outcome \"cancelled\"")
	}
	if len(a.OptionID) > 256 {
		return Resolution{}, &InvalidOptionError{OptionID: a.OptionID[:256]}
	}
	if !model.ValidID(rid) {
		return Resolution{}, fmt.Errorf("%s/%s/%s: %w", ws, sid, rid, ErrPermissionNotFound)
	}
	res := Resolution{RequestID: rid, Outcome: OutcomeCancelled, By: user, At: time.Now().UnixMilli()}
	if a.OptionID != "" {
		res.Outcome, res.OptionID = OutcomeSelected, a.OptionID
	}
	return m.claim(ctx, ws, sid, res)
}
