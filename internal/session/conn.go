package session

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/heraldhq/herald/internal/admission"
	"github.com/heraldhq/herald/internal/audit"
	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/hub"
	"github.com/heraldhq/herald/internal/limit"
	"github.com/heraldhq/herald/internal/notification"
	"github.com/heraldhq/herald/internal/store"
)

// Session is one connection's protocol state (one Socket.IO namespace
// socket, one WebSocket, one event stream).
type Session struct {
	core *Core           // static
	t    Transport       // static
	slot *admission.Slot // static; released by End
	id   uint64          // static: the hub's connection id

	// tenant and user are written by Reserve before it sets stHeld, and
	// never change after: read them once stHeld or stAttached is seen.
	tenant, user string
	client       *hub.Client   // set by Attach before it sets stAttached, then read-only
	state        atomic.Uint32 // stHeld | stAttached | stEnded
	invalid      atomic.Int32  // invalid messages so far
	inflight     atomic.Int32  // inbox requests running
	// topicPats are the topic patterns of the current token (Attach,
	// refresh); subLimit is the subscribe rate (topics.go).
	topicPats atomic.Pointer[[]string]
	subLimit  limit.Bucket
}

// Session state bits. A session is one connection's: its flow is Reserve,
// Attach, End, but End may race the other two (the client leaves while the
// token is checked), so each transition is a compare-and-swap that sees
// stEnded.
const (
	stHeld     uint32 = 1 << iota // the per-user slot of tenant/user is held
	stAttached                    // client is set
	stEnded                       // End ran
)

// set sets bit unless stEnded is set; it reports whether it did.
func (s *Session) set(bit uint32) bool {
	for {
		old := s.state.Load()
		if old&stEnded != 0 {
			return false
		}
		if s.state.CompareAndSwap(old, old|bit) {
			return true
		}
	}
}

// clear clears bit and reports whether it was set.
func (s *Session) clear(bit uint32) bool {
	for {
		old := s.state.Load()
		if old&bit == 0 {
			return false
		}
		if s.state.CompareAndSwap(old, old&^bit) {
			return true
		}
	}
}

// NewSession starts the protocol for a connection admitted with slot.
func (c *Core) NewSession(t Transport, slot *admission.Slot) *Session {
	s := new(Session)
	c.InitSession(s, t, slot)
	return s
}

// InitSession is NewSession for a Session the transport embeds in its own
// connection value (one allocation per connection instead of two). s must
// be zero and must not be copied after.
func (c *Core) InitSession(s *Session, t Transport, slot *admission.Slot) {
	s.core, s.t, s.slot, s.id = c, t, slot, c.hub.NextConnID()
}

// ID is the connection id (logs, the hub).
func (s *Session) ID() uint64 { return s.id }

// IP is the client address.
func (s *Session) IP() string { return s.slot.IP() }

// Slot is the connection's admission slot.
func (s *Session) Slot() *admission.Slot { return s.slot }

// Authenticated reports whether the session is attached to the hub.
func (s *Session) Authenticated() bool { return s.state.Load()&stAttached != 0 }

// Principal is the authenticated identity (zero before Attach): tenant,
// user and the current role (a refresh may change it).
func (s *Session) Principal() auth.Principal {
	if !s.Authenticated() {
		return auth.Principal{}
	}
	p := auth.Principal{Tenant: s.tenant, User: s.user, Role: s.client.Recipient().Role}
	if pats := s.topicPats.Load(); pats != nil {
		p.Topics = *pats
	}
	return p
}

func (s *Session) transport() admission.Transport { return s.slot.Transport() }

// setTopicPatterns keeps the topics claim of the current token. Only a
// token with one allocates: storing &p.Topics kept the whole Principal on
// the heap for every connection (84 bytes each, idle).
func (s *Session) setTopicPatterns(pats []string) {
	if len(pats) == 0 {
		s.topicPats.Store(nil)
		return
	}
	s.topicPats.Store(&pats)
}

// Errors of Attach and Authenticate.
var (
	ErrUnauthorized = errors.New("session: unauthorized")
	ErrUserLimit    = errors.New("session: too many connections for this user")
	ErrAttached     = errors.New("session: already authenticated")
	ErrGone         = errors.New("session: connection closed")
)

// Authenticate verifies token and attaches the session (Attach). A refused
// token is recorded (token_invalid) and returned as ErrUnauthorized.
func (s *Session) Authenticate(token string, since *notification.Position) error {
	p, err := s.core.Verify(token, s.transport(), s.IP())
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnauthorized, err)
	}
	return s.Attach(p, since)
}

