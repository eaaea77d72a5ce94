package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/notification"
)

// runContract runs the Store contract against an engine. open returns a
// fresh, empty store that is closed when the test ends (Close may also be
// called by the test). Engines that implement clockedStore and
// sweepingStore also get the expiry tests.
func runContract(t *testing.T, open func(t *testing.T) Store) {
	t.Run("Audiences", func(t *testing.T) { testAudiences(t, open(t)) })
	t.Run("DuplicateUsers", func(t *testing.T) { testDuplicateUsers(t, open(t)) })
	t.Run("ConcurrentPositions", func(t *testing.T) { testConcurrentPositions(t, open(t)) })
	t.Run("Idempotency", func(t *testing.T) { testIdempotency(t, open(t)) })
	t.Run("IdempotencyConcurrent", func(t *testing.T) { testIdempotencyConcurrent(t, open(t)) })
	t.Run("Batch1000", func(t *testing.T) { testBatch1000(t, open(t)) })
	t.Run("ReadState", func(t *testing.T) { testReadState(t, open(t)) })
	t.Run("ReadStateRandom", func(t *testing.T) { testReadStateRandom(t, open(t)) })
	t.Run("Isolation", func(t *testing.T) { testIsolation(t, open(t)) })
	t.Run("DeleteIsPerUser", func(t *testing.T) { testDeleteIsPerUser(t, open(t)) })
	t.Run("Expiry", func(t *testing.T) { testExpiry(t, open(t)) })
	t.Run("Closed", func(t *testing.T) { testClosed(t, open(t)) })
	t.Run("CancelledContext", func(t *testing.T) { testCancelledContext(t, open(t)) })
	t.Run("ListPaging", func(t *testing.T) { testListPaging(t, open(t)) })
	t.Run("SinceLimit", func(t *testing.T) { testSinceLimit(t, open(t)) })
	t.Run("Invalid", func(t *testing.T) { testInvalid(t, open(t)) })
	runInboxContract(t, open)
}

