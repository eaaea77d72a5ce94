package sse

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/auth"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func newClock() *fakeClock { return &fakeClock{t: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)} }

func principal(clk *fakeClock, user string) auth.Principal {
	return auth.Principal{User: user, Tenant: "acme", Role: "admin", Topics: []string{"room.*"}, Expires: clk.now().Add(time.Hour)}
}

func TestTicketSingleUseAndBinding(t *testing.T) {
	clk := newClock()
	ts := newTickets(30*time.Second, 100, 10, clk.now)
	p := principal(clk, "alice")
	tk, ttl, err := ts.issue(context.Background(), p)
	if err != nil || ttl != 30*time.Second || len(tk) != ticketLen || len(tk) < 22 || !isBase64URL(tk) {
		t.Fatalf("issue: %q %v %v", tk, ttl, err)
	}
	got, err := ts.redeem(context.Background(), tk)
	if err != nil || got.User != "alice" || got.Tenant != "acme" || got.Role != "admin" || !got.Expires.Equal(p.Expires) ||
		len(got.Topics) != 1 || got.Topics[0] != "room.*" {
		t.Fatalf("redeem: %+v %v", got, err)
	}
	if _, err := ts.redeem(context.Background(), tk); !errors.Is(err, ErrTicketUnknown) {
		t.Fatalf("replay: %v", err)
	}
	if ts.len() != 0 {
		t.Fatalf("outstanding = %d", ts.len())
	}
}

func TestTicketRejections(t *testing.T) {
	clk := newClock()
	ts := newTickets(30*time.Second, 100, 10, clk.now)
	good, _, _ := ts.issue(context.Background(), principal(clk, "alice"))
	cases := []struct {
		name   string
		ticket string
		want   error
	}{
		{"empty", "", ErrTicketMalformed},
		{"short", good[:20], ErrTicketMalformed},
		{"long", good + "A", ErrTicketMalformed},
		{"bad alphabet", good[:len(good)-1] + "+", ErrTicketMalformed},
		{"padding", good[:len(good)-1] + "=", ErrTicketMalformed},
		{"forged", "A" + good[1:], ErrTicketUnknown},
	}
	if good[0] == 'A' {
		cases[len(cases)-1].ticket = "B" + good[1:]
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ts.redeem(context.Background(), tc.ticket); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	// The good ticket is untouched by the failed attempts.
	if _, err := ts.redeem(context.Background(), good); err != nil {
		t.Fatal(err)
	}
}

func TestTicketExpiry(t *testing.T) {
	clk := newClock()
	ts := newTickets(30*time.Second, 100, 10, clk.now)
	tk, _, _ := ts.issue(context.Background(), principal(clk, "alice"))
	clk.add(30 * time.Second)
	if _, err := ts.redeem(context.Background(), tk); !errors.Is(err, ErrTicketExpired) {
		t.Fatalf("expired: %v", err)
	}
	if _, err := ts.redeem(context.Background(), tk); !errors.Is(err, ErrTicketUnknown) {
		t.Fatalf("expired, second try: %v", err)
	}

	// A ticket never outlives its token.
	p := principal(clk, "bob")
	p.Expires = clk.now().Add(5 * time.Second)
	tk, ttl, _ := ts.issue(context.Background(), p)
	if ttl != 5*time.Second {
		t.Fatalf("ttl = %v", ttl)
	}
	clk.add(5 * time.Second)
	if _, err := ts.redeem(context.Background(), tk); !errors.Is(err, ErrTicketExpired) {
		t.Fatalf("token expired: %v", err)
	}
}

func TestTicketCapsAndSweep(t *testing.T) {
	clk := newClock()
	ts := newTickets(30*time.Second, 5, 2, clk.now)
	for range 2 {
		if _, _, err := ts.issue(context.Background(), principal(clk, "alice")); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := ts.issue(context.Background(), principal(clk, "alice")); !errors.Is(err, ErrTooManyUserTickets) {
		t.Fatalf("per-user cap: %v", err)
	}
	for _, u := range []string{"bob", "bob", "carol"} {
		if _, _, err := ts.issue(context.Background(), principal(clk, u)); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := ts.issue(context.Background(), principal(clk, "dave")); !errors.Is(err, ErrTooManyTickets) {
		t.Fatalf("global cap: %v", err)
	}
	// Once they expire, the sweep run by issue frees both caps.
	clk.add(31 * time.Second)
	for range 2 {
		if _, _, err := ts.issue(context.Background(), principal(clk, "alice")); err != nil {
			t.Fatalf("after sweep: %v", err)
		}
	}
	if ts.len() != 2 || len(ts.perUser) != 1 {
		t.Fatalf("outstanding = %d, users = %d", ts.len(), len(ts.perUser))
	}
}

func TestTicketsAreUnique(t *testing.T) {
	clk := newClock()
	ts := newTickets(30*time.Second, 10000, 10000, clk.now)
	seen := map[string]bool{}
	for range 2000 {
		tk, _, err := ts.issue(context.Background(), principal(clk, "alice"))
		if err != nil || seen[tk] {
			t.Fatalf("duplicate or error: %v", err)
		}
		seen[tk] = true
	}
}

// TestTicketForTokenPastExp: a token past its exp but inside the verifier's
// leeway gets no ticket (it could never open a stream), and a shared store
// is not asked (so it cannot be taken for a failing one).
func TestTicketForTokenPastExp(t *testing.T) {
	clk := newClock()
	ts := newTickets(30*time.Second, 100, 10, clk.now)
	ts.shared = failingStore{}
	p := principal(clk, "alice")
	p.Expires = clk.now().Add(-time.Second)
	if _, _, err := ts.issue(context.Background(), p); !errors.Is(err, ErrTicketExpired) {
		t.Fatalf("issue: %v", err)
	}
	if !ts.sharedUp() {
		t.Fatal("the shared store was marked down")
	}
}

// failingStore fails every call.
type failingStore struct{}

func (failingStore) Put(context.Context, [32]byte, Ticket, time.Duration, int) error {
	return errors.New("down")
}

func (failingStore) Take(context.Context, [32]byte) (Ticket, bool, error) {
	return Ticket{}, false, errors.New("down")
}
