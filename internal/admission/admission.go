package admission

import (
	"net/http"
	"sync/atomic"

	"github.com/heraldhq/herald/internal/audit"
)

// Transport names a connection endpoint. They are metric labels and stats
// keys.
type Transport uint8

// Transports. REST and Publish are request/response APIs: they take rate
// limits only, never connection slots.
const (
	WebSocket Transport = iota
	SSE
	SocketIO
	REST
	Publish
	transportCount
)

var transportNames = [transportCount]string{"ws", "sse", "socketio", "rest", "publish"}

// String is the transport's label ("ws", "sse", "socketio", "rest", "publish").
func (t Transport) String() string {
	if t >= transportCount {
		return "unknown"
	}
	return transportNames[t]
}

// ConnTransports are the transports that hold connections.
var ConnTransports = []Transport{WebSocket, SSE, SocketIO}

// RateLimiter is a keyed token bucket (limit.Keyed, limit.RedisKeyed).
// Allow returns the consecutive refusals for the key.
type RateLimiter interface {
	Allow(key string) (ok bool, strikes int)
}

// DeferredRateLimiter is a RateLimiter that can also be consulted without
// taking a token, and charged later (limit.Keyed, limit.RedisKeyed). When
// Config.Handshakes is one, a handshake costs a token only if it never
// authenticates (see Config.Handshakes).
type DeferredRateLimiter interface {
	RateLimiter
	// Check reports whether key has a token, without taking it; a refusal
	// counts as Allow's does.
	Check(key string) (ok bool, strikes int)
	// Charge takes one token for key, into debt when none is left.
	Charge(key string)
}

// ConnLimiter caps concurrent uses per key (limit.Counter, limit.RedisCounter).
// Acquire and Release may wait on Redis.
type ConnLimiter interface {
	Acquire(key string) bool
	Release(key string)
}

// Observer is told about admission decisions (metrics). Every field may be nil.
type Observer struct {
	Attempt func(t Transport)
	Refused func(t Transport, r Refusal)
	// Failed: an admitted connection ended before it authenticated.
	Failed func(t Transport)
}

// Config is the node's admission policy. Nil limiters and zero caps mean no
// limit (leave limiters nil rather than holding a typed nil).
type Config struct {
	// MaxConnections caps open connections on this node, all transports
	// together. 0: no cap.
	MaxConnections int64
	// MaxUnauthenticated caps connections that have not authenticated yet,
	// so idle handshakes cannot exhaust the node. 0: no cap.
	MaxUnauthenticated int64
	// ConnsPerIP and ConnsPerUser cap concurrent connections per client
	// address and per user, across transports.
	ConnsPerIP   ConnLimiter
	ConnsPerUser ConnLimiter
	// Handshakes limits unauthenticated handshakes per client address. A
	// DeferredRateLimiter is charged only for handshakes that end without
	// authenticating: the many honest users behind one NAT or proxy, whose
	// token comes after the handshake (WebSocket auth frame, Socket.IO
	// CONNECT), then cost nothing, while failed ones still use up the
	// address's budget. A plain RateLimiter is charged at the handshake.
	Handshakes RateLimiter
	// Requests limits client requests per user: live-transport requests
	// and user API calls together.
	Requests RateLimiter
	// Publishes limits publish calls per API key.
	Publishes RateLimiter
	// AbuseStrikes: consecutive refused requests after which a live
	// connection is closed (rate_limited). Default DefaultAbuseStrikes.
	AbuseStrikes int
	// TrustedProxies: peers whose X-Forwarded-For / X-Real-IP are believed.
	TrustedProxies IPRule
	// Draining, when set and true, refuses every new connection.
	Draining func() bool
	Observer Observer
	Audit    *audit.Recorder
}

// DefaultAbuseStrikes is Config.AbuseStrikes's default.
const DefaultAbuseStrikes = 20

// Controller applies a Config.
type Controller struct {
	cfg    Config // static after New
	active atomic.Int64
	unauth atomic.Int64
	stats  [transportCount]counters
}

type counters struct {
	attempts, refused, admitted, opened, failed, active atomic.Int64
}

