package sse

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/internal/testkit"
)

// redisTickets is a RedisTickets on the shared test Redis with a key
// prefix of its own (testkit.Redis: skipped loudly without Redis, failed
// instead when CI=true).
func redisTickets(t *testing.T) *RedisTickets {
	t.Helper()
	rdb, prefix := testkit.Redis(t)
	return &RedisTickets{Client: rdb, Prefix: prefix}
}

// twoNodes are two nodes' ticket sets sharing store.
func twoNodes(store TicketStore, ttl time.Duration, perUser int) (a, b *tickets) {
	a = newTickets(ttl, 100, perUser, time.Now)
	b = newTickets(ttl, 100, perUser, time.Now)
	a.shared, b.shared = store, store
	return a, b
}

// TestRedisTicketsAcrossNodes: a ticket issued by one node is redeemed by
// another, exactly once; the per-user cap counts both nodes' tickets; no
// ticket is kept in a node's memory; Redis holds only the ticket's hash.
func TestRedisTicketsAcrossNodes(t *testing.T) {
	store := redisTickets(t)
	ctx := context.Background()
	a, b := twoNodes(store, 30*time.Second, 3)
	p := principal(&fakeClock{t: time.Now()}, "alice")
	p.TokenID, p.IssuedAt = "jti-1", time.Now().Add(-time.Minute).Truncate(time.Second)

	tk, ttl, err := a.issue(ctx, p)
	if err != nil || ttl != 30*time.Second {
		t.Fatalf("issue: %v %v", ttl, err)
	}
	if a.len() != 0 {
		t.Fatalf("%d tickets in the issuing node's memory", a.len())
	}
	keys, _ := store.Client.Keys(ctx, store.Prefix+":*").Result()
	for _, k := range keys {
		v, _ := store.Client.Get(ctx, k).Result()
		if strings.Contains(k, tk) || strings.Contains(v, tk) {
			t.Fatalf("the ticket itself is in Redis (%s)", k)
		}
	}
	got, err := b.redeem(ctx, tk)
	if err != nil || got.User != "alice" || got.Tenant != "acme" || got.Role != "admin" || got.TokenID != "jti-1" ||
		len(got.Topics) != 1 || got.Topics[0] != "room.*" ||
		!got.IssuedAt.Equal(p.IssuedAt) || !got.Expires.Equal(p.Expires.Truncate(time.Millisecond)) {
		t.Fatalf("redeem on the other node: %+v %v", got, err)
	}
	for _, n := range []*tickets{a, b} {
		if _, err := n.redeem(ctx, tk); !errors.Is(err, ErrTicketUnknown) {
			t.Fatalf("replay: %v", err)
		}
	}

	// The cap counts the user's outstanding tickets on every node.
	var held []string
	for i := range 3 {
		n := []*tickets{a, b}[i%2]
		tk, _, err := n.issue(ctx, p)
		if err != nil {
			t.Fatalf("ticket %d: %v", i, err)
		}
		held = append(held, tk)
	}
	for _, n := range []*tickets{a, b} {
		if _, _, err := n.issue(ctx, p); !errors.Is(err, ErrTooManyUserTickets) {
			t.Fatalf("over the cap: %v", err)
		}
	}
	if _, _, err := a.issue(ctx, principal(&fakeClock{t: time.Now()}, "bob")); err != nil {
		t.Fatalf("another user: %v", err)
	}
	if _, err := a.redeem(ctx, held[1]); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.issue(ctx, p); err != nil {
		t.Fatalf("after a redeem: %v", err)
	}
}

// TestRedisTicketsRace: nodes racing to redeem one ticket: exactly one wins.
func TestRedisTicketsRace(t *testing.T) {
	store := redisTickets(t)
	ctx := context.Background()
	a, b := twoNodes(store, 30*time.Second, 100)
	for range 20 {
		tk, _, err := a.issue(ctx, principal(&fakeClock{t: time.Now()}, "alice"))
		if err != nil {
			t.Fatal(err)
		}
		var wins atomic.Int32
		var wg sync.WaitGroup
		for i := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := []*tickets{a, b}[i%2].redeem(ctx, tk); err == nil {
					wins.Add(1)
				} else if !errors.Is(err, ErrTicketUnknown) {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("%d redeems succeeded", wins.Load())
		}
	}
}

// TestRedisTicketsExpire: Redis drops a ticket with its validity.
func TestRedisTicketsExpire(t *testing.T) {
	store := redisTickets(t)
	ctx := context.Background()
	a, b := twoNodes(store, 200*time.Millisecond, 100)
	tk, _, err := a.issue(ctx, principal(&fakeClock{t: time.Now()}, "alice"))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond)
	if _, err := b.redeem(ctx, tk); !errors.Is(err, ErrTicketUnknown) && !errors.Is(err, ErrTicketExpired) {
		t.Fatalf("expired ticket: %v", err)
	}
}

// TestRedisTicketsDown: while Redis does not answer, tickets are issued in
// the node's memory (valid there), and a ticket found in neither place is
// reported as a store failure (503 at the endpoint), not as unknown.
func TestRedisTicketsDown(t *testing.T) {
	addr := "127.0.0.1:" + strconv.Itoa(testkit.FreePort(t)) // nothing listens there now
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer rdb.Close()
	a, _ := twoNodes(&RedisTickets{Client: rdb}, 30*time.Second, 3)
	ctx := context.Background()
	tk, _, err := a.issue(ctx, principal(&fakeClock{t: time.Now()}, "alice"))
	if err != nil || a.len() != 1 {
		t.Fatalf("issue with Redis down: %v (%d in memory)", err, a.len())
	}
	if p, err := a.redeem(ctx, tk); err != nil || p.User != "alice" {
		t.Fatalf("redeem on the issuing node: %+v %v", p, err)
	}
	if _, err := a.redeem(ctx, tk); !errors.Is(err, ErrTicketStoreDown) {
		t.Fatalf("unknown ticket with Redis down: %v", err)
	}
}

// TestRedisTicketsCapForgetsExpired: an unspent ticket stops counting
// against the cap when it expires, even while the user keeps getting new
// ones.
func TestRedisTicketsCapForgetsExpired(t *testing.T) {
	store := redisTickets(t)
	ctx := context.Background()
	a, _ := twoNodes(store, 400*time.Millisecond, 3)
	p := principal(&fakeClock{t: time.Now()}, "alice")
	if _, _, err := a.issue(ctx, p); err != nil { // never redeemed
		t.Fatal(err)
	}
	time.Sleep(250 * time.Millisecond)
	for range 2 {
		if _, _, err := a.issue(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(250 * time.Millisecond) // the first has expired, the others not
	if _, _, err := a.issue(ctx, p); err != nil {
		t.Fatalf("a fourth ticket once the first expired: %v", err)
	}
}