func testAudiences(t *testing.T, s Store) {
	ctx := context.Background()
	alice, bob, carol := rcp("t1", "alice", "admin"), rcp("t1", "bob", "user"), rcp("t1", "carol", "")
	other := rcp("t2", "alice", "admin") // same name and role, other tenant

	d0 := toUsers("t1", "alice", "bob")
	d0.Data = json.RawMessage(` {"k":[1,2]} `)
	d0.ExpiresAt = time.Date(2100, 1, 2, 3, 4, 5, 678901234, time.UTC)
	res := publish(t, s, d0, toTenant("t1"), toRole("t1", "admin"), toRole("t1", "user"), toUsers("t1", "carol"))

	// Events.
	ev := res.Events[0]
	if ev.Kind != notification.EventNotification || ev.Tenant != "t1" || ev.TenantSeq != 0 {
		t.Fatalf("event 0: %+v", ev)
	}
	if want := []notification.Delivery{{User: "alice", Seq: 1, Unread: 1}, {User: "bob", Seq: 1, Unread: 1}}; !slices.Equal(ev.Deliveries, want) {
		t.Fatalf("deliveries %+v, want %+v", ev.Deliveries, want)
	}
	n := ev.Notification
	if n.ID != res.IDs[0] || n.Title != "to alice" || string(n.Data) != `{"k":[1,2]}` || n.CreatedAt.IsZero() ||
		!n.ExpiresAt.Equal(d0.ExpiresAt.Truncate(time.Millisecond)) || n.Audience.Kind != notification.AudienceUsers {
		t.Fatalf("notification %+v", n)
	}
	for i, want := range []int64{0, 1, 2, 3, 0} {
		if got := res.Events[i].TenantSeq; got != want {
			t.Fatalf("event %d tenant seq %d, want %d", i, got, want)
		}
	}
	if d := res.Events[4].Deliveries; len(d) != 1 || d[0] != (notification.Delivery{User: "carol", Seq: 1, Unread: 1}) {
		t.Fatalf("carol delivery %+v", d)
	}
	if !strictlyIncreasing(res.IDs) {
		t.Fatalf("ids not strictly increasing: %v", res.IDs)
	}

	tests := []struct {
		r     notification.Recipient
		want  []int // indexes into res.IDs, in stream order
		head  notification.Position
		count int64
	}{
		{alice, []int{0, 1, 2}, notification.Position{User: 1, Tenant: 3}, 3},
		{bob, []int{0, 1, 3}, notification.Position{User: 1, Tenant: 3}, 3},
		{carol, []int{1, 4}, notification.Position{User: 1, Tenant: 3}, 2},
		{rcp("t1", "dave", "admin"), []int{1, 2}, notification.Position{User: 0, Tenant: 3}, 2},
		{other, nil, notification.Position{}, 0},
	}
	for _, tt := range tests {
		var want []string
		for _, i := range tt.want {
			want = append(want, res.IDs[i])
		}
		items := sinceAll(t, s, tt.r, notification.Position{}, 0)
		if got := ids(items); !slices.Equal(got, want) {
			t.Errorf("%v since: %v, want %v", tt.r, got, want)
		}
		for _, it := range items {
			if it.Read || it.Tenant != "t1" || it.Audience.Users != nil {
				t.Errorf("%v since item %+v", tt.r, it)
			}
		}
		slices.Reverse(want)
		if got := ids(listAll(t, s, tt.r, false)); !slices.Equal(got, want) {
			t.Errorf("%v list: %v, want %v", tt.r, got, want)
		}
		head, err := s.Head(ctx, tt.r)
		if err != nil || head != tt.head {
			t.Errorf("%v head %v, %v; want %v", tt.r, head, err, tt.head)
		}
		if got := checkCounts(t, s, tt.r); got != tt.count {
			t.Errorf("%v unread %d, want %d", tt.r, got, tt.count)
		}
		// Nothing after the head.
		if items, more, err := s.Since(ctx, tt.r, head, 10); err != nil || len(items) != 0 || more {
			t.Errorf("%v since head: %d items, more %v, %v", tt.r, len(items), more, err)
		}
	}
	// The stored item equals the published notification.
	items := sinceAll(t, s, alice, notification.Position{}, 1)
	got := items[0].Notification
	if got.ID != n.ID || got.Title != n.Title || got.Body != n.Body || got.Type != n.Type || string(got.Data) != string(n.Data) ||
		!got.CreatedAt.Equal(n.CreatedAt) || !got.ExpiresAt.Equal(n.ExpiresAt) || items[0].Seq != 1 {
		t.Fatalf("stored %+v\npublished %+v", got, n)
	}
	if au := items[2].Audience; au.Kind != notification.AudienceRole || au.Role != "admin" || au.Users != nil || items[2].Seq != 2 {
		t.Fatalf("role item %+v", items[2])
	}
}

func testDuplicateUsers(t *testing.T, s Store) {
	res := publish(t, s, toUsers("t", "dave", "erin", "dave"))
	if d := res.Events[0].Deliveries; len(d) != 2 || d[0].User != "dave" || d[1].User != "erin" {
		t.Fatalf("deliveries %+v", d)
	}
	if got := checkCounts(t, s, rcp("t", "dave", "")); got != 1 {
		t.Fatalf("dave unread %d", got)
	}
}

