package store

import (
	"context"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/notification"
	"github.com/heraldhq/herald/internal/testkit"
)

// Helpers that the contract and the engines' own tests share: checks that
// are the same for every engine once it is opened.

// mustOpen fails t when opening a store failed, and closes it (checking
// the error) when the test ends.
func mustOpen[S io.Closer](t testing.TB, s S, err error) S {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// runTogether runs fn(0) … fn(n-1) in goroutines released at the same
// moment, and waits for them all.
func runTogether(n int, fn func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			fn(i)
		})
	}
	close(start)
	wg.Wait()
}

// published records, per recipient, the ids of what tests publishing from
// many goroutines published to it.
type published struct {
	mu   sync.Mutex
	want map[notification.Recipient]map[string]bool // guarded by mu
}

func newPublished(rs ...notification.Recipient) *published {
	p := &published{want: make(map[notification.Recipient]map[string]bool, len(rs))}
	for _, r := range rs {
		p.want[r] = make(map[string]bool)
	}
	return p
}

// publish publishes drafts on s and records, for each recipient, the ids
// it can see. On failure it reports the error with t.Errorf (it may run on
// any goroutine) and returns false.
func (p *published) publish(t testing.TB, s Store, drafts []notification.Draft) bool {
	res, err := s.Publish(context.Background(), PublishRequest{Drafts: drafts})
	if err != nil {
		t.Errorf("publish: %v", err)
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, d := range drafts {
		for r, ids := range p.want {
			if slices.Contains(d.Audience.Users, r.User) || d.Audience.Matches(r.Role) {
				ids[res.IDs[i]] = true
			}
		}
	}
	return true
}

// sortedIDs are the ids published to r, sorted.
func (p *published) sortedIDs(r notification.Recipient) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, 0, len(p.want[r]))
	for id := range p.want[r] {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// readWhilePublishing runs readers and publishers at once: read(i,
// publishersDone) for each of readers, publish(j) for each of publishers.
// publishersDone reports whether every publisher has returned, so that a
// reader that has caught up after that can stop. It returns when all have
// returned, false when the test has failed meanwhile.
func readWhilePublishing(t testing.TB, readers int, read func(i int, publishersDone func() bool), publishers int, publish func(j int)) bool {
	var (
		done   atomic.Bool
		rs, ps sync.WaitGroup
	)
	for i := range readers {
		rs.Go(func() { read(i, done.Load) })
	}
	for j := range publishers {
		ps.Go(func() { publish(j) })
	}
	ps.Wait()
	done.Store(true)
	rs.Wait()
	return !t.Failed()
}

// checkIdempotentRace publishes req (with an idempotency key) 50 times at
// once, through stores in turn: exactly one request writes, all get the
// same ids, and r, a recipient of every draft, sees each draft once on
// every store.
func checkIdempotentRace(t *testing.T, stores []Store, req PublishRequest, r notification.Recipient) {
	t.Helper()
	const n = 50
	results := make([]PublishResult, n)
	runTogether(n, func(i int) {
		var err error
		if results[i], err = stores[i%len(stores)].Publish(context.Background(), req); err != nil {
			t.Errorf("publish %d: %v", i, err)
		}
	})
	if t.Failed() {
		t.FailNow()
	}
	fresh := 0
	for _, res := range results {
		if !res.Replayed {
			fresh++
		}
		if !slices.Equal(res.IDs, results[0].IDs) {
			t.Fatalf("ids differ: %v vs %v", res.IDs, results[0].IDs)
		}
	}
	if fresh != 1 {
		t.Fatalf("%d requests were not replays, want 1", fresh)
	}
	want := int64(len(req.Drafts))
	for _, s := range stores {
		if got := len(sinceAll(t, s, r, notification.Position{}, 0)); int64(got) != want {
			t.Fatalf("%v has %d items, want %d", r, got, want)
		}
		if got := checkCounts(t, s, r); got != want {
			t.Fatalf("%v unread %d, want %d", r, got, want)
		}
	}
}

// checkSweeperRuns: the background sweeper of s (opened with clk and a
// short SweepInterval) runs on its own.
func checkSweeperRuns(t *testing.T, s Store, clk *testClock) {
	t.Helper()
	d := toUsers("t", "a")
	d.ExpiresAt = clk.Now().Add(time.Second)
	publish(t, s, d)
	clk.Advance(time.Minute)
	testkit.Eventually(t, 10*time.Second, func() bool { return unread(t, s, rcp("t", "a", "")) == 0 }, "the sweeper")
}

// checkReopen: everything committed on s survives Close and reopen (which
// opens the same database again, with clk), and ids keep increasing even
// though the clock went back an hour meanwhile.
func checkReopen(t *testing.T, s Store, clk *testClock, reopen func() Store) {
	t.Helper()
	ctx := context.Background()
	a := rcp("t", "a", "admin")
	res := publish(t, s, toUsers("t", "a", "b"), toRole("t", "admin"), toTenant("t"))
	if _, err := s.MarkRead(ctx, a, res.IDs[:1]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete(ctx, a, res.IDs[2]); err != nil {
		t.Fatal(err)
	}
	key := PublishRequest{Scope: "s", Key: "k", RequestHash: "h", Drafts: []notification.Draft{toUsers("t", "a")}}
	first, err := s.Publish(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	before := listAll(t, s, a, false)
	head, _ := s.Head(ctx, a)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	clk.Advance(-time.Hour)
	s2 := reopen()
	after := listAll(t, s2, a, false)
	if !slices.EqualFunc(before, after, func(x, y notification.Item) bool {
		return x.ID == y.ID && x.Read == y.Read && x.Seq == y.Seq && x.Title == y.Title && x.CreatedAt.Equal(y.CreatedAt)
	}) {
		t.Fatalf("after reopen %v, before %v", ids(after), ids(before))
	}
	if h, err := s2.Head(ctx, a); err != nil || h != head {
		t.Fatalf("head %v, %v; want %v", h, err, head)
	}
	if got := checkCounts(t, s2, a); got != 2 {
		t.Fatalf("unread %d", got)
	}
	again, err := s2.Publish(ctx, key)
	if err != nil || !again.Replayed || !slices.Equal(again.IDs, first.IDs) {
		t.Fatalf("replay after reopen: %+v, %v", again, err)
	}
	next := publish(t, s2, toTenant("t"))
	if next.IDs[0] <= first.IDs[0] || next.Events[0].TenantSeq != 3 {
		t.Fatalf("after reopen id %s (last %s), tenant seq %d", next.IDs[0], first.IDs[0], next.Events[0].TenantSeq)
	}
}
