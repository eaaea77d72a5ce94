package store

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/heraldhq/herald/internal/notification"
)

// TestSQLitePublishRun: publishes queued behind one another are written as
// one merged run (multi-row statements), and every result is what one
// publish after another would give: each user's sequence numbers follow
// request, draft and user order, with no gap and no repeat, counters
// match, users are told apart by tenant, and a recipient named twice in a
// draft gets it once. With a failing request in the same batch, the batch
// runs again with savepoints and the publishes still commit alone.
func TestSQLitePublishRun(t *testing.T) {
	for _, failing := range []bool{false, true} {
		t.Run(fmt.Sprintf("failing=%v", failing), func(t *testing.T) { checkPublishRun(t, failing) })
	}
}

func checkPublishRun(t *testing.T, failing bool) {
	s := openTestSQLite(t, SQLiteConfig{})
	ctx := context.Background()
	if _, err := s.Publish(ctx, PublishRequest{Drafts: []notification.Draft{toUsers("t", "a")}}); err != nil {
		t.Fatal(err)
	}
	many := make([]string, 30) // 3 drafts × 30 users: chunks of 64, 16, 8, 2 rows
	for i := range many {
		many[i] = fmt.Sprintf("u%d", i)
	}
	reqs := [][]notification.Draft{
		{toUsers("t", "a", "b", "a")},
		{toUsers("t", "a"), toUsers("t", "c")},
		{toUsers("t", many...), toUsers("t", many...), toUsers("t", append([]string{"a"}, many...)...)},
		{toUsers("t2", "a")},
		{toUsers("t", "b")},
	}
	release := blockWriter(t, s)
	batches := s.batches.Load()
	var wg sync.WaitGroup
	results := make([]PublishResult, len(reqs))
	errs := make([]error, len(reqs)+1)
	for i, drafts := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = s.Publish(ctx, PublishRequest{Drafts: drafts})
		}()
		waitQueued(t, s, i+1)
	}
	if failing {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[len(reqs)] = submit(s, ctx, "bad sql", func(ctx context.Context, tx *wtx) (int, error) {
				_, err := tx.ExecContext(ctx, `INSERT INTO no_such_table VALUES (1)`)
				return 0, err
			})
		}()
		waitQueued(t, s, len(reqs)+1)
	}
	release()
	wg.Wait()
	if got := s.batches.Load() - batches; got != 2 { // the blocker's batch and ours
		t.Fatalf("%d batches, want 2", got)
	}
	for i := range reqs {
		if errs[i] != nil {
			t.Fatalf("request %d: %v", i, errs[i])
		}
	}
	if failing == (errs[len(reqs)] == nil) {
		t.Fatalf("failing request: %v", errs[len(reqs)])
	}

	seq := map[notification.Recipient]int64{rcp("t", "a", ""): 1}
	for i, drafts := range reqs {
		if len(results[i].IDs) != len(drafts) || len(results[i].Events) != len(drafts) {
			t.Fatalf("request %d: %d ids, %d events for %d drafts", i, len(results[i].IDs), len(results[i].Events), len(drafts))
		}
		for j, d := range drafts {
			ev := results[i].Events[j]
			if ev.Notification.ID != results[i].IDs[j] || ev.Tenant != d.Tenant {
				t.Fatalf("request %d draft %d: event %+v", i, j, ev)
			}
			var want []string
			for _, u := range d.Audience.Users {
				if !containsString(want, u) {
					want = append(want, u)
				}
			}
			if len(ev.Deliveries) != len(want) {
				t.Fatalf("request %d draft %d: %d deliveries, want %d", i, j, len(ev.Deliveries), len(want))
			}
			for k, dl := range ev.Deliveries {
				r := rcp(d.Tenant, want[k], "")
				seq[r]++
				if dl.User != want[k] || dl.Seq != seq[r] || dl.Unread != seq[r] {
					t.Fatalf("request %d draft %d: delivery %+v, want user %s seq and unread %d", i, j, dl, want[k], seq[r])
				}
			}
		}
	}
	for r, n := range seq {
		if h, err := s.Head(ctx, r); err != nil || h.User != n {
			t.Fatalf("%v: head %v, %v; want %d", r, h, err, n)
		}
		if got := checkCounts(t, s, r); got != n {
			t.Fatalf("%v: unread %d, want %d", r, got, n)
		}
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