// New returns a Controller.
func New(cfg Config) *Controller {
	if cfg.AbuseStrikes <= 0 {
		cfg.AbuseStrikes = DefaultAbuseStrikes
	}
	if cfg.Audit == nil {
		cfg.Audit = audit.New(nil, nil)
	}
	return &Controller{cfg: cfg}
}

// ClientIP is the request's client address under the node's proxy rule.
func (c *Controller) ClientIP(r *http.Request) string { return c.cfg.TrustedProxies.ClientIP(r) }

// AbuseStrikes is the configured abuse threshold.
func (c *Controller) AbuseStrikes() int { return c.cfg.AbuseStrikes }

// Active is the number of admitted connections not yet released.
func (c *Controller) Active() int64 { return c.active.Load() }

// Pending is the number of admitted connections not yet authenticated.
func (c *Controller) Pending() int64 { return c.unauth.Load() }

// Draining reports whether the node refuses new connections.
func (c *Controller) Draining() bool { return c.cfg.Draining != nil && c.cfg.Draining() }

// UserKey is the limiter key of a user (per-user caps and rates).
func UserKey(tenant, user string) string { return tenant + "\x00" + user }

// Request describes a connection asking to be admitted.
type Request struct {
	Transport Transport
	IP        string
	// Authenticated: the request carries a verified credential, so the
	// handshake rate and the unauthenticated cap do not apply.
	Authenticated bool
}

// Attempt counts a new connection request of transport t. Transports call
// it first, before any check, then either Admit or, for a request refused
// before admission (origin, credentials, a malformed request), Rejected: so
// attempts = refused + admitted, per transport.
func (c *Controller) Attempt(t Transport) {
	c.stats[t].attempts.Add(1)
	if f := c.cfg.Observer.Attempt; f != nil {
		f(t)
	}
}

// Rejected counts a connection request the transport refused before
// admission (the transport records why).
func (c *Controller) Rejected(t Transport) { c.stats[t].refused.Add(1) }

// Admit applies the node-wide cap, the handshake rate, the unauthenticated
// cap and the per-IP cap, in that order, to a request counted by Attempt.
// On success the caller owns the Slot and must Release it when the
// connection ends.
func (c *Controller) Admit(req Request) (*Slot, Refusal) {
	if r := c.reserve(req); r != RefusedNone {
		c.refuse(req, r, "", "")
		return nil, r
	}
	s := &Slot{c: c, transport: req.Transport, ip: req.IP}
	if !req.Authenticated {
		s.state.Store(slotUnauth)
		if _, deferred := c.cfg.Handshakes.(DeferredRateLimiter); deferred {
			s.state.Or(slotOwesHandshake)
		}
	}
	if c.cfg.ConnsPerIP != nil {
		if !c.cfg.ConnsPerIP.Acquire(req.IP) {
			c.unreserve(!req.Authenticated)
			c.refuse(req, RefusedPerIP, "", "")
			return nil, RefusedPerIP
		}
		s.state.Or(slotIPHeld)
	}
	st := &c.stats[req.Transport]
	st.admitted.Add(1)
	st.active.Add(1)
	return s, RefusedNone
}

// reserve takes the node-wide count, and the unauthenticated count for an
// unauthenticated request, with compare-and-swap so that a connect storm
// cannot overshoot either cap while a limiter waits on Redis. The handshake
// rate is consumed only by a request the node has room for.
func (c *Controller) reserve(req Request) Refusal {
	if c.Draining() {
		return RefusedDraining
	}
	if !takeUnder(&c.active, c.cfg.MaxConnections) {
		return RefusedNodeFull
	}
	if req.Authenticated {
		return RefusedNone
	}
	if c.cfg.Handshakes != nil {
		var ok bool
		if d, deferred := c.cfg.Handshakes.(DeferredRateLimiter); deferred {
			ok, _ = d.Check(req.IP) // charged on Release unless Verified
		} else {
			ok, _ = c.cfg.Handshakes.Allow(req.IP)
		}
		if !ok {
			c.active.Add(-1)
			return RefusedHandshakeRate
		}
	}
	if !takeUnder(&c.unauth, c.cfg.MaxUnauthenticated) {
		c.active.Add(-1)
		return RefusedUnauthenticated
	}
	return RefusedNone
}

