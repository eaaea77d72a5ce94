package store

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/notification"
)

// outboxUnderTest is an engine with the outbox and its fake clock.
type outboxUnderTest interface {
	Store
	Outbox
	clockedStore
}

// runOutboxContract runs the Outbox contract against an engine.
func runOutboxContract(t *testing.T, open func(t *testing.T) outboxUnderTest) {
	t.Run("ClaimFinish", func(t *testing.T) { testOutboxClaimFinish(t, open(t)) })
	t.Run("LeaseTakeover", func(t *testing.T) { testOutboxLeaseTakeover(t, open(t)) })
	t.Run("Fallback", func(t *testing.T) { testOutboxFallback(t, open(t)) })
	t.Run("Endpoints", func(t *testing.T) { testOutboxEndpoints(t, open(t)) })
}

func claim(t *testing.T, s Outbox, owner string, limit int) []WebhookEvent {
	t.Helper()
	evs, err := s.ClaimWebhooks(context.Background(), owner, time.Minute, limit)
	if err != nil {
		t.Fatalf("claim: %v", err)
	}
	return evs
}

func eventIDs(evs []WebhookEvent) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

func testOutboxClaimFinish(t *testing.T, s outboxUnderTest) {
	ctx := context.Background()
	clk := s.fakeClock()
	evs := []WebhookEvent{
		{Tenant: "t", User: "a", Type: WebhookUserOnline, Payload: []byte(`{"n":1}`)},
		{Tenant: "t", User: "b", Type: WebhookUserOnline, Payload: []byte(`{"n":2}`), DueAt: clk.Now().Add(-time.Second)},
		{Tenant: "t", User: "c", Type: WebhookUserOffline, Payload: []byte(`{"n":3}`)},
	}
	if err := s.EnqueueWebhooks(ctx, evs); err != nil {
		t.Fatal(err)
	}
	if b, err := s.WebhookBacklog(ctx); err != nil || b.Depth != 3 || !b.Oldest.Equal(clk.Now().Truncate(time.Millisecond)) {
		t.Fatalf("backlog %+v, %v", b, err)
	}
	first := claim(t, s, "A", 2)
	if len(first) != 2 || first[0].User != "b" || string(first[0].Payload) != `{"n":2}` || first[0].Attempts != 0 {
		t.Fatalf("first claim %+v", first)
	}
	second := claim(t, s, "B", 10)
	if len(second) != 1 || slices.Contains(eventIDs(first), second[0].ID) {
		t.Fatalf("second claim %+v overlaps %v", second, eventIDs(first))
	}
	if again := claim(t, s, "C", 10); len(again) != 0 {
		t.Fatalf("leased rows claimed again: %+v", again)
	}
	wantErr(t, s.FinishWebhook(ctx, first[0].ID, "B"), ErrLeaseLost)
	if err := s.FinishWebhook(ctx, first[0].ID, "A"); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishWebhook(ctx, second[0].ID, "B"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.FinishWebhook(ctx, first[0].ID, "A"), ErrLeaseLost)

	// A failed attempt: due later, counted, same id and body.
	if err := s.ReleaseWebhook(ctx, first[1].ID, "A", clk.Now().Add(time.Minute), true, "status 503"); err != nil {
		t.Fatal(err)
	}
	if got := claim(t, s, "C", 10); len(got) != 0 {
		t.Fatalf("claimed before due: %+v", got)
	}
	clk.Advance(time.Minute)
	got := claim(t, s, "C", 10)
	if len(got) != 1 || got[0].ID != first[1].ID || got[0].Attempts != 1 || string(got[0].Payload) != string(first[1].Payload) {
		t.Fatalf("retry claim %+v, want %s with 1 attempt", got, first[1].ID)
	}
	// A deferral counts no attempt; a restart under the same owner takes
	// its leases back at once.
	if err := s.ReleaseWebhook(ctx, got[0].ID, "C", clk.Now(), false, ""); err != nil {
		t.Fatal(err)
	}
	got = claim(t, s, "C", 10)
	if len(got) != 1 || got[0].Attempts != 1 {
		t.Fatalf("after deferral %+v", got)
	}
	if err := s.ReleaseWebhookLeases(ctx, "C"); err != nil {
		t.Fatal(err)
	}
	if got := claim(t, s, "D", 10); len(got) != 1 {
		t.Fatalf("after releasing C's leases: %+v", got)
	}
	if err := s.ReleaseWebhookLeases(ctx, ""); err != nil { // every lease
		t.Fatal(err)
	}
	if got := claim(t, s, "E", 10); len(got) != 1 {
		t.Fatalf("after releasing every lease: %+v", got)
	}
	_, err := s.ClaimWebhooks(ctx, "", time.Minute, 1)
	wantErr(t, err, ErrInvalid)
	wantErr(t, s.EnqueueWebhooks(ctx, []WebhookEvent{{Tenant: "", Type: "x"}}), ErrInvalid)
}

