package sse

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/heraldhq/herald/internal/auth"
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
)

// ticketBytes is the ticket's entropy: 256 bits from crypto/rand.
const ticketBytes = 32

// ticketLen is the length of a ticket's unpadded base64url text.
var ticketLen = base64.RawURLEncoding.EncodedLen(ticketBytes)

type ticketEntry struct {
	user, tenant, role string
	tokenID            string    // jti of the JWT, for revocation
	issuedAt           time.Time // iat of the JWT, for user revocation
	tokenExp           time.Time // the exp of the JWT the ticket was issued for
	expires            time.Time // end of the ticket's own validity
}

type userKey struct{ tenant, user string }

// tickets is a bounded in-memory store of single-use stream tickets. Only a
// SHA-256 of each ticket is kept, so neither a heap dump nor a timing side
// channel of the map lookup reveals an outstanding ticket. Safe for
// concurrent use.
type tickets struct {
	ttl        time.Duration    // static
	max        int              // static
	maxPerUser int              // static
	now        func() time.Time // static

	mu        sync.Mutex
	m         map[[sha256.Size]byte]ticketEntry // guarded by mu
	perUser   map[userKey]int                   // guarded by mu: outstanding tickets per user
	lastSweep time.Time                         // guarded by mu
}

func newTickets(ttl time.Duration, max, maxPerUser int, now func() time.Time) *tickets {
	return &tickets{ttl: ttl, max: max, maxPerUser: maxPerUser, now: now,
		m: make(map[[sha256.Size]byte]ticketEntry), perUser: make(map[userKey]int)}
}

// issue returns a new ticket for p and how long it is valid.
func (t *tickets) issue(p auth.Principal) (string, time.Duration, error) {
	var raw [ticketBytes]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", 0, fmt.Errorf("sse: ticket entropy: %w", err)
	}
	tk := base64.RawURLEncoding.EncodeToString(raw[:])
	now := t.now()
	e := ticketEntry{user: p.User, tenant: p.Tenant, role: p.Role, tokenID: p.TokenID, issuedAt: p.IssuedAt,
		tokenExp: p.Expires, expires: now.Add(t.ttl)}
	if !p.Expires.IsZero() && p.Expires.Before(e.expires) {
		e.expires = p.Expires
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
	t.m[sha256.Sum256([]byte(tk))] = e
	t.perUser[uk]++
	return tk, e.expires.Sub(now), nil
}

// redeem consumes a ticket: whatever the outcome, it can never be used again.
func (t *tickets) redeem(tk string) (auth.Principal, error) {
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
	switch {
	case !ok:
		return auth.Principal{}, ErrTicketUnknown
	case !now.Before(e.expires):
		return auth.Principal{}, ErrTicketExpired
	}
	return auth.Principal{User: e.user, Tenant: e.tenant, Role: e.role, TokenID: e.tokenID, IssuedAt: e.issuedAt,
		Expires: e.tokenExp}, nil
}

func (t *tickets) deleteLocked(h [sha256.Size]byte, e ticketEntry) {
	delete(t.m, h)
	uk := userKey{e.tenant, e.user}
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
		if !now.Before(e.expires) {
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