// testConcurrentPositions publishes from 20 goroutines while tailers follow
// each recipient's stream with Since: every tailer must see exactly the set
// published for its recipient, in strictly increasing order per component.
func testConcurrentPositions(t *testing.T, s Store) {
	const publishers, requests = 20, 15
	recipients := []notification.Recipient{
		rcp("c", "u0", "admin"), rcp("c", "u1", "user"), rcp("c", "u2", ""), rcp("c", "u3", "admin"),
	}
	pub := newPublished(recipients...)
	tailed := make([][]notification.Item, len(recipients))
	tail := func(i int, publishersDone func() bool) {
		r := recipients[i]
		var pos notification.Position
		seen := map[string]bool{}
		for {
			finished := publishersDone()
			items, more, err := s.Since(context.Background(), r, pos, 7)
			if err != nil {
				t.Errorf("tail %v: %v", r, err)
				return
			}
			for _, it := range items {
				if seen[it.ID] {
					t.Errorf("tail %v: duplicate %s", r, it.ID)
				}
				seen[it.ID] = true
				if (it.Audience.Broadcast() && it.Seq <= pos.Tenant) || (!it.Audience.Broadcast() && it.Seq <= pos.User) {
					t.Errorf("tail %v: seq %d not after %v", r, it.Seq, pos)
				}
			}
			tailed[i] = append(tailed[i], items...)
			pos = advance(pos, items)
			if !more {
				if finished {
					return
				}
				time.Sleep(time.Millisecond) // a tailer polls; publishers are the load
			}
		}
	}
	publishRandom := func(p int) {
		rng := rand.New(rand.NewPCG(uint64(p), 1))
		for range requests {
			if !pub.publish(t, s, randomDrafts(rng, recipients)) {
				return
			}
		}
	}
	if !readWhilePublishing(t, len(recipients), tail, publishers, publishRandom) {
		return
	}

	for i, r := range recipients {
		w := pub.sortedIDs(r)
		if got := sortedIDs(tailed[i]); !slices.Equal(got, w) {
			t.Fatalf("tail %v: %d items, want %d", r, len(got), len(w))
		}
		full := sinceAll(t, s, r, notification.Position{}, 0)
		if got := sortedIDs(full); !slices.Equal(got, w) {
			t.Fatalf("since %v from zero: %d items, want %d", r, len(got), len(w))
		}
		var lastUser, lastTenant int64
		for _, it := range full {
			last := &lastUser
			if it.Audience.Broadcast() {
				last = &lastTenant
			}
			if it.Seq <= *last {
				t.Fatalf("since %v: seq %d after %d", r, it.Seq, *last)
			}
			*last = it.Seq
		}
		// Head covers every item; broadcasts for other roles may lie beyond.
		head, err := s.Head(context.Background(), r)
		end := advance(notification.Position{}, full)
		if err != nil || head.User != end.User || head.Tenant < end.Tenant {
			t.Fatalf("head %v = %v, %v; items end at %v", r, head, err, end)
		}
		// Resuming from any intermediate position yields exactly the rest.
		for _, k := range []int{1, 2, 3, len(full) / 3, len(full) / 2, len(full) - 1} {
			if k <= 0 || k >= len(full) {
				continue
			}
			page := 0 // the default
			if k == len(full)/2 {
				page = 5
			}
			rest := sinceAll(t, s, r, advance(notification.Position{}, full[:k]), page)
			if got, want := ids(rest), ids(full[k:]); !slices.Equal(got, want) {
				t.Fatalf("since %v after %d items: %d items, want %d", r, k, len(got), len(want))
			}
		}
		checkCounts(t, s, r)
	}
}

// randomDrafts are one to three drafts to tenant "c": to the tenant, to
// the role admin or user, or to some of recipients (u2 if none).
func randomDrafts(rng *rand.Rand, recipients []notification.Recipient) []notification.Draft {
	var drafts []notification.Draft
	for range 1 + rng.IntN(3) {
		switch rng.IntN(4) {
		case 0:
			drafts = append(drafts, toTenant("c"))
		case 1:
			drafts = append(drafts, toRole("c", []string{"admin", "user"}[rng.IntN(2)]))
		default:
			var us []string
			for _, r := range recipients {
				if rng.IntN(2) == 0 {
					us = append(us, r.User)
				}
			}
			if len(us) == 0 {
				us = []string{"u2"}
			}
			drafts = append(drafts, toUsers("c", us...))
		}
	}
	return drafts
}

func testIdempotency(t *testing.T, s Store) {
	ctx := context.Background()
	req := PublishRequest{Scope: "key1", Key: "k", RequestHash: "h1", Drafts: []notification.Draft{toUsers("t", "a"), toTenant("t")}}
	first, err := s.Publish(ctx, req)
	if err != nil || first.Replayed || len(first.IDs) != 2 {
		t.Fatalf("first: %+v, %v", first, err)
	}
	again, err := s.Publish(ctx, req)
	if err != nil || !again.Replayed || again.Events != nil || !slices.Equal(again.IDs, first.IDs) {
		t.Fatalf("replay: %+v, %v", again, err)
	}
	bad := req
	bad.RequestHash = "h2"
	bad.Drafts = []notification.Draft{toUsers("t", "a")}
	_, err = s.Publish(ctx, bad)
	wantErr(t, err, ErrIdempotencyMismatch)
	// Another scope may use the same key.
	other := req
	other.Scope = "key2"
	res, err := s.Publish(ctx, other)
	if err != nil || res.Replayed || slices.Equal(res.IDs, first.IDs) {
		t.Fatalf("other scope: %+v, %v", res, err)
	}
	if got := len(sinceAll(t, s, rcp("t", "a", ""), notification.Position{}, 0)); got != 4 {
		t.Fatalf("a has %d items, want 4", got)
	}
}

