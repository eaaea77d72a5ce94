// Package revocation keeps the set of revoked users and token ids and rejects
// their tokens. Herald has no user table: a backend that deletes or bans a
// user revokes them here, which closes every live connection of that user and
// rejects every token issued before the revocation (tokens issued afterwards
// are accepted, so un-banning is just issuing new tokens). A single token can
// be revoked by its jti until it expires.
//
// The List is the in-memory view, loaded from the store at start and kept
// current by revocation events (from this node or, through the broker, from
// others). It is safe for concurrent use.
package revocation

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/heraldhq/herald/internal/auth"
)

// Revocation revokes a user (Tenant+User) or a token (TokenID).
type Revocation struct {
	Tenant  string
	User    string
	TokenID string
	// At is when it was made: user tokens issued before it are rejected.
	At time.Time
	// Until is when a token revocation can be forgotten (the token's
	// expiry). Zero for user revocations, which last until lifted.
	Until time.Time
}

// Store persists revocations so they survive restarts.
type Store interface {
	SaveRevocation(ctx context.Context, r Revocation) error
	DeleteUserRevocation(ctx context.Context, tenant, user string) error
	Revocations(ctx context.Context) ([]Revocation, error)
}

type userKey struct{ tenant, user string }

// List is the set of active revocations.
type List struct {
	now    func() time.Time
	mu     sync.RWMutex
	users  map[userKey]time.Time // guarded by mu: revoked-before time
	tokens map[string]time.Time  // guarded by mu: jti → until
}

// NewList returns an empty list; now may be nil.
func NewList(now func() time.Time) *List {
	if now == nil {
		now = time.Now
	}
	return &List{now: now, users: map[userKey]time.Time{}, tokens: map[string]time.Time{}}
}

// Load replaces the list with the store's revocations.
func (l *List) Load(ctx context.Context, s Store) error {
	rs, err := s.Revocations(ctx)
	if err != nil {
		return fmt.Errorf("revocation: load: %w", err)
	}
	for _, r := range rs {
		l.Apply(r)
	}
	return nil
}

// Apply adds r to the list (idempotent; a later user revocation wins).
func (l *List) Apply(r Revocation) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r.TokenID != "" {
		if r.Until.After(l.now()) {
			l.tokens[r.TokenID] = r.Until
		}
		return
	}
	k := userKey{r.Tenant, r.User}
	if at, ok := l.users[k]; !ok || r.At.After(at) {
		l.users[k] = r.At
	}
}

// Lift removes a user revocation.
func (l *List) Lift(tenant, user string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.users, userKey{tenant, user})
}

// ErrRevoked is wrapped by Check's error.
var ErrRevoked = errors.New("revocation: token revoked")

// ReasonRevoked is the auth reason class of a revoked token.
const ReasonRevoked auth.Reason = "revoked"

// Check returns an auth.TokenError (reason "revoked") when p's token is revoked.
func (l *List) Check(p auth.Principal) error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if p.TokenID != "" {
		if until, ok := l.tokens[p.TokenID]; ok && until.After(l.now()) {
			return &auth.TokenError{Reason: ReasonRevoked, Err: ErrRevoked}
		}
	}
	if at, ok := l.users[userKey{p.Tenant, p.User}]; ok {
		// Tokens from the revocation's own second are accepted: iat has
		// one-second resolution and a backend may reissue right away.
		if p.IssuedAt.IsZero() || p.IssuedAt.Before(at.Truncate(time.Second)) {
			return &auth.TokenError{Reason: ReasonRevoked, Err: ErrRevoked}
		}
	}
	return nil
}

// Sweep forgets token revocations whose tokens have expired.
func (l *List) Sweep() {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, until := range l.tokens {
		if !until.After(now) {
			delete(l.tokens, id)
		}
	}
}

// TokenVerifier is what Verifier wraps.
type TokenVerifier interface {
	Verify(token string) (auth.Principal, error)
	Leeway() time.Duration
}

// Verifier checks tokens with the wrapped verifier, then against the list.
type Verifier struct {
	TokenVerifier
	List *List
}

// Verify implements the transports' Verifier.
func (v Verifier) Verify(token string) (auth.Principal, error) {
	p, err := v.TokenVerifier.Verify(token)
	if err != nil {
		return p, err
	}
	if err := v.List.Check(p); err != nil {
		return auth.Principal{}, err
	}
	return p, nil
}
