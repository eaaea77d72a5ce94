package sse

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldhq/herald/internal/audit"
	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/defaults"
)

// Ticket errors. The first three are what a client presenting a ticket can
// cause; their Error strings are safe to log (they never contain the ticket).
var (
	// ErrTicketMalformed: not the shape of a ticket this server issues.
	ErrTicketMalformed = errors.New("sse: malformed ticket")
	// ErrTicketUnknown: well-formed but not outstanding: forged, already
	// used, or expired and swept.
	ErrTicketUnknown = errors.New("sse: unknown or used ticket")
	// ErrTicketExpired: issued here but its validity (or its token's) ended.
	ErrTicketExpired = errors.New("sse: ticket expired")
	// ErrTooManyTickets: the node-wide cap on outstanding tickets is reached.
	ErrTooManyTickets = errors.New("sse: too many outstanding tickets")
	// ErrTooManyUserTickets: the per-user cap is reached.
	ErrTooManyUserTickets = errors.New("sse: too many outstanding tickets for this user")
	// ErrTicketStoreDown: the shared ticket store did not answer a redeem,
	// so the ticket's fate is unknown (it may still be outstanding).
	ErrTicketStoreDown = errors.New("sse: ticket store unavailable")
)

// Ticket is what a ticket stands for: the identity of the token it was
// issued for, and the end of its own validity.
type Ticket struct {
	User, Tenant, Role string
	Topics             []string  // the token's topic patterns (the topics claim), for ?topics=
	TokenID            string    // jti of the JWT, for revocation
	IssuedAt           time.Time // iat of the JWT, for user revocation
	TokenExp           time.Time // exp of the JWT
	Expires            time.Time // end of the ticket's own validity
}

// TicketStore shares outstanding tickets between nodes, so that a ticket
// issued by one node opens a stream on any other (RedisTickets). Keys are
// the SHA-256 of the ticket; the ticket itself is never stored.
type TicketStore interface {
	// Put keeps t under key until ttl passes or it is taken, unless its
	// user already has maxPerUser outstanding (ErrTooManyUserTickets).
	Put(ctx context.Context, key [sha256.Size]byte, t Ticket, ttl time.Duration, maxPerUser int) error
	// Take removes the ticket under key and returns it; ok is false when
	// none is outstanding.
	Take(ctx context.Context, key [sha256.Size]byte) (t Ticket, ok bool, err error)
}

// ticketBytes is the ticket's entropy: 256 bits from crypto/rand.
const ticketBytes = 32

// ticketLen is the length of a ticket's unpadded base64url text.
var ticketLen = base64.RawURLEncoding.EncodedLen(ticketBytes)

type userKey struct{ tenant, user string }

// tickets issues and redeems single-use stream tickets. They are kept in
// shared, the store every node sees, when there is one; otherwise, and
// while shared fails, in a bounded in-memory map of this node. Only a
// SHA-256 of each ticket is kept, so neither a heap dump (or the Redis
// keyspace) nor a timing side channel of the lookup reveals an outstanding
// ticket. Safe for concurrent use.
type tickets struct {
	ttl        time.Duration    // static
	max        int              // static: in-memory tickets
	maxPerUser int              // static
	now        func() time.Time // static
	shared     TicketStore      // static; nil on a single node
	log        *slog.Logger     // static
	audit      *audit.Recorder  // static: records audit events; nil: logged through log, not counted
	downUntil  atomic.Int64     // unix ns: the shared store is skipped until then

	mu        sync.Mutex
	m         map[[sha256.Size]byte]Ticket // guarded by mu
	perUser   map[userKey]int              // guarded by mu: outstanding tickets per user
	lastSweep time.Time                    // guarded by mu
}

func newTickets(ttl time.Duration, max, maxPerUser int, now func() time.Time) *tickets {
	return &tickets{ttl: ttl, max: max, maxPerUser: maxPerUser, now: now,
		log: defaults.Discard(),
		m:   make(map[[sha256.Size]byte]Ticket), perUser: make(map[userKey]int)}
}