func testIdempotencyConcurrent(t *testing.T, s Store) {
	req := PublishRequest{Scope: "s", Key: "same", RequestHash: "h", Drafts: []notification.Draft{toUsers("t", "a"), toRole("t", "admin")}}
	checkIdempotentRace(t, []Store{s}, req, rcp("t", "a", "admin"))
}

func testBatch1000(t *testing.T, s Store) {
	drafts := make([]notification.Draft, 1000)
	for i := range drafts {
		if i%10 == 0 {
			drafts[i] = toTenant("b")
		} else {
			drafts[i] = toUsers("b", "x", fmt.Sprintf("y%d", i%7))
		}
	}
	res := publish(t, s, drafts...)
	if !strictlyIncreasing(res.IDs) {
		t.Fatal("ids not strictly increasing")
	}
	x := rcp("b", "x", "")
	items := sinceAll(t, s, x, notification.Position{}, 0)
	if got := ids(items); !slices.Equal(got, res.IDs) {
		t.Fatalf("since returned %d items, want the 1000 in order", len(got))
	}
	if got := checkCounts(t, s, x); got != 1000 {
		t.Fatalf("unread %d", got)
	}
	if last := res.Events[999].Deliveries[0]; last.User != "x" || last.Seq != 900 || last.Unread != 900 {
		t.Fatalf("last delivery %+v", last)
	}
	if got := res.Events[990].TenantSeq; got != 100 {
		t.Fatalf("tenant seq %d", got)
	}
}

func testReadState(t *testing.T, s Store) {
	ctx := context.Background()
	a, b := rcp("t", "a", "admin"), rcp("t", "b", "")
	res := publish(t, s, toUsers("t", "a", "b"), toUsers("t", "a"), toTenant("t"), toRole("t", "admin"), toTenant("t"))
	e1, e2, b1, r1, b2 := res.IDs[0], res.IDs[1], res.IDs[2], res.IDs[3], res.IDs[4]
	if checkCounts(t, s, a) != 5 || checkCounts(t, s, b) != 3 {
		t.Fatal("initial counts")
	}

	ch, err := s.MarkRead(ctx, a, []string{e1, b1, e1, "bogus", res.IDs[0]})
	if err != nil || !slices.Equal(ch.IDs, []string{e1, b1}) || ch.Unread != 3 {
		t.Fatalf("mark read: %+v, %v", ch, err)
	}
	if ev := ch.Event; ev == nil || ev.Kind != notification.EventRead || ev.User != "a" || ev.Tenant != "t" ||
		!slices.Equal(ev.IDs, ch.IDs) || ev.Unread != 3 || ev.All {
		t.Fatalf("event %+v", ch.Event)
	}
	if checkCounts(t, s, a) != 3 || checkCounts(t, s, b) != 3 {
		t.Fatal("counts after mark read")
	}
	// Again: found, nothing changes, no event.
	ch, err = s.MarkRead(ctx, a, []string{e1, b1})
	if err != nil || len(ch.IDs) != 0 || ch.Event != nil || ch.Unread != 3 {
		t.Fatalf("mark read again: %+v, %v", ch, err)
	}
	// b cannot see the role item.
	_, err = s.MarkRead(ctx, b, []string{r1})
	wantErr(t, err, ErrNotFound)

	// Delete: explicit unread, broadcast read, broadcast unread.
	for _, tc := range []struct {
		id     string
		unread int64
	}{{e2, 2}, {b1, 2}, {r1, 1}} {
		ch, err := s.Delete(ctx, a, tc.id)
		if err != nil || ch.Unread != tc.unread || !slices.Equal(ch.IDs, []string{tc.id}) ||
			ch.Event == nil || ch.Event.Kind != notification.EventDeleted || ch.Event.Unread != tc.unread {
			t.Fatalf("delete %s: %+v, %v", tc.id, ch, err)
		}
		if checkCounts(t, s, a) != tc.unread {
			t.Fatalf("count after delete %s", tc.id)
		}
		_, err = s.Delete(ctx, a, tc.id)
		wantErr(t, err, ErrNotFound)
		_, err = s.MarkRead(ctx, a, []string{tc.id})
		wantErr(t, err, ErrNotFound)
	}

	// Mark all read, then a new broadcast and a new explicit item.
	ch, err = s.MarkAllRead(ctx, a)
	if err != nil || ch.Unread != 0 || ch.Event == nil || !ch.Event.All || ch.Event.Unread != 0 || ch.Event.Kind != notification.EventRead {
		t.Fatalf("mark all read: %+v, %v", ch, err)
	}
	if checkCounts(t, s, a) != 0 || checkCounts(t, s, b) != 3 {
		t.Fatal("counts after mark all")
	}
	ch, err = s.MarkAllRead(ctx, a)
	if err != nil || ch.Event != nil || ch.Unread != 0 {
		t.Fatalf("mark all read again: %+v, %v", ch, err)
	}
	publish(t, s, toRole("t", "admin"), toUsers("t", "a"))
	if checkCounts(t, s, a) != 2 {
		t.Fatal("counts after new items")
	}
	for _, it := range listAll(t, s, a, false) {
		if it.ID == b2 && !it.Read {
			t.Fatal("b2 should be read")
		}
	}
	if _, err := s.MarkAllRead(ctx, b); err != nil {
		t.Fatal(err)
	}
	if checkCounts(t, s, b) != 0 || checkCounts(t, s, a) != 2 {
		t.Fatal("counts after b mark all")
	}
}

