package store

import (
	"context"
	"errors"
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

// TestSQLiteSoloPublishMerged: a large (solo) request writes its runs of
// plain drafts with the merged statements and the rest (collapse keys,
// broadcasts) one draft at a time, and gives the same deliveries, inboxes
// and counters as the same drafts published one request each.
func TestSQLiteSoloPublishMerged(t *testing.T) {
	var drafts []notification.Draft
	for i := range 150 {
		var d notification.Draft
		switch {
		case i%37 == 5:
			d = toTenant("t")
		case i%23 == 7:
			d = withKey(toUsers("t", "a", "b"), "k")
		default:
			d = toUsers("t", []string{"a", "b", "c"}[i%3], "a", []string{"d", "a"}[i%2])
		}
		if i%4 == 0 {
			d.Type = "digest" // muted by b
		}
		if i%5 == 0 {
			d.Category = "ops"
		}
		drafts = append(drafts, d)
	}
	ctx := context.Background()
	open := func() *SQLite {
		s := openTestSQLite(t, SQLiteConfig{})
		if _, err := s.SetPreferences(ctx, rcp("t", "b", ""), notification.Preferences{MutedTypes: []string{"digest"}}); err != nil {
			t.Fatal(err)
		}
		return s
	}
	solo, single := open(), open()
	got := publish(t, solo, drafts...)
	var want PublishResult
	for _, d := range drafts {
		r := publish(t, single, d)
		want.IDs, want.Events = append(want.IDs, r.IDs...), append(want.Events, r.Events...)
	}
	index := func(ids []string) map[string]int {
		m := map[string]int{"": -1}
		for i, id := range ids {
			m[id] = i
		}
		return m
	}
	gi, wi := index(got.IDs), index(want.IDs)
	for i := range drafts {
		g, w := got.Events[i], want.Events[i]
		if g.TenantSeq != w.TenantSeq || len(g.Deliveries) != len(w.Deliveries) {
			t.Fatalf("draft %d: event %+v, want %+v", i, g, w)
		}
		for k, gd := range g.Deliveries {
			wd := w.Deliveries[k]
			if gi[gd.Replaces] != wi[wd.Replaces] {
				t.Fatalf("draft %d: replaces draft %d, want %d", i, gi[gd.Replaces], wi[wd.Replaces])
			}
			gd.Replaces, wd.Replaces = "", ""
			if gd != wd {
				t.Fatalf("draft %d: delivery %+v, want %+v", i, gd, wd)
			}
		}
	}
	for _, u := range []string{"a", "b", "c", "d"} {
		r := rcp("t", u, "")
		if g, w := checkCounts(t, solo, r), checkCounts(t, single, r); g != w {
			t.Fatalf("%s: unread %d, want %d", u, g, w)
		}
		gl, wl := listAll(t, solo, r, false), listAll(t, single, r, false)
		if len(gl) != len(wl) {
			t.Fatalf("%s: %d items, want %d", u, len(gl), len(wl))
		}
		for k := range gl {
			if gi[gl[k].ID] != wi[wl[k].ID] || gl[k].Seq != wl[k].Seq || gl[k].Read != wl[k].Read {
				t.Fatalf("%s: item %d is draft %d seq %d, want draft %d seq %d", u, k, gi[gl[k].ID], gl[k].Seq, wi[wl[k].ID], wl[k].Seq)
			}
		}
	}
}

// TestAssignBump: counter-bump rows returned out of order still give each
// user's deliveries ascending seqs in delivery order.
func TestAssignBump(t *testing.T) {
	ev := &notification.Event{Tenant: "t", Deliveries: []notification.Delivery{{User: "a"}, {User: "b"}, {User: "a"}, {User: "a"}}}
	chunk := []runDelivery{{ev, 0}, {ev, 1}, {ev, 2}, {ev, 3}}
	for _, r := range []struct {
		user string
		seq  int64
	}{{"a", 7}, {"b", 1}, {"a", 5}, {"a", 6}} {
		if !assignBump(chunk, []byte("t"), []byte(r.user), r.seq, r.seq*10) {
			t.Fatalf("row %+v not assigned", r)
		}
	}
	if assignBump(chunk, []byte("t"), []byte("a"), 8, 80) || assignBump(chunk, []byte("u"), []byte("b"), 2, 20) {
		t.Fatal("a row beyond the deliveries was assigned")
	}
	for i, want := range []int64{5, 1, 6, 7} {
		if d := ev.Deliveries[i]; d.Seq != want || d.Unread != want*10 {
			t.Fatalf("delivery %d: %+v, want seq %d", i, d, want)
		}
	}
}

// TestSQLiteRunReqResetsResult: a publish that runs again after a rollback
// (see commitBatch) and fails the second time keeps no result of the first.
func TestSQLiteRunReqResetsResult(t *testing.T) {
	s := openTestSQLite(t, SQLiteConfig{})
	ctx := context.Background()
	draft := toUsers("t", "a")
	if _, err := s.Publish(ctx, PublishRequest{Scope: "s", Key: "k", RequestHash: "h1", Drafts: []notification.Draft{draft}}); err != nil {
		t.Fatal(err)
	}
	wr := &writeReq{publish: true, pub: PublishRequest{Scope: "s", Key: "k", RequestHash: "h2", Drafts: []notification.Draft{draft}},
		pubRes: PublishResult{IDs: []string{"from the first run"}}}
	var runErr error
	if _, err := submit(s, ctx, "rerun", func(ctx context.Context, _ *wtx) (int, error) {
		runErr = s.runReq(ctx, wr)
		return 0, nil
	}); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(runErr, ErrIdempotencyMismatch) {
		t.Fatalf("rerun: %v, want %v", runErr, ErrIdempotencyMismatch)
	}
	if wr.pubRes.IDs != nil || wr.pubRes.Events != nil || wr.pubRes.Replayed {
		t.Fatalf("result after a failed rerun: %+v", wr.pubRes)
	}
}

// TestSQLiteDoneNotRecycledAfterGiveUp: the answer channel of a caller
// that gave up (ctx ended) is not reused, so the writer's late answer to
// it cannot reach a later caller: every later publish gets its own
// outcome and result.
func TestSQLiteDoneNotRecycledAfterGiveUp(t *testing.T) {
	s := openTestSQLite(t, SQLiteConfig{})
	release := blockWriter(t, s)
	const n = 8
	var wg sync.WaitGroup
	cancelled, cancel := context.WithCancel(context.Background())
	giveUp := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, giveUp[i] = s.Publish(cancelled, PublishRequest{Drafts: []notification.Draft{toUsers("t", "gone")}})
		}()
		waitQueued(t, s, i+1)
	}
	cancel()
	wg.Wait() // every one of them gave up while its request is queued
	for i, err := range giveUp {
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("cancelled publish %d: %v", i, err)
		}
	}
	results := make([]PublishResult, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = s.Publish(context.Background(), PublishRequest{Drafts: []notification.Draft{toUsers("t", fmt.Sprint("u", i))}})
		}()
		waitQueued(t, s, n+i+1)
	}
	release()
	wg.Wait()
	for i := range n {
		if errs[i] != nil || len(results[i].IDs) != 1 || len(results[i].Events) != 1 ||
			results[i].Events[0].Deliveries[0].User != fmt.Sprint("u", i) {
			t.Fatalf("publish %d: %+v, %v", i, results[i], errs[i])
		}
	}
}