// issue returns a new ticket for p and how long it is valid.
func (t *tickets) issue(ctx context.Context, p auth.Principal) (string, time.Duration, error) {
	var raw [ticketBytes]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", 0, fmt.Errorf("sse: ticket entropy: %w", err)
	}
	tk := base64.RawURLEncoding.EncodeToString(raw[:])
	now := t.now()
	e := Ticket{User: p.User, Tenant: p.Tenant, Role: p.Role, Topics: p.Topics, TokenID: p.TokenID, IssuedAt: p.IssuedAt,
		TokenExp: p.Expires, Expires: now.Add(t.ttl)}
	if !p.Expires.IsZero() && p.Expires.Before(e.Expires) {
		e.Expires = p.Expires
	}
	if !e.Expires.After(now) {
		return "", 0, ErrTicketExpired // a token past its exp, accepted within the leeway
	}
	key := sha256.Sum256([]byte(tk))
	if t.sharedUp() {
		err := t.shared.Put(ctx, key, e, e.Expires.Sub(now), t.maxPerUser)
		switch {
		case err == nil:
			return tk, e.Expires.Sub(now), nil
		case errors.Is(err, ErrTooManyUserTickets):
			return "", 0, err
		}
		// Keep serving: the ticket then works on this node only.
		t.sharedFailed(err)
	}
	uk := userKey{p.Tenant, p.User}

	t.mu.Lock()
	defer t.mu.Unlock()
	if now.Sub(t.lastSweep) >= t.ttl || len(t.m) >= t.max || t.perUser[uk] >= t.maxPerUser {
		t.sweepLocked(now)
	}
	if len(t.m) >= t.max {
		return "", 0, ErrTooManyTickets
	}
	if t.perUser[uk] >= t.maxPerUser {
		return "", 0, ErrTooManyUserTickets
	}
	t.m[key] = e
	t.perUser[uk]++
	return tk, e.Expires.Sub(now), nil
}

// redeem consumes a ticket: whatever the outcome, it can never be used
// again (ErrTicketStoreDown: the shared store did not answer, so it was
// not consumed).
func (t *tickets) redeem(ctx context.Context, tk string) (auth.Principal, error) {
	if len(tk) != ticketLen || !isBase64URL(tk) {
		return auth.Principal{}, ErrTicketMalformed
	}
	h := sha256.Sum256([]byte(tk))
	now := t.now()
	t.mu.Lock()
	e, ok := t.m[h]
	if ok {
		t.deleteLocked(h, e)
	}
	t.mu.Unlock()
	if !ok && t.shared != nil {
		if !t.sharedUp() {
			return auth.Principal{}, ErrTicketStoreDown
		}
		var err error
		if e, ok, err = t.shared.Take(ctx, h); err != nil {
			t.sharedFailed(err)
			return auth.Principal{}, fmt.Errorf("%w: %w", ErrTicketStoreDown, err)
		}
	}
	switch {
	case !ok:
		return auth.Principal{}, ErrTicketUnknown
	case !now.Before(e.Expires):
		return auth.Principal{}, ErrTicketExpired
	}
	return auth.Principal{User: e.User, Tenant: e.Tenant, Role: e.Role, Topics: e.Topics, TokenID: e.TokenID,
		IssuedAt: e.IssuedAt, Expires: e.TokenExp}, nil
}

// sharedCooldown: after the shared store fails, tickets are issued in
// memory, and redeems of tickets not found there fail at once, for this
// long before the store is tried again (a down Redis would otherwise cost
// every request its dial timeout).
const sharedCooldown = 5 * time.Second

// sharedUp reports whether to use the shared store.
func (t *tickets) sharedUp() bool {
	return t.shared != nil && time.Now().UnixNano() >= t.downUntil.Load()
}

func (t *tickets) sharedFailed(err error) {
	now := time.Now()
	if prev := t.downUntil.Swap(now.Add(sharedCooldown).UnixNano()); prev < now.Add(-sharedCooldown).UnixNano() {
		rec := t.audit
		if rec == nil {
			rec = audit.New(t.log, nil)
		}
		rec.Warn(audit.TicketStoreDegraded, "ticket store unavailable: tickets are valid on the issuing node only", "err", err)
	}
}

func (t *tickets) deleteLocked(h [sha256.Size]byte, e Ticket) {
	delete(t.m, h)
	uk := userKey{e.Tenant, e.User}
	if n := t.perUser[uk] - 1; n > 0 {
		t.perUser[uk] = n
	} else {
		delete(t.perUser, uk)
	}
}

// sweepLocked drops expired tickets. It runs at most once per TTL from
// issue (and when a cap is hit), so its cost is amortised over the tickets
// issued meanwhile; there is no sweeper goroutine.
func (t *tickets) sweepLocked(now time.Time) {
	t.lastSweep = now
	for h, e := range t.m {
		if !now.Before(e.Expires) {
			t.deleteLocked(h, e)
		}
	}
}

// len is the number of outstanding tickets (tests, metrics).
func (t *tickets) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

func isBase64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