// testReadStateRandom runs random operations and compares every counter with
// a brute-force recount after each one.
func testReadStateRandom(t *testing.T, s Store) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 7))
	rs := []notification.Recipient{rcp("r", "a", "admin"), rcp("r", "b", "user"), rcp("r", "c", ""), rcp("r2", "a", "admin")}
	var all []string
	for step := range 100 {
		r := rs[rng.IntN(len(rs))]
		var (
			ch  Change
			err error
		)
		switch op := rng.IntN(10); {
		case op < 4:
			d := []notification.Draft{toTenant(r.Tenant), toRole(r.Tenant, "admin"), toRole(r.Tenant, "user"), toUsers(r.Tenant, "a", "c"), toUsers(r.Tenant, r.User)}[rng.IntN(5)]
			all = append(all, publish(t, s, d).IDs...)
			checkAll(t, s, rs)
			continue
		case op < 7 && len(all) > 0:
			var pick []string
			for range 1 + rng.IntN(4) {
				pick = append(pick, all[rng.IntN(len(all))])
			}
			ch, err = s.MarkRead(ctx, r, pick)
		case op < 9 && len(all) > 0:
			ch, err = s.Delete(ctx, r, all[rng.IntN(len(all))])
		default:
			ch, err = s.MarkAllRead(ctx, r)
		}
		if err != nil && !isNotFound(err) {
			t.Fatalf("step %d: %v", step, err)
		}
		if err == nil && ch.Unread != unread(t, s, r) {
			t.Fatalf("step %d: change unread %d, counter %d", step, ch.Unread, unread(t, s, r))
		}
		checkAll(t, s, rs)
	}
}

func checkAll(t *testing.T, s Store, rs []notification.Recipient) {
	t.Helper()
	for _, r := range rs {
		checkCounts(t, s, r)
	}
}

// testIsolation: another user's or tenant's ids behave as if absent.
func testIsolation(t *testing.T, s Store) {
	ctx := context.Background()
	owner := rcp("t", "owner", "admin")
	res := publish(t, s, toUsers("t", "owner"), toRole("t", "admin"))
	before := listAll(t, s, owner, false)
	for _, r := range []notification.Recipient{rcp("t", "other", "user"), rcp("t2", "owner", "admin"), rcp("t2", "other", "")} {
		_, err := s.MarkRead(ctx, r, res.IDs)
		wantErr(t, err, ErrNotFound)
		for _, id := range res.IDs {
			_, err = s.Delete(ctx, r, id)
			wantErr(t, err, ErrNotFound)
		}
		if ch, err := s.MarkAllRead(ctx, r); err != nil || ch.Unread != 0 {
			t.Fatalf("mark all read %v: %+v, %v", r, ch, err)
		}
	}
	if after := listAll(t, s, owner, false); !slices.EqualFunc(before, after, func(x, y notification.Item) bool { return x.ID == y.ID && x.Read == y.Read }) {
		t.Fatal("owner's state changed")
	}
	if checkCounts(t, s, owner) != 2 {
		t.Fatal("owner's count changed")
	}
	_, err := s.MarkRead(ctx, owner, []string{"01ARZ3NDEKTSV4RRFFQ69G5FAV"})
	wantErr(t, err, ErrNotFound)
}

