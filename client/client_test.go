package client_test

import (
	"context"
	"database/sql"
	"errors"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/internal/limit"
	"github.com/heraldhq/herald/internal/node"
	"github.com/heraldhq/herald/internal/testkit"
)

var ulid = regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{26}$`)

func TestPublishToUsersTenantAndRole(t *testing.T) {
	h := startHerald(t)
	c := newClient(t, h.base, publishKey)
	ctx := context.Background()
	expires := time.Now().Add(time.Hour).UTC().Truncate(time.Millisecond)

	toAlice, err := c.Publish(ctx, client.Notification{
		Tenant: "acme", To: client.ToUsers("alice", "bob"), Type: "invoice.paid", Title: "Invoice paid",
		Body: "INV-1 was paid", Data: map[string]any{"invoice": "INV-1", "amount": 42}, ExpiresAt: expires,
	})
	if err != nil || !ulid.MatchString(toAlice) {
		t.Fatalf("publish to users: %q, %v", toAlice, err)
	}
	toTenant, err := c.Publish(ctx, client.Notification{Tenant: "acme", To: client.ToTenant(), Type: "maintenance", Title: "Down at 02:00"})
	if err != nil {
		t.Fatalf("publish to tenant: %v", err)
	}
	toAdmins, err := c.Publish(ctx, client.Notification{Tenant: "acme", To: client.ToRole("admin"), Type: "audit.alert", Title: "New admin login"})
	if err != nil {
		t.Fatalf("publish to role: %v", err)
	}

	// What each user sees, through the user REST API, newest first.
	alice := h.inbox(userToken(t, "acme", "alice", "admin"))
	if len(alice) != 3 || alice[0].ID != toAdmins || alice[1].ID != toTenant || alice[2].ID != toAlice {
		t.Fatalf("alice (admin) sees %+v", alice)
	}
	got := alice[2]
	if got.Type != "invoice.paid" || got.Title != "Invoice paid" || got.Body != "INV-1 was paid" ||
		string(got.Data) != `{"amount":42,"invoice":"INV-1"}` || got.ExpiresAt != expires.Format("2006-01-02T15:04:05.999Z07:00") {
		t.Fatalf("fields did not round-trip: %+v", got)
	}
	if bob := h.inbox(userToken(t, "acme", "bob", "member")); len(bob) != 2 || bob[0].ID != toTenant || bob[1].ID != toAlice {
		t.Fatalf("bob (member) sees %+v", bob)
	}
	if carol := h.inbox(userToken(t, "acme", "carol", "")); len(carol) != 1 || carol[0].ID != toTenant {
		t.Fatalf("carol sees %+v", carol)
	}
	if other := h.inbox(userToken(t, "globex", "alice", "admin")); len(other) != 0 {
		t.Fatalf("another tenant's alice sees %+v", other)
	}
}

func TestPublishBatch(t *testing.T) {
	h := startHerald(t)
	c := newClient(t, h.base, publishKey)
	ids, err := c.PublishBatch(context.Background(), []client.Notification{
		{Tenant: "acme", To: client.ToUsers("alice"), Type: "chat.message", Title: "one"},
		{Tenant: "acme", To: client.ToUsers("alice"), Type: "chat.message", Title: "two"},
		{Tenant: "acme", To: client.ToUsers("bob"), Type: "chat.message", Title: "for bob"},
	})
	if err != nil || len(ids) != 3 {
		t.Fatalf("batch: %v, %v", ids, err)
	}
	alice := h.inbox(userToken(t, "acme", "alice", ""))
	if len(alice) != 2 || alice[0].ID != ids[1] || alice[0].Title != "two" || alice[1].ID != ids[0] {
		t.Fatalf("alice sees %+v, ids %v", alice, ids)
	}

	// One invalid item rejects the whole batch: nothing stored, no retry.
	rec := newRecorder(t)
	c = newClient(t, h.base, publishKey, client.WithHTTPClient(rec.client()))
	_, err = c.PublishBatch(context.Background(), []client.Notification{
		{Tenant: "acme", To: client.ToUsers("alice"), Type: "ok", Title: "fine"},
		{Tenant: "acme", To: client.ToUsers("alice"), Type: "bad type!", Title: "invalid"},
	})
	var herr *client.Error
	if !errors.As(err, &herr) || herr.Status != 400 || herr.Code != client.CodeInvalidRequest || herr.Message != "invalid notification at index 1" {
		t.Fatalf("invalid batch: %v", err)
	}
	if n := len(rec.seen()); n != 1 {
		t.Fatalf("a 400 was sent %d times", n)
	}
	if alice := h.inbox(userToken(t, "acme", "alice", "")); len(alice) != 2 {
		t.Fatalf("a rejected batch stored something: %+v", alice)
	}
}

func TestIdempotencyKeys(t *testing.T) {
	h := startHerald(t)
	rec := newRecorder(t)
	c := newClient(t, h.base, publishKey, client.WithHTTPClient(rec.client()))
	ctx := context.Background()
	n := client.Notification{Tenant: "acme", To: client.ToUsers("alice"), Type: "order.paid", Title: "Order 1234 paid"}

	// A key of the caller's: the same request twice stores one notification.
	first, err := c.Publish(ctx, n, client.IdempotencyKey("order-1234-paid"))
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.Publish(ctx, n, client.IdempotencyKey("order-1234-paid"))
	if err != nil || again != first {
		t.Fatalf("replay: %q, %v; want %q", again, err, first)
	}
	// The same key with another request: 422, not retried.
	other := n
	other.Title = "Order 1234 refunded"
	_, err = c.Publish(ctx, other, client.IdempotencyKey("order-1234-paid"))
	var herr *client.Error
	if !errors.As(err, &herr) || herr.Status != 422 || herr.Code != client.CodeIdempotencyMismatch {
		t.Fatalf("mismatch: %v", err)
	}
	// Without a key, each call gets a fresh random one: two calls, two notifications.
	a, err1 := c.Publish(ctx, n)
	b, err2 := c.Publish(ctx, n)
	if err1 != nil || err2 != nil || a == b {
		t.Fatalf("generated keys: %q %v, %q %v", a, err1, b, err2)
	}
	seen := rec.seen()
	if len(seen) != 5 {
		t.Fatalf("%d attempts, want 5 (no retry of a 422)", len(seen))
	}
	if k3, k4 := seen[3].idemKey, seen[4].idemKey; k3 == "" || k3 == k4 || k3 == "order-1234-paid" {
		t.Fatalf("generated keys %q, %q", k3, k4)
	}
	if got := h.inbox(userToken(t, "acme", "alice", "")); len(got) != 3 {
		t.Fatalf("alice has %d notifications, want 3", len(got))
	}

	// An invalid key is the caller's mistake: 400.
	_, err = c.Publish(ctx, n, client.IdempotencyKey("has space"))
	if !errors.As(err, &herr) || herr.Status != 400 {
		t.Fatalf("bad key: %v", err)
	}
}

func TestErrorsAreTypedAndNeverRetried(t *testing.T) {
	h := startHerald(t)
	n := client.Notification{Tenant: "acme", To: client.ToUsers("alice"), Type: "t", Title: "x"}
	hex16 := regexp.MustCompile(`^[0-9a-f]{16}$`)
	for _, tc := range []struct {
		name   string
		key    string
		n      client.Notification
		status int
		code   string
	}{
		{"unknown key", "not-a-key-0123456789", n, 401, client.CodeUnauthorized},
		{"invalid notification", publishKey, client.Notification{Tenant: "acme", To: client.ToUsers("alice"), Type: "t"}, 400, client.CodeInvalidRequest},
		{"no audience", publishKey, client.Notification{Tenant: "acme", Type: "t", Title: "x"}, 400, client.CodeInvalidRequest},
		{"two audiences", publishKey, client.Notification{Tenant: "acme", To: client.Audience{Users: []string{"a"}, Tenant: true}, Type: "t", Title: "x"}, 400, client.CodeInvalidRequest},
		{"data not an object", publishKey, client.Notification{Tenant: "acme", To: client.ToTenant(), Type: "t", Title: "x", Data: []int{1}}, 400, client.CodeInvalidRequest},
		{"scoped key, other tenant", scopedKey, client.Notification{Tenant: "globex", To: client.ToTenant(), Type: "t", Title: "x"}, 403, client.CodeForbidden},
		{"body too large", publishKey, client.Notification{Tenant: "acme", To: client.ToTenant(), Type: "t", Title: "x", Data: map[string]string{"pad": strings.Repeat("x", 70<<10)}}, 413, client.CodeTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := newRecorder(t)
			c := newClient(t, h.base, tc.key, client.WithHTTPClient(rec.client()))
			_, err := c.Publish(context.Background(), tc.n)
			var herr *client.Error
			if !errors.As(err, &herr) {
				t.Fatalf("err = %v, want *client.Error", err)
			}
			if herr.Status != tc.status || herr.Code != tc.code || herr.Message == "" || !hex16.MatchString(herr.CorrelationID) || herr.Temporary() {
				t.Fatalf("err = %#v", herr)
			}
			if !strings.Contains(err.Error(), herr.CorrelationID) {
				t.Fatalf("Error() = %q lacks the correlation id", err)
			}
			if got := len(rec.seen()); got != 1 {
				t.Fatalf("sent %d times; a %d must not be retried", got, tc.status)
			}
		})
	}
	// A scoped key's tenant is the default.
	c := newClient(t, h.base, scopedKey)
	if _, err := c.Publish(context.Background(), client.Notification{To: client.ToUsers("alice"), Type: "t", Title: "scoped"}); err != nil {
		t.Fatal(err)
	}
	if got := h.inbox(userToken(t, "acme", "alice", "")); len(got) != 1 || got[0].Title != "scoped" {
		t.Fatalf("alice sees %+v", got)
	}
}

// A real 429 (the node's per-key publish rate) is retried after the
// server's Retry-After, with the same key and body.
func TestRetriesRateLimitHonouringRetryAfter(t *testing.T) {
	h := startHerald(t, func(c *node.Config) { c.Limits.PublishRate = limit.Rate{Per: 2, Burst: 1} })
	rec := newRecorder(t)
	c := newClient(t, h.base, publishKey, client.WithHTTPClient(rec.client()))
	n := client.Notification{Tenant: "acme", To: client.ToUsers("alice"), Type: "t", Title: "x"}
	ctx := context.Background()
	if _, err := c.Publish(ctx, n); err != nil { // takes the burst
		t.Fatal(err)
	}
	start := time.Now()
	id, err := c.Publish(ctx, n)
	if err != nil {
		t.Fatalf("publish over the rate: %v", err)
	}
	seen := rec.seen()[1:]
	if len(seen) != 2 || seen[0].status != 429 || seen[1].status != 201 {
		t.Fatalf("attempts %+v, want 429 then 201", seen)
	}
	if gap := seen[1].at.Sub(seen[0].at); gap < time.Second {
		t.Fatalf("retried after %v, before the server's Retry-After: 1", gap)
	}
	if seen[0].idemKey == "" || seen[0].idemKey != seen[1].idemKey || seen[0].body != seen[1].body {
		t.Fatalf("the retry changed the key or body: %+v", seen)
	}
	t.Logf("429 then 201 after %v", time.Since(start).Round(time.Millisecond))
	if got := h.inbox(userToken(t, "acme", "alice", "")); len(got) != 2 || got[0].ID != id {
		t.Fatalf("alice sees %+v", got)
	}

	// Without retries the 429 is the caller's, with its advice.
	c = newClient(t, h.base, publishKey, client.WithRetry(client.RetryPolicy{MaxAttempts: 1}))
	_, err = c.Publish(ctx, n)
	var herr *client.Error
	if !errors.As(err, &herr) || herr.Status != 429 || herr.Code != client.CodeRateLimited || herr.RetryAfter != time.Second || !herr.Temporary() {
		t.Fatalf("err = %v", err)
	}
	// A deadline shorter than the Retry-After ends the call at once with the 429.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	c = newClient(t, h.base, publishKey)
	start = time.Now()
	_, err = c.Publish(short, n)
	if !errors.As(err, &herr) || herr.Status != 429 || time.Since(start) > 250*time.Millisecond {
		t.Fatalf("err = %v after %v", err, time.Since(start))
	}
}

// A real 503: the node's store is locked (another SQLite connection holds
// the write lock), so the publish is not committed within the node's
// publish timeout. The client retries with the same Idempotency-Key once
// the lock is gone, and exactly one notification is stored.
func TestRetriesUnavailableWithTheSameKey(t *testing.T) {
	h := startHerald(t, func(c *node.Config) { c.API.PublishTimeout = 300 * time.Millisecond })
	db, err := sql.Open("sqlite", "file:"+h.db+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	lock, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if _, err := lock.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatalf("taking the write lock: %v", err)
	}
	var release sync.Once
	unlock := func() {
		release.Do(func() {
			if _, err := lock.ExecContext(ctx, "ROLLBACK"); err != nil {
				t.Errorf("releasing the write lock: %v", err)
			}
		})
	}
	defer unlock()

	rec := newRecorder(t)
	rec.onResult = func(a attempt) {
		if a.status == http.StatusServiceUnavailable {
			unlock()
		}
	}
	c := newClient(t, h.base, publishKey, client.WithHTTPClient(rec.client()))
	id, err := c.Publish(ctx, client.Notification{Tenant: "acme", To: client.ToUsers("alice"), Type: "t", Title: "through a 503"})
	if err != nil {
		t.Fatalf("publish: %v (attempts %+v)", err, rec.seen())
	}
	seen := rec.seen()
	if len(seen) < 2 || seen[0].status != 503 || seen[len(seen)-1].status != 201 {
		t.Fatalf("attempts %+v, want 503 … 201", seen)
	}
	if gap := seen[1].at.Sub(seen[0].at); gap < time.Second {
		t.Fatalf("retried after %v, before the server's Retry-After: 1", gap)
	}
	for _, a := range seen[1:] {
		if a.idemKey != seen[0].idemKey || a.body != seen[0].body {
			t.Fatalf("a retry changed the key or body: %+v", seen)
		}
	}
	got := h.inbox(userToken(t, "acme", "alice", ""))
	if len(got) != 1 || got[0].ID != id {
		t.Fatalf("alice sees %+v, want exactly %s", got, id)
	}
	// Either outcome of the timed-out attempt is correct: committed late
	// (the retry is a replay) or dropped (the retry stores it).
	t.Logf("attempts %d; the retry was an idempotent replay: %v", len(seen), seen[len(seen)-1].replayed)
}

// A network failure (nothing listens yet) is retried: the publish lands
// once the node is up.
func TestRetriesNetworkErrors(t *testing.T) {
	n, err := node.New(context.Background(), nodeConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	addr := reservePort(t)
	served := make(chan error, 1)
	var once sync.Once
	rec := newRecorder(t)
	rec.onResult = func(a attempt) {
		if a.err == nil {
			return
		}
		once.Do(func() {
			l, err := net.Listen("tcp", addr)
			if err != nil {
				t.Errorf("listen on %s: %v", addr, err)
				served <- nil
				return
			}
			go func() { served <- n.Serve(l) }()
		})
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		once.Do(func() { served <- nil })
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	c := newClient(t, "http://"+addr, publishKey, client.WithHTTPClient(rec.client()),
		client.WithRetry(client.RetryPolicy{MaxAttempts: 8, BaseDelay: 100 * time.Millisecond}))
	id, err := c.Publish(context.Background(), client.Notification{Tenant: "acme", To: client.ToUsers("alice"), Type: "t", Title: "x"})
	if err != nil || !ulid.MatchString(id) {
		t.Fatalf("publish: %q, %v (attempts %+v)", id, err, rec.seen())
	}
	seen := rec.seen()
	if seen[0].err == nil || seen[len(seen)-1].status != 201 {
		t.Fatalf("attempts %+v, want a network error first and 201 last", seen)
	}
}

func TestRevocations(t *testing.T) {
	h := startHerald(t)
	admin := newClient(t, h.base, adminKey)
	ctx := context.Background()
	// A token issued a second ago: tokens from the revocation's own second
	// are accepted (iat has second precision).
	now := time.Now()
	old := testkit.Token(t, []byte(testSecret), map[string]any{"sub": "mallory", "tenant_id": "acme",
		"iat": now.Add(-time.Second).Unix(), "exp": now.Add(time.Hour).Unix()})
	if status, _ := h.get("/v1/me/unread-count", old); status != 200 {
		t.Fatalf("before revocation: %d", status)
	}

	at, err := admin.RevokeUser(ctx, "acme", "mallory")
	if err != nil || time.Since(at) > time.Minute {
		t.Fatalf("revoke user: %v, %v", at, err)
	}
	if status, _ := h.get("/v1/me/unread-count", old); status != 401 {
		t.Fatalf("revoked user's token: %d, want 401", status)
	}
	if err := admin.LiftUserRevocation(ctx, "acme", "mallory"); err != nil {
		t.Fatalf("lift: %v", err)
	}
	if status, _ := h.get("/v1/me/unread-count", old); status != 200 {
		t.Fatalf("after lifting: %d", status)
	}
	// Lifting what does not exist succeeds; identifiers are path-escaped.
	if err := admin.LiftUserRevocation(ctx, "acme", "no such/user"); err != nil {
		t.Fatalf("lift unknown: %v", err)
	}

	// One token by its jti.
	exp := time.Now().Add(time.Hour)
	tok := testkit.Token(t, []byte(testSecret), map[string]any{"sub": "trent", "tenant_id": "acme", "jti": "leaked-1", "exp": exp.Unix()})
	if _, err := admin.RevokeToken(ctx, "leaked-1", exp); err != nil {
		t.Fatalf("revoke token: %v", err)
	}
	if status, _ := h.get("/v1/me/unread-count", tok); status != 401 {
		t.Fatalf("revoked token: %d, want 401", status)
	}
	if status, _ := h.get("/v1/me/unread-count", userToken(t, "acme", "trent", "")); status != 200 {
		t.Fatalf("the user's other token: %d", status)
	}

	// A publish key is not an admin key; a bad request is the caller's.
	var herr *client.Error
	if _, err := newClient(t, h.base, publishKey).RevokeUser(ctx, "acme", "x"); !errors.As(err, &herr) || herr.Status != 403 || herr.Code != client.CodeForbidden {
		t.Fatalf("publish key on the admin API: %v", err)
	}
	if _, err := admin.RevokeToken(ctx, "past", time.Now().Add(-time.Hour)); !errors.As(err, &herr) || herr.Status != 400 {
		t.Fatalf("jti with a past exp: %v", err)
	}
}