// unreserve gives back what reserve took.
func (c *Controller) unreserve(unauth bool) {
	c.active.Add(-1)
	if unauth {
		c.unauth.Add(-1)
	}
}

// takeUnder adds one to n unless that would pass limit (0: no limit).
func takeUnder(n *atomic.Int64, limit int64) bool {
	for {
		cur := n.Load()
		if limit > 0 && cur >= limit {
			return false
		}
		if n.CompareAndSwap(cur, cur+1) {
			return true
		}
	}
}

// refuse counts a refused connection request and records the refusal.
func (c *Controller) refuse(req Request, r Refusal, tenant, user string) {
	c.stats[req.Transport].refused.Add(1)
	c.record(req, r, tenant, user)
}

// record tells the observer and the audit log about a refusal.
func (c *Controller) record(req Request, r Refusal, tenant, user string) {
	if f := c.cfg.Observer.Refused; f != nil {
		f(req.Transport, r)
	}
	if r == RefusedDraining {
		return // not a security event
	}
	ev := audit.LimitExceeded
	if r.RateLimited() {
		ev = audit.RateLimited
	}
	attrs := []any{"scope", r.Label(), "ip", req.IP, "transport", req.Transport.String()}
	if user != "" {
		attrs = append(attrs, "tenant", tenant, "user", user)
	}
	c.cfg.Audit.Warn(ev, "connection refused", attrs...)
}

// AllowRequest applies the per-user request rate. It returns the number of
// consecutive refusals (0 when allowed) and whether they reached the abuse
// threshold; refusals are recorded (the first and every tenth).
func (c *Controller) AllowRequest(t Transport, tenant, user string) (ok, abusive bool) {
	if c.cfg.Requests == nil {
		return true, false
	}
	ok, strikes := c.cfg.Requests.Allow(UserKey(tenant, user))
	if ok {
		return true, false
	}
	if strikes == 1 || strikes%10 == 0 {
		c.cfg.Audit.Warn(audit.RateLimited, "rate limited", "scope", RefusedRequestRate.Label(),
			"transport", t.String(), "tenant", tenant, "user", user, "strikes", strikes)
	}
	return false, strikes >= c.cfg.AbuseStrikes
}

// AllowPublish applies the per-key publish rate.
func (c *Controller) AllowPublish(keyID string) bool {
	if c.cfg.Publishes == nil {
		return true
	}
	ok, strikes := c.cfg.Publishes.Allow(keyID)
	if !ok && (strikes == 1 || strikes%10 == 0) {
		c.cfg.Audit.Warn(audit.RateLimited, "rate limited", "scope", RefusedPublishRate.Label(),
			"transport", Publish.String(), "key_id", keyID, "strikes", strikes)
	}
	return ok
}

// Slot is one admitted connection's hold on the node's limits. It is
// small on purpose (one per connection): its state is a set of atomic bits.
// The per-user slots a connection takes (AcquireUser; one per Socket.IO
// namespace) are tracked by their owner, session.Session, which gives each
// back once.
type Slot struct {
	c         *Controller   // static
	ip        string        // static
	state     atomic.Uint32 // slot* bits
	transport Transport     // static
}

// Slot state bits.
const (
	slotIPHeld   uint32 = 1 << iota // a ConnsPerIP use is held
	slotUnauth                      // counted in Controller.unauth
	slotOpened                      // authenticated at least once
	slotReleased                    // Release ran
	// slotOwesHandshake: a handshake token is charged on Release unless
	// the connection is Verified first (DeferredRateLimiter).
	slotOwesHandshake
)

// IP is the connection's client address.
func (s *Slot) IP() string { return s.ip }

// Transport is the connection's transport.
func (s *Slot) Transport() Transport { return s.transport }

// clear clears bits and returns the bits that were set before.
func (s *Slot) clear(bits uint32) uint32 {
	for {
		old := s.state.Load()
		if s.state.CompareAndSwap(old, old&^bits) {
			return old
		}
	}
}