func testOutboxLeaseTakeover(t *testing.T, s outboxUnderTest) {
	ctx := context.Background()
	clk := s.fakeClock()
	if err := s.EnqueueWebhooks(ctx, []WebhookEvent{{Tenant: "t", User: "a", Type: WebhookUserOnline, Payload: []byte(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	a := claim(t, s, "A", 1)
	clk.Advance(59 * time.Second)
	if got := claim(t, s, "B", 1); len(got) != 0 {
		t.Fatalf("claimed inside the lease: %+v", got)
	}
	clk.Advance(2 * time.Second) // A died: its lease ran out
	b := claim(t, s, "B", 1)
	if len(a) != 1 || len(b) != 1 || a[0].ID != b[0].ID {
		t.Fatalf("takeover: %+v then %+v", a, b)
	}
	wantErr(t, s.ReleaseWebhook(ctx, a[0].ID, "A", clk.Now(), true, "late"), ErrLeaseLost)
	wantErr(t, s.SaveWebhookPayload(ctx, a[0].ID, "A", []byte(`{}`)), ErrLeaseLost)
	if err := s.FinishWebhook(ctx, b[0].ID, "B"); err != nil {
		t.Fatal(err)
	}
}

func testOutboxFallback(t *testing.T, s outboxUnderTest) {
	ctx := context.Background()
	clk := s.fakeClock()
	d := toUsers("t", "alice", "bob", "alice", "carol")
	d.FallbackAfter = 30 * time.Second
	plain := toUsers("t", "alice")
	res := publish(t, s, d, plain)
	id := res.IDs[0]
	if got := claim(t, s, "A", 10); len(got) != 0 {
		t.Fatalf("fallback due at once: %+v", got)
	}
	// The receiver's view decides: alice reads it, bob deletes it, carol
	// does nothing.
	if _, err := s.MarkRead(ctx, rcp("t", "alice", ""), []string{id}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete(ctx, rcp("t", "bob", ""), id); err != nil {
		t.Fatal(err)
	}
	clk.Advance(30 * time.Second)
	got := claim(t, s, "A", 10)
	users := []string{}
	for _, e := range got {
		if e.Type != WebhookNotificationUnseen || e.NotificationID != id || e.Payload != nil || e.Tenant != "t" ||
			!e.CreatedAt.Equal(res.Events[0].Notification.CreatedAt.Add(30*time.Second)) {
			t.Fatalf("unseen row %+v", e)
		}
		users = append(users, e.User)
	}
	slices.Sort(users)
	if !slices.Equal(users, []string{"alice", "bob", "carol"}) {
		t.Fatalf("one row per distinct user: %v", users)
	}
	for user, want := range map[string]bool{"alice": false, "bob": false, "carol": true, "dave": false} {
		it, unseen, err := s.Unseen(ctx, rcp("t", user, ""), id)
		if err != nil || unseen != want || (want && (it.ID != id || it.Title != d.Title)) {
			t.Fatalf("unseen(%s) = %v, %+v, %v; want %v", user, unseen, it, err, want)
		}
	}
	if _, unseen, err := s.Unseen(ctx, rcp("other", "carol", ""), id); err != nil || unseen {
		t.Fatalf("another tenant sees it unseen: %v %v", unseen, err)
	}
	_, _, err := s.Unseen(ctx, rcp("t", "carol", ""), "not-an-id")
	wantErr(t, err, ErrInvalid)
	// The payload, once saved, comes back with every later claim.
	if err := s.SaveWebhookPayload(ctx, got[0].ID, "A", []byte(`{"p":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.ReleaseWebhook(ctx, got[0].ID, "A", clk.Now(), true, "down"); err != nil {
		t.Fatal(err)
	}
	again := claim(t, s, "B", 10)
	if len(again) != 1 || string(again[0].Payload) != `{"p":1}` {
		t.Fatalf("payload kept: %+v", again)
	}
	// Fallback only for explicit users; an expired item is not unseen.
	bad := toTenant("t")
	bad.FallbackAfter = time.Second
	_, err = s.Publish(ctx, PublishRequest{Drafts: []notification.Draft{bad}})
	wantErr(t, err, ErrInvalid)
	exp := toUsers("t", "erin")
	exp.FallbackAfter, exp.ExpiresAt = time.Second, clk.Now().Add(time.Second)
	eid := publish(t, s, exp).IDs[0]
	clk.Advance(2 * time.Second)
	if _, unseen, err := s.Unseen(ctx, rcp("t", "erin", ""), eid); err != nil || unseen {
		t.Fatalf("expired item unseen: %v %v", unseen, err)
	}
}

func testOutboxEndpoints(t *testing.T, s outboxUnderTest) {
	ctx := context.Background()
	for _, e := range []WebhookEndpoint{
		{Tenant: "b", URL: "https://b.example/hook", Secret: "whsec_MTIz"},
		{Tenant: "a", URL: "https://a.example/hook", Secret: "whsec_MTIz"},
		{Tenant: "a", URL: "https://a2.example/hook", Secret: "whsec_NDU2"},
	} {
		if err := s.PutWebhookEndpoint(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.WebhookEndpoints(ctx)
	if err != nil || len(got) != 2 || got[0].Tenant != "a" || got[0].URL != "https://a2.example/hook" ||
		got[0].Secret != "whsec_NDU2" || got[0].UpdatedAt.IsZero() {
		t.Fatalf("endpoints %+v, %v", got, err)
	}
	if err := s.DeleteWebhookEndpoint(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.DeleteWebhookEndpoint(ctx, "a"), ErrNotFound)
	wantErr(t, s.PutWebhookEndpoint(ctx, WebhookEndpoint{Tenant: "a"}), ErrInvalid)
	if got, _ := s.WebhookEndpoints(ctx); len(got) != 1 {
		t.Fatalf("after delete: %+v", got)
	}
}

// checkClaimsDisjoint: senders claiming from several handles at once never
// get the same row (PostgreSQL: FOR UPDATE SKIP LOCKED).
func checkClaimsDisjoint(t *testing.T, handles []Outbox, rows int) {
	ctx := context.Background()
	evs := make([]WebhookEvent, rows)
	for i := range evs {
		evs[i] = WebhookEvent{Tenant: "t", User: "u", Type: WebhookUserOnline, Payload: []byte(`{}`)}
	}
	if err := handles[0].EnqueueWebhooks(ctx, evs); err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex
		seen = map[string]int{}
		errs []error
	)
	runTogether(len(handles)*2, func(i int) {
		h := handles[i%len(handles)]
		for {
			got, err := h.ClaimWebhooks(ctx, "node"+string(rune('A'+i)), time.Minute, 7)
			mu.Lock()
			if err != nil {
				errs = append(errs, err)
			}
			for _, e := range got {
				seen[e.ID]++
			}
			mu.Unlock()
			if err != nil || len(got) == 0 {
				return
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if len(seen) != rows {
		t.Fatalf("claimed %d distinct rows, want %d", len(seen), rows)
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("row %s claimed %d times", id, n)
		}
	}
}
