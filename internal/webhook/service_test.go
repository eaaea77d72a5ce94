package webhook

import (
	"context"
	"encoding/json"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/heraldhq/herald/internal/notification"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/testkit"
)

func bodyIDs(bs []Body) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b.ID
	}
	sort.Strings(out)
	return out
}

func TestDeliverSigned(t *testing.T) {
	secret := NewSecret()
	rcv := newReceiver(t, secret)
	reg := prometheus.NewRegistry()
	cfg := fastConfig(rcv.URL, secret)
	cfg.Registerer = reg
	s := start(t, cfg, openSQLite(t, ""))
	emit(t, s, online("t1", "alice"), Body{Type: store.WebhookUserOffline, Tenant: "t1", User: "bob"})
	testkit.Eventually(t, 5*time.Second, func() bool { return len(rcv.delivered()) == 2 }, "2 deliveries")
	got := rcv.delivered()
	types := []string{got[0].Type, got[1].Type}
	slices.Sort(types)
	if !slices.Equal(types, []string{"user.offline", "user.online"}) || got[0].Tenant != "t1" || got[0].CreatedAt.IsZero() ||
		!strings.HasPrefix(got[0].ID, "msg_") {
		t.Fatalf("deliveries %+v", got)
	}
	testkit.Eventually(t, 5*time.Second, func() bool {
		return testutil.ToFloat64(s.m.attempts.WithLabelValues("ok")) == 2 && testutil.ToFloat64(s.m.depth) == 0
	}, "metrics: 2 ok attempts, empty queue")
}

// TestReceiverDownThenUp: every event reaches a receiver that was down for
// many attempts, each with the id it was first sent with.
func TestReceiverDownThenUp(t *testing.T) {
	secret := NewSecret()
	rcv := newReceiver(t, secret)
	rcv.Fail.Store(true)
	reg := prometheus.NewRegistry()
	cfg := fastConfig(rcv.URL, secret)
	cfg.Registerer = reg
	s := start(t, cfg, openSQLite(t, ""))
	var want []string
	for i := range 5 {
		b := online("t1", "u"+string(rune('a'+i)))
		b.ID = NewID()
		want = append(want, b.ID)
		emit(t, s, b)
	}
	slices.Sort(want)
	testkit.Eventually(t, 10*time.Second, func() bool {
		for _, id := range want {
			if rcv.Attempts(id) < 3 {
				return false
			}
		}
		return true
	}, "3 failed attempts of every event")
	// The receiver sees an attempt before the sender has read its answer
	// and counted the failure: wait for the count, too.
	testkit.Eventually(t, 5*time.Second, func() bool { return testutil.ToFloat64(s.m.failures.WithLabelValues("503")) >= 15 },
		"failures counted by status")
	testkit.Eventually(t, 5*time.Second, func() bool { return testutil.ToFloat64(s.m.oldest) > 0 }, "oldest pending age")
	rcv.Fail.Store(false)
	testkit.Eventually(t, 10*time.Second, func() bool { return len(rcv.delivered()) == 5 }, "5 deliveries")
	if got := bodyIDs(rcv.delivered()); !slices.Equal(got, want) {
		t.Fatalf("delivered ids %v, want %v", got, want)
	}
	for id := range rcv.Tries() {
		if !slices.Contains(want, id) {
			t.Fatalf("an attempt with an unknown id %s: retries must keep the id", id)
		}
	}
}