// AcquireUser takes a per-user slot for an authenticated identity. It may
// wait on Redis. On refusal the connection should be refused or closed
// (limit_exceeded); the refusal is recorded. It fails on a released slot.
func (s *Slot) AcquireUser(tenant, user string) bool {
	c := s.c
	if s.state.Load()&slotReleased != 0 {
		return false
	}
	if c.cfg.ConnsPerUser == nil {
		return true
	}
	key := UserKey(tenant, user)
	if !c.cfg.ConnsPerUser.Acquire(key) {
		// The connection was admitted: it is counted as failed (or stays
		// opened) when it ends, not as refused.
		c.record(Request{Transport: s.transport, IP: s.ip}, RefusedPerUser, tenant, user)
		return false
	}
	if s.state.Load()&slotReleased != 0 { // released while Redis answered
		c.cfg.ConnsPerUser.Release(key)
		return false
	}
	return true
}

// ReleaseUser gives back one per-user slot taken by AcquireUser. The
// caller gives back each slot it took exactly once (session.Session does).
func (s *Slot) ReleaseUser(tenant, user string) {
	if s.c.cfg.ConnsPerUser != nil {
		s.c.cfg.ConnsPerUser.Release(UserKey(tenant, user))
	}
}

// Verified marks that the connection presented a valid credential: it
// leaves the unauthenticated count (even if a per-user cap then refuses it).
func (s *Slot) Verified() {
	if s.clear(slotUnauth|slotOwesHandshake)&slotUnauth != 0 {
		s.c.unauth.Add(-1)
	}
}

// Opened marks the connection authenticated and attached: it is Verified
// and will not count as failed.
func (s *Slot) Opened() {
	s.Verified()
	if s.state.Or(slotOpened)&slotOpened == 0 {
		s.c.stats[s.transport].opened.Add(1)
	}
}

// Release gives back what the slot holds (the connection and IP counts). It
// may wait on Redis: never call it in a poller callback. Calls after the
// first do nothing.
func (s *Slot) Release() {
	if s == nil {
		return
	}
	old := s.state.Or(slotReleased)
	if old&slotReleased != 0 {
		return
	}
	old = s.clear(slotIPHeld | slotUnauth | slotOwesHandshake)
	c := s.c
	st := &c.stats[s.transport]
	c.active.Add(-1)
	st.active.Add(-1)
	if old&slotUnauth != 0 {
		c.unauth.Add(-1)
	}
	if old&slotOpened == 0 {
		st.failed.Add(1)
		if f := c.cfg.Observer.Failed; f != nil {
			f(s.transport)
		}
	}
	if old&slotIPHeld != 0 {
		c.cfg.ConnsPerIP.Release(s.ip)
	}
	if old&slotOwesHandshake != 0 {
		c.cfg.Handshakes.(DeferredRateLimiter).Charge(s.ip)
	}
}

// TransportStats are one transport's connection counts since start.
type TransportStats struct {
	Attempts int64 `json:"attempts"` // connection requests
	Refused  int64 `json:"refused"`  // refused before or by admission (origin, credentials, limits)
	Opened   int64 `json:"opened"`   // admitted and authenticated
	Failed   int64 `json:"failed"`   // refused, or admitted but closed before authenticating
	Active   int64 `json:"active"`   // admitted and not yet closed
	Pending  int64 `json:"pending"`  // admitted, open, not yet authenticated
}

// Stats returns the per-transport counts of the connection transports.
func (c *Controller) Stats() map[string]TransportStats {
	out := make(map[string]TransportStats, len(ConnTransports))
	for _, t := range ConnTransports {
		st := &c.stats[t]
		ts := TransportStats{Attempts: st.attempts.Load(), Refused: st.refused.Load(), Opened: st.opened.Load(),
			Active: st.active.Load()}
		ts.Failed = ts.Refused + st.failed.Load()
		// admitted = opened + failed before auth + still waiting for auth
		ts.Pending = max(0, st.admitted.Load()-ts.Opened-st.failed.Load())
		out[t.String()] = ts
	}
	return out
}