func testDeleteIsPerUser(t *testing.T, s Store) {
	ctx := context.Background()
	a, b := rcp("t", "a", ""), rcp("t", "b", "")
	res := publish(t, s, toUsers("t", "a", "b"), toTenant("t"))
	for _, id := range res.IDs {
		if _, err := s.Delete(ctx, a, id); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(sinceAll(t, s, a, notification.Position{}, 0)); n != 0 || len(listAll(t, s, a, false)) != 0 || checkCounts(t, s, a) != 0 {
		t.Fatalf("a still sees %d items", n)
	}
	if got := ids(sinceAll(t, s, b, notification.Position{}, 0)); !slices.Equal(got, res.IDs) || checkCounts(t, s, b) != 2 {
		t.Fatalf("b sees %v", got)
	}
	// Head does not move back.
	if h, err := s.Head(ctx, a); err != nil || h != (notification.Position{User: 1, Tenant: 1}) {
		t.Fatalf("head %v, %v", h, err)
	}
}

func testExpiry(t *testing.T, s Store) {
	cs, ok1 := s.(clockedStore)
	sw, ok2 := s.(sweepingStore)
	if !ok1 || !ok2 {
		t.Skip("engine has no test clock or sweep hook")
	}
	ctx := context.Background()
	clk := cs.fakeClock()
	a, b := rcp("t", "a", "admin"), rcp("t", "b", "admin")
	soon := clk.Now().Add(time.Minute)
	mk := func(d notification.Draft) notification.Draft { d.ExpiresAt = soon; return d }
	res := publish(t, s, mk(toUsers("t", "a", "b")), mk(toTenant("t")), mk(toRole("t", "admin")), toUsers("t", "a", "b"), toTenant("t"))
	if _, err := s.MarkRead(ctx, a, res.IDs[:2]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete(ctx, b, res.IDs[2]); err != nil {
		t.Fatal(err)
	}
	if checkCounts(t, s, a) != 3 || checkCounts(t, s, b) != 4 {
		t.Fatal("counts before expiry")
	}
	if n, err := sw.sweepNow(ctx); err != nil || n != 0 {
		t.Fatalf("early sweep: %d, %v", n, err)
	}

	var log *eventLog
	if ls, ok := s.(loggingStore); ok {
		log = ls.committedLog()
		log.take(0)
	}
	clk.Advance(2 * time.Minute)
	live := res.IDs[3:]
	for _, r := range []notification.Recipient{a, b} {
		if got := sortedIDs(listAll(t, s, r, false)); !slices.Equal(got, live) {
			t.Fatalf("%v list after expiry: %v", r, got)
		}
		if got := ids(sinceAll(t, s, r, notification.Position{}, 0)); !slices.Equal(got, live) {
			t.Fatalf("%v since after expiry: %v", r, got)
		}
		_, err := s.MarkRead(ctx, r, res.IDs[:3])
		wantErr(t, err, ErrNotFound)
	}
	if n, err := sw.sweepNow(ctx); err != nil || n != 3 {
		t.Fatalf("sweep: %d, %v", n, err)
	}
	if log != nil {
		// The hubs are told: one event per expired broadcast (with its
		// audience), one per user of the explicit ones (read or not).
		var got []string
		for _, ev := range log.take(notification.EventExpired) {
			line := ev.Tenant + "/" + ev.User + ":" + strings.Join(ev.IDs, ",")
			if n := ev.Notification; n != nil {
				line += "@" + n.Audience.Key() + "=" + n.ID
			}
			got = append(got, line)
		}
		slices.Sort(got)
		want := []string{"t/:" + res.IDs[1] + "@*=" + res.IDs[1], "t/:" + res.IDs[2] + "@role:admin=" + res.IDs[2],
			"t/a:" + res.IDs[0], "t/b:" + res.IDs[0]}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("expiry events %q, want %q", got, want)
		}
	}
	if checkCounts(t, s, a) != 2 || checkCounts(t, s, b) != 2 {
		t.Fatalf("counts after sweep: a %d, b %d", unread(t, s, a), unread(t, s, b))
	}
	// Counters stay right for broadcasts published after the sweep.
	publish(t, s, toRole("t", "admin"))
	if _, err := s.MarkAllRead(ctx, a); err != nil {
		t.Fatal(err)
	}
	if checkCounts(t, s, a) != 0 || checkCounts(t, s, b) != 3 {
		t.Fatal("counts after new publish")
	}

	// Idempotency records expire after a day: the key can then be reused.
	req := PublishRequest{Scope: "s", Key: "k", RequestHash: "h", Drafts: []notification.Draft{toUsers("t", "a")}}
	first, err := s.Publish(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(25 * time.Hour)
	if _, err := sw.sweepNow(ctx); err != nil {
		t.Fatal(err)
	}
	again, err := s.Publish(ctx, req)
	if err != nil || again.Replayed || slices.Equal(again.IDs, first.IDs) {
		t.Fatalf("after a day: %+v, %v", again, err)
	}
}

func testClosed(t *testing.T, s Store) {
	ctx := context.Background()
	publish(t, s, toTenant("t"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	_, err := s.Publish(ctx, PublishRequest{Drafts: []notification.Draft{toTenant("t")}})
	wantErr(t, err, ErrClosed)
	_, err = s.MarkAllRead(ctx, rcp("t", "a", ""))
	wantErr(t, err, ErrClosed)
	_, err = s.UnreadCount(ctx, rcp("t", "a", ""))
	wantErr(t, err, ErrClosed)
	wantErr(t, s.Ping(ctx), ErrClosed)
}

func testCancelledContext(t *testing.T, s Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.Publish(ctx, PublishRequest{Drafts: []notification.Draft{toTenant("t")}})
	wantErr(t, err, ErrUnavailable)
	_, err = s.MarkAllRead(ctx, rcp("t", "a", ""))
	wantErr(t, err, ErrUnavailable)
	_, _, err = s.Since(ctx, rcp("t", "a", ""), notification.Position{}, 0)
	wantErr(t, err, ErrUnavailable)
	if err := s.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	if h, err := s.Head(context.Background(), rcp("t", "a", "")); err != nil || h != (notification.Position{}) {
		t.Fatalf("head %v, %v: nothing should be written", h, err)
	}
}

func testListPaging(t *testing.T, s Store) {
	ctx := context.Background()
	a := rcp("t", "a", "admin")
	var drafts []notification.Draft
	for i := range 25 {
		drafts = append(drafts, []notification.Draft{toUsers("t", "a"), toTenant("t"), toRole("t", "admin"), toRole("t", "x")}[i%4])
	}
	res := publish(t, s, drafts...)
	var want []string // visible to a, newest first
	for i := len(res.IDs) - 1; i >= 0; i-- {
		if i%4 != 3 {
			want = append(want, res.IDs[i])
		}
	}
	var got []string
	q := ListQuery{Limit: 5}
	for {
		p, err := s.List(ctx, a, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Items) > 5 || (p.Next != "" && p.Next != p.Items[len(p.Items)-1].ID) {
			t.Fatalf("page of %d, next %q", len(p.Items), p.Next)
		}
		got = append(got, ids(p.Items)...)
		if p.Next == "" {
			break
		}
		q.Before = p.Next
	}
	if !slices.Equal(got, want) {
		t.Fatalf("pages %v\nwant %v", got, want)
	}
	if _, err := s.MarkRead(ctx, a, want[:6]); err != nil {
		t.Fatal(err)
	}
	if u := ids(listAll(t, s, a, true)); !slices.Equal(u, want[6:]) {
		t.Fatalf("unread only %v", u)
	}
	checkCounts(t, s, a)

	// Limits: <= 0 means the default, above the maximum is capped.
	more := make([]notification.Draft, 300)
	for i := range more {
		more[i] = toUsers("t", "a")
	}
	publish(t, s, more...)
	for _, tc := range []struct{ limit, want int }{{0, DefaultListLimit}, {-1, DefaultListLimit}, {1, 1}, {1000, MaxListLimit}} {
		p, err := s.List(ctx, a, ListQuery{Limit: tc.limit})
		if err != nil || len(p.Items) != tc.want || p.Next == "" {
			t.Fatalf("limit %d: %d items, next %q, %v", tc.limit, len(p.Items), p.Next, err)
		}
	}
	_, err := s.List(ctx, a, ListQuery{Before: "not-an-id"})
	wantErr(t, err, ErrInvalid)
}

func testSinceLimit(t *testing.T, s Store) {
	ctx := context.Background()
	a := rcp("t", "a", "")
	res := publish(t, s, toUsers("t", "a"), toTenant("t"), toUsers("t", "a"), toTenant("t"), toUsers("t", "a"))
	items, more, err := s.Since(ctx, a, notification.Position{}, 2)
	if err != nil || !more || !slices.Equal(ids(items), res.IDs[:2]) {
		t.Fatalf("since limit 2: %v, %v, %v", ids(items), more, err)
	}
	items, more, err = s.Since(ctx, a, notification.Position{}, 5)
	if err != nil || more || len(items) != 5 {
		t.Fatalf("since limit 5: %d, %v, %v", len(items), more, err)
	}
	// A position ahead in one component only.
	items, _, err = s.Since(ctx, a, notification.Position{User: 3}, 0)
	if err != nil || !slices.Equal(ids(items), []string{res.IDs[1], res.IDs[3]}) {
		t.Fatalf("since user 3: %v, %v", ids(items), err)
	}
}

func testInvalid(t *testing.T, s Store) {
	ctx := context.Background()
	good := toUsers("t", "a")
	bad := []notification.Draft{
		{Audience: notification.Audience{Kind: notification.AudienceTenant}},
		{Tenant: "t"},
		{Tenant: "t", Audience: notification.Audience{Kind: 9}},
		{Tenant: "t", Audience: notification.Audience{Kind: notification.AudienceUsers}},
		{Tenant: "t", Audience: notification.Audience{Kind: notification.AudienceUsers, Users: []string{"a", ""}}},
		{Tenant: "t", Audience: notification.Audience{Kind: notification.AudienceRole}},
		{Tenant: "t", Audience: notification.Audience{Kind: notification.AudienceTenant, Users: []string{"a"}}},
		func() notification.Draft { d := good; d.Data = json.RawMessage(`[1]`); return d }(),
		func() notification.Draft { d := good; d.Data = json.RawMessage(`{"a":`); return d }(),
		func() notification.Draft { d := good; d.Data = json.RawMessage(`"s"`); return d }(),
		// The rule set of internal/notification, as the publish API applies it.
		toUsers(strings.Repeat("t", notification.MaxIdentLen+1), "a"),
		toUsers("t", "a", "b\nc"),
		toUsers("t\x00", "a"),
		toRole("t", "admin\u0085"),
		func() notification.Draft { d := good; d.Type = ""; return d }(),
		func() notification.Draft { d := good; d.Type = "no spaces"; return d }(),
		func() notification.Draft { d := good; d.Title = ""; return d }(),
		func() notification.Draft {
			d := good
			d.Body = strings.Repeat("b", notification.MaxBodyLen+1)
			return d
		}(),
	}
	for i, d := range bad {
		_, err := s.Publish(ctx, PublishRequest{Drafts: []notification.Draft{good, d}})
		if err == nil {
			t.Fatalf("draft %d accepted", i)
		}
		wantErr(t, err, ErrInvalid)
	}
	_, err := s.Publish(ctx, PublishRequest{})
	wantErr(t, err, ErrInvalid)
	if h, err := s.Head(ctx, rcp("t", "a", "")); err != nil || h != (notification.Position{}) {
		t.Fatalf("head %v, %v: nothing should be written", h, err)
	}
	// A recipient that the rules exclude can have no notifications.
	long := strings.Repeat("u", notification.MaxIdentLen+1)
	for _, r := range []notification.Recipient{rcp("", "a", ""), rcp("t", "", ""), rcp("t", long, ""), rcp("t", "a\x7f", ""), rcp("t", "a", "admin\n")} {
		_, err := s.Head(ctx, r)
		wantErr(t, err, ErrInvalid)
		_, err = s.MarkAllRead(ctx, r)
		wantErr(t, err, ErrInvalid)
	}
	_, err = s.MarkRead(ctx, rcp("t", "a", ""), nil)
	wantErr(t, err, ErrInvalid)
	// The longest identifiers are stored and read back.
	longest := strings.Repeat("é", notification.MaxIdentLen/2)
	publish(t, s, toUsers(longest, longest), toRole(longest, longest))
	if got := checkCounts(t, s, rcp(longest, longest, longest)); got != 2 {
		t.Fatalf("unread %d, want 2", got)
	}
	// JSON null data means no data.
	d := good
	d.Data = json.RawMessage(`null`)
	if res := publish(t, s, d); res.Events[0].Notification.Data != nil {
		t.Fatalf("data %q", res.Events[0].Notification.Data)
	}
}

func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

func strictlyIncreasing(ids []string) bool {
	for i := 1; i < len(ids); i++ {
		if ids[i] <= ids[i-1] {
			return false
		}
	}
	return true
}
