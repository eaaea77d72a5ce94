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

// Engine-neutral helpers of the contract tests.

// testClock is a settable clock. Engines under test are opened with its Now
// so the contract can move time (expiry) without sleeping.
type testClock struct {
	mu  sync.Mutex
	now time.Time // guarded by mu
}

func newTestClock() *testClock {
	return &testClock{now: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Optional capabilities of an engine under test, found by type assertion.
type (
	// clockedStore exposes the clock the engine was opened with.
	clockedStore interface{ fakeClock() *testClock }
	// sweepingStore runs the expiry sweep synchronously.
	sweepingStore interface {
		sweepNow(ctx context.Context) (int, error)
	}
	// loggingStore records what the engine handed to OnCommit.
	loggingStore interface{ committedLog() *eventLog }
)

// eventLog records the events an engine hands to OnCommit.
type eventLog struct {
	mu  sync.Mutex
	evs []*notification.Event
}

func (l *eventLog) add(evs []*notification.Event) {
	l.mu.Lock()
	l.evs = append(l.evs, evs...)
	l.mu.Unlock()
}

// take returns the events of kind recorded so far and forgets every event.
func (l *eventLog) take(kind notification.EventKind) []*notification.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*notification.Event
	for _, ev := range l.evs {
		if ev.Kind == kind {
			out = append(out, ev)
		}
	}
	l.evs = nil
	return out
}

func rcp(tenant, user, role string) notification.Recipient {
	return notification.Recipient{Tenant: tenant, User: user, Role: role}
}

func toUsers(tenant string, users ...string) notification.Draft {
	return notification.Draft{
		Tenant:   tenant,
		Audience: notification.Audience{Kind: notification.AudienceUsers, Users: users},
		Type:     "test", Title: "to " + users[0], Body: "body",
	}
}

func toTenant(tenant string) notification.Draft {
	return notification.Draft{
		Tenant:   tenant,
		Audience: notification.Audience{Kind: notification.AudienceTenant},
		Type:     "test", Title: "to all", Body: "body",
	}
}

func toRole(tenant, role string) notification.Draft {
	return notification.Draft{
		Tenant:   tenant,
		Audience: notification.Audience{Kind: notification.AudienceRole, Role: role},
		Type:     "test", Title: "to " + role, Body: "body",
	}
}

func publish(t testing.TB, s Store, drafts ...notification.Draft) PublishResult {
	t.Helper()
	res, err := s.Publish(context.Background(), PublishRequest{Drafts: drafts})
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	if len(res.IDs) != len(drafts) || len(res.Events) != len(drafts) || res.Replayed {
		t.Fatalf("publish: %d ids, %d events, replayed %v for %d drafts", len(res.IDs), len(res.Events), res.Replayed, len(drafts))
	}
	return res
}

// advance moves pos past items, per component.
func advance(pos notification.Position, items []notification.Item) notification.Position {
	for _, it := range items {
		if it.Audience.Broadcast() {
			pos.Tenant = max(pos.Tenant, it.Seq)
		} else {
			pos.User = max(pos.User, it.Seq)
		}
	}
	return pos
}

// sinceAll pages through Since from pos with the given page size, checking
// that every page advances each component strictly.
func sinceAll(t testing.TB, s Store, r notification.Recipient, pos notification.Position, limit int) []notification.Item {
	t.Helper()
	var all []notification.Item
	for range 100000 {
		items, more, err := s.Since(context.Background(), r, pos, limit)
		if err != nil {
			t.Fatalf("since %v: %v", pos, err)
		}
		if limit > 0 && len(items) > limit {
			t.Fatalf("since: %d items for limit %d", len(items), limit)
		}
		for _, it := range items {
			if it.Seq <= 0 || (it.Audience.Broadcast() && it.Seq <= pos.Tenant) || (!it.Audience.Broadcast() && it.Seq <= pos.User) {
				t.Fatalf("since %v: item %s seq %d kind %v not after position", pos, it.ID, it.Seq, it.Audience.Kind)
			}
		}
		all = append(all, items...)
		next := advance(pos, items)
		if !more {
			return all
		}
		if next == pos {
			t.Fatalf("since %v: more without progress", pos)
		}
		pos = next
	}
	t.Fatal("since: too many pages")
	return nil
}

// listAll pages through List.
func listAll(t testing.TB, s Store, r notification.Recipient, unreadOnly bool) []notification.Item {
	t.Helper()
	var all []notification.Item
	q := ListQuery{Limit: MaxListLimit, UnreadOnly: unreadOnly}
	for range 100000 {
		p, err := s.List(context.Background(), r, q)
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		all = append(all, p.Items...)
		if p.Next == "" {
			return all
		}
		q.Before = p.Next
	}
	t.Fatal("list: too many pages")
	return nil
}

func ids(items []notification.Item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.ID
	}
	return out
}

func sortedIDs(items []notification.Item) []string {
	out := ids(items)
	slices.Sort(out)
	return out
}

// recount is the brute-force unread count: every visible item, not read.
func recount(t testing.TB, s Store, r notification.Recipient) int64 {
	t.Helper()
	var n int64
	for _, it := range listAll(t, s, r, false) {
		if !it.Read {
			n++
		}
	}
	return n
}

func unread(t testing.TB, s Store, r notification.Recipient) int64 {
	t.Helper()
	n, err := s.UnreadCount(context.Background(), r)
	if err != nil {
		t.Fatalf("unread count %v: %v", r, err)
	}
	return n
}

// checkCounts asserts that r's maintained unread counter equals the
// brute-force recount, that the unread-only list agrees, and that Since and
// List show the same set. It returns the count.
func checkCounts(t testing.TB, s Store, r notification.Recipient) int64 {
	t.Helper()
	got, want := unread(t, s, r), recount(t, s, r)
	if got != want {
		t.Fatalf("%v: unread counter %d, recount %d", r, got, want)
	}
	head, err := s.Head(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	if h, n, err := s.HeadCounts(context.Background(), r); err != nil || h != head || n.Unread != got {
		t.Fatalf("%v: HeadCounts = %v, %d, %v; Head %v, unread %d", r, h, n.Unread, err, head, got)
	}
	if n := int64(len(listAll(t, s, r, true))); n != want {
		t.Fatalf("%v: unread-only list has %d items, recount %d", r, n, want)
	}
	if a, b := sortedIDs(sinceAll(t, s, r, notification.Position{}, MaxSinceLimit)), sortedIDs(listAll(t, s, r, false)); !slices.Equal(a, b) {
		t.Fatalf("%v: since shows %d items, list %d", r, len(a), len(b))
	}
	return got
}

func wantErr(t testing.TB, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("err = %v, want %v", err, target)
	}
}