// Reserve takes the per-user connection slot for p ahead of Attach (so
// that a handshake with a header token can be refused before its upgrade).
// It may wait on Redis.
func (s *Session) Reserve(p auth.Principal) error {
	st := s.state.Load()
	switch {
	case st&stHeld != 0 && s.tenant == p.Tenant && s.user == p.User:
		return nil
	case st&stHeld != 0:
		return ErrAttached
	case st&stEnded != 0:
		return ErrGone
	}
	if !s.slot.AcquireUser(p.Tenant, p.User) {
		if s.state.Load()&stEnded != 0 {
			return ErrGone
		}
		return ErrUserLimit
	}
	s.tenant, s.user = p.Tenant, p.User
	if !s.set(stHeld) { // End ran meanwhile, and found nothing to give back
		s.slot.ReleaseUser(p.Tenant, p.User)
		return ErrGone
	}
	return nil
}

// releaseHeld gives back the per-user slot, once.
func (s *Session) releaseHeld() {
	if s.clear(stHeld) {
		s.slot.ReleaseUser(s.tenant, s.user)
	}
}

// Attach registers the authenticated connection with the hub, which then
// sends the ready frame and replays after since. It first takes the
// per-user connection slot (Reserve), which may wait on Redis. On
// ErrUserLimit the caller refuses or closes the connection (limit_exceeded).
func (s *Session) Attach(p auth.Principal, since *notification.Position) error {
	if s.Authenticated() {
		return ErrAttached
	}
	s.slot.Verified()
	s.setTopicPatterns(p.Topics)
	if err := s.Reserve(p); err != nil {
		return err
	}
	cl, err := s.core.hub.Attach(s.t, hub.AttachOptions{
		ConnID:    s.id,
		Transport: s.transport().String(),
		Recipient: Recipient(p),
		Since:     since,
		Expires:   p.Expires.Add(s.core.verifier.Leeway()),
		TokenID:   p.TokenID,
	})
	if err != nil {
		s.releaseHeld()
		return fmt.Errorf("session: attach: %w", err)
	}
	s.client = cl
	// Counted before stAttached is set, so that End, which uncounts only
	// attached sessions, never runs before it.
	s.core.connected(s.tenant, s.user, s.transport())
	if !s.set(stAttached) { // the connection went away while the token was checked
		s.core.disconnected(s.tenant, s.user, s.transport())
		cl.Close(hub.ReasonClientClosed)
		s.releaseHeld()
		return ErrGone
	}
	s.slot.Opened()
	s.core.audit.Info(audit.TokenValidated, "authenticated", "conn", s.id, "tenant", p.Tenant, "user", p.User,
		"transport", s.transport().String())
	return nil
}

// AuthTimedOut closes a connection that did not authenticate in time.
func (s *Session) AuthTimedOut() {
	if s.Authenticated() {
		return
	}
	s.core.audit.Warn(audit.AuthTimeout, "auth timeout", "conn", s.id, "ip", s.IP(), "transport", s.transport().String())
	s.t.Close(hub.ReasonAuthTimeout)
}

// Close closes the connection with reason: through the hub once attached
// (exactly one disconnect), else the transport directly.
func (s *Session) Close(reason hub.CloseReason) {
	if s.Authenticated() {
		s.client.Close(reason)
		return
	}
	s.t.Close(reason)
}

// End is the transport's notice that the connection (or, for Socket.IO,
// the namespace socket) is gone: the hub client is closed with reason if it
// still was open, and the per-user slot given back. The transport releases
// its admission slot itself when the whole connection ends. End may wait on
// Redis: never call it in a poller callback. Calls after the first only
// repeat the close, which the hub ignores.
func (s *Session) End(reason hub.CloseReason) {
	if old := s.state.Or(stEnded); old&stAttached != 0 {
		s.client.Close(reason)
		if old&stEnded == 0 {
			s.core.disconnected(s.tenant, s.user, s.transport())
		}
	}
	s.releaseHeld()
}

// Invalid answers a message that did not decode or validate (err wraps the
// detail, which is logged only) with invalid_message; after MaxInvalid of
// them the connection is closed (policy_violation).
func (s *Session) Invalid(ref Ref, err error) {
	e := NewError(CodeInvalidMessage, "")
	// Recorded before the reply, so a client that has the error can rely
	// on the audit line being there (TestSecretsNeverLogged).
	s.core.audit.Info(audit.InvalidMessage, "invalid message", "conn", s.id, "correlation_id", e.CorrelationID,
		"transport", s.transport().String(), "err", err)
	s.reply(&Reply{Ref: ref, Err: e})
	if int(s.invalid.Add(1)) > s.core.cfg.MaxInvalid {
		s.Close(hub.ReasonPolicyViolation)
	}
}