// TestRestartMidRetry: a node stopped while its receiver is down, then
// started again on the same database, delivers everything with the same ids.
func TestRestartMidRetry(t *testing.T) {
	secret := NewSecret()
	rcv := newReceiver(t, secret)
	rcv.Fail.Store(true)
	path := filepath.Join(t.TempDir(), "herald.db")
	st, err := store.OpenSQLite(context.Background(), store.SQLiteConfig{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(fastConfig(rcv.URL, secret), st)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	b := online("t1", "alice")
	b.ID = NewID()
	emit(t, s, b)
	testkit.Eventually(t, 5*time.Second, func() bool { return rcv.Attempts(b.ID) >= 2 }, "2 failed attempts")
	_ = s.Close()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	rcv.Fail.Store(false)
	start(t, fastConfig(rcv.URL, secret), openSQLite(t, path))
	testkit.Eventually(t, 5*time.Second, func() bool { return len(rcv.delivered()) == 1 }, "delivery after restart")
	if got := rcv.delivered()[0].ID; got != b.ID {
		t.Fatalf("delivered %s after restart, want %s", got, b.ID)
	}
}

// TestPerEndpointBound: a slow receiver never has more than PerEndpoint
// requests of this node in flight, and nothing is lost.
func TestPerEndpointBound(t *testing.T) {
	secret := NewSecret()
	rcv := newReceiver(t, secret)
	hold := make(chan struct{})
	rcv.Hold(hold)
	cfg := fastConfig(rcv.URL, secret)
	cfg.PerEndpoint = 2
	s := start(t, cfg, openSQLite(t, ""))
	var bodies []Body
	for i := range 12 {
		bodies = append(bodies, online("t1", "u"+string(rune('a'+i))))
	}
	emit(t, s, bodies...)
	testkit.Eventually(t, 5*time.Second, func() bool { return rcv.InFlight() == 2 }, "2 requests held")
	close(hold)
	testkit.Eventually(t, 10*time.Second, func() bool { return len(rcv.delivered()) == 12 }, "12 deliveries")
	if p := rcv.Peak(); p > 2 {
		t.Fatalf("%d requests in flight at once, bound is 2", p)
	}
}

// TestRetryWindow: an event past its retry window is dropped and counted.
func TestRetryWindow(t *testing.T) {
	secret := NewSecret()
	rcv := newReceiver(t, secret)
	rcv.Fail.Store(true)
	cfg := fastConfig(rcv.URL, secret)
	cfg.RetryWindow = 150 * time.Millisecond
	st := openSQLite(t, "")
	s := start(t, cfg, st)
	emit(t, s, online("t1", "alice"))
	testkit.Eventually(t, 5*time.Second, func() bool { return testutil.ToFloat64(s.m.dropped.WithLabelValues("expired")) == 1 }, "drop")
	if b, err := st.WebhookBacklog(context.Background()); err != nil || b.Depth != 0 {
		t.Fatalf("backlog after drop %+v %v", b, err)
	}
}

// TestFallbackOnlyWhenUnseen: notification.unseen reaches the receiver for
// a recipient who has not read the notification, and not for one who has.
func TestFallbackOnlyWhenUnseen(t *testing.T) {
	secret := NewSecret()
	rcv := newReceiver(t, secret)
	st := openSQLite(t, "")
	s := start(t, fastConfig(rcv.URL, secret), st)
	ctx := context.Background()
	res, err := st.Publish(ctx, store.PublishRequest{Drafts: []notification.Draft{{Tenant: "t1", Type: "invoice", Title: "Invoice",
		Audience: notification.Audience{Kind: notification.AudienceUsers, Users: []string{"alice", "bob"}}, FallbackAfter: 300 * time.Millisecond}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.MarkRead(ctx, notification.Recipient{Tenant: "t1", User: "alice"}, res.IDs); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 5*time.Second, func() bool {
		return testutil.ToFloat64(s.m.unseen.WithLabelValues("seen")) == 1 && len(rcv.delivered()) == 1
	}, "bob's fallback")
	got := rcv.delivered()[0]
	var n struct{ ID, Title string }
	if err := json.Unmarshal(got.Notification, &n); err != nil {
		t.Fatalf("fallback notification %s: %v", got.Notification, err)
	}
	if got.Type != "notification.unseen" || got.User != "bob" || n.ID != res.IDs[0] || n.Title != "Invoice" {
		t.Fatalf("fallback %+v", got)
	}
}

// TestTenantEndpoint: a tenant with its own endpoint gets its events
// there, signed with its own secret; others use the global one.
func TestTenantEndpoint(t *testing.T) {
	gsecret, tsecret := NewSecret(), NewSecret()
	global, own := newReceiver(t, gsecret), newReceiver(t, tsecret)
	st := openSQLite(t, "")
	if err := st.PutWebhookEndpoint(context.Background(), store.WebhookEndpoint{Tenant: "acme", URL: own.URL, Secret: tsecret}); err != nil {
		t.Fatal(err)
	}
	s := start(t, fastConfig(global.URL, gsecret), st)
	emit(t, s, online("acme", "a"), online("other", "b"))
	testkit.Eventually(t, 5*time.Second, func() bool { return len(global.delivered()) == 1 && len(own.delivered()) == 1 }, "one each")
	if global.delivered()[0].Tenant != "other" || own.delivered()[0].Tenant != "acme" {
		t.Fatalf("routing: global %+v, tenant %+v", global.delivered(), own.delivered())
	}
}

// TestTwoSendersPostgres: two nodes sending from one PostgreSQL outbox
// deliver each event exactly once; rows claimed by a node that died are
// taken over when its lease runs out.
func TestTwoSendersPostgres(t *testing.T) {
	url, schema := testkit.PostgresURL(t), testkit.PostgresSchema(t)
	open := func() *store.Postgres {
		s, err := store.OpenPostgres(context.Background(), store.PostgresConfig{URL: url, Schema: schema, MaxConns: 4})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	secret := NewSecret()
	rcv := newReceiver(t, secret)
	a, b := open(), open()
	ctx := context.Background()
	// A node that claimed 5 rows and died.
	var orphans []store.WebhookEvent
	for i := range 5 {
		orphans = append(orphans, store.WebhookEvent{Tenant: "t", User: "dead" + string(rune('a'+i)), Type: store.WebhookUserOnline, Payload: []byte(`{}`)})
	}
	if err := a.EnqueueWebhooks(ctx, orphans); err != nil {
		t.Fatal(err)
	}
	if got, err := a.ClaimWebhooks(ctx, "dead-node", 700*time.Millisecond, 10); err != nil || len(got) != 5 {
		t.Fatalf("orphan claim %d, %v", len(got), err)
	}
	cfgA, cfgB := fastConfig(rcv.URL, secret), fastConfig(rcv.URL, secret)
	cfgB.Owner = "node-b"
	sa, sb := start(t, cfgA, a), start(t, cfgB, b)
	for i := range 40 {
		emit(t, []*Service{sa, sb}[i%2], online("t", "u"+string(rune('a'+i%26))+string(rune('a'+i/26))))
	}
	testkit.Eventually(t, 15*time.Second, func() bool { return rcv.TotalAttempts() >= 45 }, "45 deliveries")
	_ = sa.Close()
	_ = sb.Close()
	tries := rcv.Tries()
	if len(tries) != 45 {
		t.Fatalf("%d distinct ids delivered, want 45", len(tries))
	}
	for id, n := range tries {
		if n != 1 {
			t.Fatalf("%s delivered %d times", id, n)
		}
	}
}

// The notification in a webhook body has every field the user API shows.
func TestBodyNotificationHasTheUserAPIFields(t *testing.T) {
	created := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	n := &notification.Notification{ID: "01J", Type: "invoice.due", Title: "Due <soon>", Body: "b", Data: json.RawMessage(`{"amount":42}`),
		CreatedAt: created, ExpiresAt: created.Add(time.Hour), Category: "billing", CollapseKey: "inv-7"}
	b := Body{ID: "msg_1", Type: store.WebhookNotificationUnseen, CreatedAt: created, Tenant: "t1", User: "bob", Notification: notificationJSON(n, false)}
	var got struct {
		Notification map[string]any `json:"notification"`
	}
	if err := json.Unmarshal(b.Encode(), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"id": "01J", "type": "invoice.due", "title": "Due <soon>", "body": "b", "data": map[string]any{"amount": float64(42)},
		"created_at": "2026-12-06T12:00:00Z", "expires_at": "2026-12-06T13:00:00Z", "category": "billing", "collapse_key": "inv-7", "read": false}
	if !reflect.DeepEqual(got.Notification, want) {
		t.Fatalf("notification = %v\nwant %v", got.Notification, want)
	}
}