// Handle runs one request of an authenticated session. Refresh and ping are
// answered inline; inbox requests run on a goroutine of their own (at most
// MaxInflight at once), so that a slow store does not hold up the messages
// behind them. It may block on the verifier and the rate limiter.
func (s *Session) Handle(req Request) {
	if !s.Authenticated() {
		s.core.audit.Warn(audit.UnauthenticatedMessage, "request before auth", "conn", s.id, "ip", s.IP(),
			"transport", s.transport().String())
		s.Close(hub.ReasonUnauthorized)
		return
	}
	if closed, _ := s.client.Closed(); closed {
		return
	}
	if f := s.core.cfg.OnRequest; f != nil {
		f(s.transport(), req.Name)
	}
	if ok, abusive := s.core.adm.AllowRequest(s.transport(), s.tenant, s.user); !ok {
		s.reply(&Reply{Name: req.Name, Ref: req.Ref, Err: NewError(CodeRateLimited, "")})
		if abusive {
			s.Close(hub.ReasonRateLimited)
		}
		return
	}
	switch req.Name {
	case NameAuth:
		s.refresh(req)
		return
	case NamePing:
		s.reply(&Reply{Name: req.Name, Ref: req.Ref})
		return
	case NameSubscribe, NameUnsubscribe:
		s.topics(req)
		return
	}
	if int(s.inflight.Add(1)) > s.core.cfg.MaxInflight {
		s.inflight.Add(-1)
		s.core.audit.Warn(audit.RateLimited, "too many requests in flight", "scope", "inflight", "conn", s.id,
			"transport", s.transport().String())
		s.reply(&Reply{Name: req.Name, Ref: req.Ref, Err: NewError(CodeRateLimited, "too many requests")})
		return
	}
	go func() {
		defer s.inflight.Add(-1)
		ctx, cancel := context.WithTimeout(context.Background(), s.core.cfg.RequestTimeout)
		defer cancel()
		rep := s.core.Do(ctx, s.client.Recipient(), req, "conn", s.id, "transport", s.transport().String())
		s.reply(&rep)
	}()
}

// refresh replaces the token in band: same tenant and user only.
func (s *Session) refresh(req Request) {
	p, err := s.core.Verify(req.Token, s.transport(), s.IP())
	if err != nil {
		s.client.Close(hub.ReasonUnauthorized)
		return
	}
	if p.Tenant != s.tenant || p.User != s.user {
		s.core.audit.Warn(audit.Forbidden, "refresh with another identity", "conn", s.id, "tenant", s.tenant,
			"user", s.user, "transport", s.transport().String())
		s.client.Close(hub.ReasonUnauthorized)
		return
	}
	// The new token's topics claim applies to later subscribes; topics
	// already joined stay.
	s.setTopicPatterns(p.Topics)
	s.client.Refresh(p.Role, p.TokenID, p.Expires.Add(s.core.verifier.Leeway()))
	s.reply(&Reply{Name: NameAuth, Ref: req.Ref})
}

// reply writes r; a full buffer closes the connection as a slow consumer.
func (s *Session) reply(r *Reply) {
	if err := s.t.Reply(r); errors.Is(err, ErrBufferFull) {
		s.Close(hub.ReasonSlowConsumer)
	}
}

// Do runs one inbox request for r and returns its reply. Failures are
// logged under the reply's correlation id with attrs. The REST user API
// calls it directly.
func (c *Core) Do(ctx context.Context, r notification.Recipient, req Request, attrs ...any) Reply {
	rep := Reply{Name: req.Name, Ref: req.Ref}
	var err error
	switch req.Name {
	case NameMarkRead:
		rep.Change, err = c.inbox.MarkRead(ctx, r, req.IDs)
	case NameMarkAllRead:
		rep.Change, err = c.inbox.MarkAllRead(ctx, r)
	case NameDelete:
		rep.Change, err = c.inbox.Delete(ctx, r, req.ID)
	case NameList:
		var page store.Page
		page, err = c.inbox.List(ctx, r, req.Query)
		rep.Page = &page
	case NameUnreadCount:
		rep.Counts, err = c.inbox.Counts(ctx, r)
	case NameSeen:
		rep.Change, err = c.inbox.MarkSeen(ctx, r, req.Position)
	case NameArchive:
		rep.Change, err = c.inbox.Archive(ctx, r, req.IDs, req.All)
	case NameUnarchive:
		rep.Change, err = c.inbox.Unarchive(ctx, r, req.IDs, req.All)
	case NamePreferences:
		var p notification.Preferences
		p, err = c.inbox.Preferences(ctx, r)
		rep.Prefs = &p
	case NameSetPreferences:
		rep.Change, err = c.inbox.SetPreferences(ctx, r, req.Prefs)
		rep.Prefs = &req.Prefs
	default:
		err = fmt.Errorf("session: %s is not an inbox request", req.Name)
	}
	if err != nil {
		rep.Err = c.storeError(err, req, r, attrs)
	}
	return rep
}

// storeError maps an inbox failure onto the error catalogue and logs it.
func (c *Core) storeError(err error, req Request, r notification.Recipient, attrs []any) *Error {
	code := CodeInternal
	switch {
	case errors.Is(err, store.ErrNotFound):
		return NewError(CodeNotFound, "")
	case errors.Is(err, store.ErrInvalid):
		return NewError(CodeInvalidRequest, "")
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		code = CodeUnavailable
	}
	e := NewError(code, "")
	args := append([]any{"correlation_id", e.CorrelationID, "request", req.Name.String(), "tenant", r.Tenant,
		"user", r.User, "err", err}, attrs...)
	c.log.Error("request failed", args...)
	return e
}
