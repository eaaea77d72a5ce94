package store

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/notification"
	"github.com/heraldhq/herald/internal/testkit"
)

// The contract of the inbox model (issue 15): categories, collapse keys,
// seen vs read, archive and preferences. Every test compares the
// maintained counters with brute-force recounts (checkInbox).

func runInboxContract(t *testing.T, open func(t *testing.T) Store) {
	t.Run("Categories", func(t *testing.T) { testCategories(t, open(t)) })
	t.Run("Collapse", func(t *testing.T) { testCollapse(t, open(t)) })
	t.Run("Seen", func(t *testing.T) { testSeen(t, open(t)) })
	t.Run("Archive", func(t *testing.T) { testArchive(t, open(t)) })
	t.Run("Preferences", func(t *testing.T) { testPreferences(t, open(t)) })
	t.Run("InboxRandom", func(t *testing.T) { testInboxRandom(t, open(t)) })
	t.Run("InboxInvalid", func(t *testing.T) { testInboxInvalid(t, open(t)) })
	t.Run("ReadyCounts", func(t *testing.T) { testReadyCounts(t, open(t)) })
}

func withCategory(d notification.Draft, c string) notification.Draft { d.Category = c; return d }
func withKey(d notification.Draft, k string) notification.Draft      { d.CollapseKey = k; return d }
func withType(d notification.Draft, ty string) notification.Draft    { d.Type = ty; return d }

func counts(t testing.TB, s Store, r notification.Recipient) Counts {
	t.Helper()
	c, err := s.Counts(context.Background(), r)
	if err != nil {
		t.Fatalf("counts %v: %v", r, err)
	}
	return c
}

// listArchived pages through the archived list.
func listArchived(t testing.TB, s Store, r notification.Recipient) []notification.Item {
	t.Helper()
	p, err := s.List(context.Background(), r, ListQuery{Limit: MaxListLimit, Archived: true})
	if err != nil {
		t.Fatal(err)
	}
	return p.Items
}

// checkInbox runs checkCounts, then checks the counts by category and, when
// mark is the recipient's seen mark, the unseen count against recounts
// from the lists. It returns the counts.
func checkInbox(t testing.TB, s Store, r notification.Recipient, mark *notification.Position) Counts {
	t.Helper()
	checkCounts(t, s, r)
	c := counts(t, s, r)
	items := listAll(t, s, r, false)
	want := map[string]int64{}
	var unseen int64
	for _, it := range items {
		if it.Archived {
			t.Fatalf("%v: archived item %s in the list", r, it.ID)
		}
		if !it.Read && it.Category != "" {
			want[it.Category]++
		}
		if mark != nil && ((it.Audience.Broadcast() && it.Seq > mark.Tenant) || (!it.Audience.Broadcast() && it.Seq > mark.User)) {
			unseen++
		}
	}
	if !maps.Equal(c.ByCategory, want) {
		t.Fatalf("%v: by category %v, recount %v", r, c.ByCategory, want)
	}
	if mark != nil && c.Unseen != unseen {
		t.Fatalf("%v: unseen %d, recount %d (mark %v)", r, c.Unseen, unseen, *mark)
	}
	for _, it := range listArchived(t, s, r) {
		if !it.Archived {
			t.Fatalf("%v: unarchived item %s in the archived list", r, it.ID)
		}
	}
	return c
}

func testCategories(t *testing.T, s Store) {
	ctx := context.Background()
	a, b := rcp("t", "a", "admin"), rcp("t", "b", "")
	res := publish(t, s, withCategory(toUsers("t", "a", "b"), "billing"), withCategory(toUsers("t", "a"), "social"),
		toUsers("t", "a"), withCategory(toTenant("t"), "billing"), withCategory(toRole("t", "admin"), "ops.alerts"))
	if c := checkInbox(t, s, a, nil); c.Unread != 5 || !maps.Equal(c.ByCategory, map[string]int64{"billing": 2, "social": 1, "ops.alerts": 1}) {
		t.Fatalf("a: %+v", c)
	}
	if c := checkInbox(t, s, b, nil); c.Unread != 2 || !maps.Equal(c.ByCategory, map[string]int64{"billing": 2}) {
		t.Fatalf("b: %+v", c)
	}
	if got := res.Events[0].Notification.Category; got != "billing" {
		t.Fatalf("event category %q", got)
	}
	p, err := s.List(ctx, a, ListQuery{Category: "billing"})
	if err != nil || len(p.Items) != 2 || p.Items[0].ID != res.IDs[3] || p.Items[1].ID != res.IDs[0] || p.Items[0].Category != "billing" {
		t.Fatalf("list billing: %+v, %v", p, err)
	}
	ch, err := s.MarkRead(ctx, a, []string{res.IDs[0], res.IDs[3]})
	if err != nil || !maps.Equal(ch.Counts.ByCategory, map[string]int64{"social": 1, "ops.alerts": 1}) ||
		!maps.Equal(ch.Event.ByCategory, ch.Counts.ByCategory) || ch.Counts.Unread != 3 {
		t.Fatalf("mark read: %+v, %v", ch, err)
	}
	checkInbox(t, s, a, nil)
	checkInbox(t, s, b, nil)
	if _, err := s.Delete(ctx, a, res.IDs[1]); err != nil {
		t.Fatal(err)
	}
	if c := checkInbox(t, s, a, nil); !maps.Equal(c.ByCategory, map[string]int64{"ops.alerts": 1}) {
		t.Fatalf("after delete: %+v", c)
	}
	if _, err := s.MarkAllRead(ctx, b); err != nil {
		t.Fatal(err)
	}
	if c := checkInbox(t, s, b, nil); c.Unread != 0 || len(c.ByCategory) != 0 {
		t.Fatalf("b after mark all: %+v", c)
	}
}

func testCollapse(t *testing.T, s Store) {
	ctx := context.Background()
	a, b := rcp("t", "a", ""), rcp("t", "b", "")
	first := publish(t, s, withKey(toUsers("t", "a", "b"), "build-7"))
	if _, err := s.MarkRead(ctx, b, first.IDs); err != nil {
		t.Fatal(err)
	}
	second := publish(t, s, withCategory(withKey(toUsers("t", "a", "b"), "build-7"), "ci"))
	ev := second.Events[0]
	if len(ev.Deliveries) != 2 {
		t.Fatalf("deliveries %+v", ev.Deliveries)
	}
	for _, d := range ev.Deliveries {
		if d.Replaces != first.IDs[0] || d.ReplacedUnread != (d.User == "a") || !d.ReplacedUnseen {
			t.Fatalf("delivery %+v", d)
		}
	}
	if ev.Notification.CollapseKey != "build-7" {
		t.Fatalf("collapse key %q", ev.Notification.CollapseKey)
	}
	for _, r := range []notification.Recipient{a, b} {
		c := checkInbox(t, s, r, &notification.Position{})
		items := listAll(t, s, r, false)
		if len(items) != 1 || items[0].ID != second.IDs[0] || items[0].CollapseKey != "build-7" || c.Unread != 1 || c.Unseen != 1 {
			t.Fatalf("%v: items %v, counts %+v", r, ids(items), c)
		}
		_, err := s.Delete(ctx, r, first.IDs[0])
		wantErr(t, err, ErrNotFound)
		since := sinceAll(t, s, r, notification.Position{}, 0)
		if len(since) != 1 || since[0].ID != second.IDs[0] {
			t.Fatalf("since: %v", ids(since))
		}
	}
	// Only a's copy is replaced: b keeps the second one.
	third := publish(t, s, withKey(toUsers("t", "a"), "build-7"))
	if d := third.Events[0].Deliveries[0]; d.Replaces != second.IDs[0] {
		t.Fatalf("third replaces %q", d.Replaces)
	}
	if items := listAll(t, s, b, false); len(items) != 1 || items[0].ID != second.IDs[0] {
		t.Fatalf("b: %v", ids(items))
	}
	checkInbox(t, s, a, &notification.Position{})
	// Two drafts with one key in one request: the second replaces the first.
	both := publish(t, s, withKey(toUsers("t", "c"), "k"), withKey(toUsers("t", "c"), "k"))
	if d := both.Events[1].Deliveries[0]; d.Replaces != both.IDs[0] || !d.ReplacedUnread {
		t.Fatalf("same request: %+v", d)
	}
	if items := listAll(t, s, rcp("t", "c", ""), false); len(items) != 1 || items[0].ID != both.IDs[1] {
		t.Fatalf("c: %v", ids(items))
	}
	checkInbox(t, s, rcp("t", "c", ""), &notification.Position{})
	// Idempotency holds: a retry replaces nothing.
	req := PublishRequest{Scope: "k", Key: "idem", RequestHash: "h", Drafts: []notification.Draft{withKey(toUsers("t", "a"), "build-7")}}
	r1, err := s.Publish(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := s.Publish(ctx, req)
	if err != nil || !r2.Replayed || !slices.Equal(r1.IDs, r2.IDs) {
		t.Fatalf("retry: %+v, %v", r2, err)
	}
	if items := listAll(t, s, a, false); len(items) != 1 || items[0].ID != r1.IDs[0] {
		t.Fatalf("a after retry: %v", ids(items))
	}
	// An archived one is replaced too, without touching the counts.
	if _, err := s.Archive(ctx, a, r1.IDs, false); err != nil {
		t.Fatal(err)
	}
	r3 := publish(t, s, withKey(toUsers("t", "a"), "build-7"))
	if d := r3.Events[0].Deliveries[0]; d.Replaces != r1.IDs[0] || d.ReplacedUnread || d.ReplacedUnseen {
		t.Fatalf("archived replaced: %+v", d)
	}
	if len(listArchived(t, s, a)) != 0 {
		t.Fatal("the archived one is still listed")
	}
	checkInbox(t, s, a, &notification.Position{})
}

func testSeen(t *testing.T, s Store) {
	ctx := context.Background()
	a := rcp("t", "a", "admin")
	res := publish(t, s, toUsers("t", "a"), toUsers("t", "a"), toTenant("t"), toRole("t", "admin"), toRole("t", "other"))
	mark := notification.Position{}
	if c := checkInbox(t, s, a, &mark); c.Unseen != 4 || c.Unread != 4 {
		t.Fatalf("initial %+v", c)
	}
	for _, id := range res.IDs[:4] {
		if ok, err := s.IsUnseen(ctx, a, id); err != nil || !ok {
			t.Fatalf("IsUnseen(%s) = %v, %v", id, ok, err)
		}
	}
	if ok, err := s.IsUnseen(ctx, a, res.IDs[4]); err != nil || ok {
		t.Fatalf("another role's broadcast: %v, %v", ok, err)
	}
	// Read stays separate from seen.
	if _, err := s.MarkRead(ctx, a, res.IDs[:1]); err != nil {
		t.Fatal(err)
	}
	if c := checkInbox(t, s, a, &mark); c.Unseen != 4 || c.Unread != 3 {
		t.Fatalf("after read %+v", c)
	}
	if ok, _ := s.IsUnseen(ctx, a, res.IDs[0]); ok {
		t.Fatal("a read item is not unseen")
	}
	// Seen up to a position: the first explicit item and no broadcast.
	ch, err := s.MarkSeen(ctx, a, &notification.Position{User: 1})
	if err != nil || ch.Event == nil || ch.Event.Kind != notification.EventSeen || ch.Event.Unseen != 3 || ch.Counts.Unseen != 3 {
		t.Fatalf("mark seen 1.0: %+v, %v", ch, err)
	}
	mark = notification.Position{User: 1}
	checkInbox(t, s, a, &mark)
	// Everything; a position beyond the head stops at the head.
	ch, err = s.MarkSeen(ctx, a, &notification.Position{User: 99, Tenant: 99})
	if err != nil || ch.Counts.Unseen != 0 || ch.Event == nil {
		t.Fatalf("mark seen all: %+v, %v", ch, err)
	}
	mark, err = s.Head(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	checkInbox(t, s, a, &mark)
	if ch, err := s.MarkSeen(ctx, a, nil); err != nil || ch.Event != nil {
		t.Fatalf("mark seen again: %+v, %v", ch, err)
	}
	for _, id := range res.IDs {
		if ok, _ := s.IsUnseen(ctx, a, id); ok {
			t.Fatalf("%s still unseen", id)
		}
	}
	more := publish(t, s, toUsers("t", "a"), toTenant("t"))
	if c := checkInbox(t, s, a, &mark); c.Unseen != 2 || c.Unread != 5 {
		t.Fatalf("after new %+v", c)
	}
	// Archiving or deleting an unseen item takes it out of the count.
	if _, err := s.Archive(ctx, a, more.IDs[:1], false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete(ctx, a, more.IDs[1]); err != nil {
		t.Fatal(err)
	}
	if c := checkInbox(t, s, a, &mark); c.Unseen != 0 {
		t.Fatalf("after archive and delete %+v", c)
	}
	if ok, _ := s.IsUnseen(ctx, a, more.IDs[0]); ok {
		t.Fatal("an archived item is not unseen")
	}
	if _, err := s.Unarchive(ctx, a, more.IDs[:1], false); err != nil {
		t.Fatal(err)
	}
	if c := checkInbox(t, s, a, &mark); c.Unseen != 1 {
		t.Fatalf("after unarchive %+v", c)
	}
	// Another user's mark is their own; an unknown id is not unseen.
	if c := checkInbox(t, s, rcp("t", "b", "admin"), &notification.Position{}); c.Unseen != 3 {
		t.Fatalf("b: %+v", c)
	}
	if ok, err := s.IsUnseen(ctx, rcp("t", "b", ""), res.IDs[1]); err != nil || ok {
		t.Fatalf("b sees a's item: %v, %v", ok, err)
	}
	if ok, err := s.IsUnseen(ctx, a, "bogus"); err != nil || ok {
		t.Fatalf("bogus: %v, %v", ok, err)
	}
}

func testArchive(t *testing.T, s Store) {
	ctx := context.Background()
	a, b := rcp("t", "a", "admin"), rcp("t", "b", "admin")
	res := publish(t, s, withCategory(toUsers("t", "a", "b"), "x"), toUsers("t", "a"), withCategory(toTenant("t"), "x"), toRole("t", "admin"))
	e1, e2, b1, r1 := res.IDs[0], res.IDs[1], res.IDs[2], res.IDs[3]
	if _, err := s.MarkRead(ctx, a, []string{e2, r1}); err != nil {
		t.Fatal(err)
	}
	ch, err := s.Archive(ctx, a, []string{e1, e2, b1, r1, "bogus"}, false)
	if err != nil || !slices.Equal(ch.IDs, []string{e1, e2, b1, r1}) || ch.Event == nil || ch.Event.Kind != notification.EventArchived ||
		ch.Counts.Unread != 0 || ch.Event.Unread != 0 {
		t.Fatalf("archive: %+v, %v", ch, err)
	}
	if c := checkInbox(t, s, a, nil); c.Unread != 0 || len(listAll(t, s, a, false)) != 0 {
		t.Fatalf("after archive %+v", c)
	}
	arch := listArchived(t, s, a)
	if len(arch) != 4 || arch[0].ID != r1 || !arch[0].Read || arch[1].Read {
		t.Fatalf("archived list: %+v", arch)
	}
	if c := checkInbox(t, s, b, nil); c.Unread != 3 {
		t.Fatalf("b is untouched: %+v", c)
	}
	// Again: found, no change, no event.
	if ch, err := s.Archive(ctx, a, []string{e1}, false); err != nil || ch.Event != nil || len(ch.IDs) != 0 {
		t.Fatalf("archive again: %+v, %v", ch, err)
	}
	// Reading an archived item does not count.
	if _, err := s.MarkRead(ctx, a, []string{e1}); err != nil {
		t.Fatal(err)
	}
	checkInbox(t, s, a, nil)
	ch, err = s.Unarchive(ctx, a, []string{e1, b1}, false)
	if err != nil || ch.Event == nil || ch.Event.Kind != notification.EventUnarchived || ch.Counts.Unread != 1 ||
		!maps.Equal(ch.Counts.ByCategory, map[string]int64{"x": 1}) {
		t.Fatalf("unarchive: %+v, %v", ch, err)
	}
	checkInbox(t, s, a, nil)
	// All, both ways.
	ch, err = s.Archive(ctx, a, nil, true)
	if err != nil || ch.Event == nil || !ch.Event.All || ch.Counts.Unread != 0 {
		t.Fatalf("archive all: %+v, %v", ch, err)
	}
	checkInbox(t, s, a, nil)
	if len(listArchived(t, s, a)) != 4 {
		t.Fatal("archive all: list")
	}
	publish(t, s, toTenant("t")) // after archive all: in the inbox
	if c := checkInbox(t, s, a, nil); c.Unread != 1 {
		t.Fatalf("new after archive all: %+v", c)
	}
	ch, err = s.Unarchive(ctx, a, nil, true)
	if err != nil || ch.Event == nil || ch.Counts.Unread != 2 {
		t.Fatalf("unarchive all: %+v, %v", ch, err)
	}
	checkInbox(t, s, a, nil)
	if ch, err := s.Unarchive(ctx, a, nil, true); err != nil || ch.Event != nil {
		t.Fatalf("unarchive all again: %+v, %v", ch, err)
	}
	// Ids another user or tenant holds behave as absent.
	_, err = s.Archive(ctx, rcp("t", "c", ""), []string{e2}, false)
	wantErr(t, err, ErrNotFound)
	_, err = s.Archive(ctx, rcp("u", "a", "admin"), []string{b1}, false)
	wantErr(t, err, ErrNotFound)
	_, err = s.Archive(ctx, a, nil, false)
	wantErr(t, err, ErrInvalid)
	// A deleted broadcast cannot be archived.
	if _, err := s.Delete(ctx, b, b1); err != nil {
		t.Fatal(err)
	}
	_, err = s.Archive(ctx, b, []string{b1}, false)
	wantErr(t, err, ErrNotFound)
}

func testPreferences(t *testing.T, s Store) {
	ctx := context.Background()
	a, b := rcp("t", "a", ""), rcp("t", "b", "")
	if p, err := s.Preferences(ctx, a); err != nil || !p.Empty() {
		t.Fatalf("initial: %+v, %v", p, err)
	}
	before := publish(t, s, withCategory(withType(toTenant("t"), "digest"), "news"), withCategory(toTenant("t"), "news"), withType(toTenant("t"), "digest"))
	want := notification.Preferences{MutedCategories: []string{"news"}, MutedTypes: []string{"digest"}}
	ch, err := s.SetPreferences(ctx, a, want)
	if err != nil || ch.Event == nil || ch.Event.Kind != notification.EventPreferences || ch.Event.User != "a" ||
		!slices.Equal(ch.Event.Prefs.MutedCategories, want.MutedCategories) {
		t.Fatalf("set: %+v, %v", ch, err)
	}
	if p, err := s.Preferences(ctx, a); err != nil || !slices.Equal(p.MutedCategories, want.MutedCategories) || !slices.Equal(p.MutedTypes, want.MutedTypes) {
		t.Fatalf("get: %+v, %v", p, err)
	}
	// Broadcasts: filtered when read, lists and counts.
	if c := checkInbox(t, s, a, &notification.Position{}); c.Unread != 0 || c.Unseen != 0 || len(c.ByCategory) != 0 {
		t.Fatalf("a muted broadcasts: %+v", c)
	}
	if c := checkInbox(t, s, b, nil); c.Unread != 3 {
		t.Fatalf("b: %+v", c)
	}
	if ok, _ := s.IsUnseen(ctx, a, before.IDs[0]); ok {
		t.Fatal("a muted broadcast is not unseen")
	}
	// Named users: a muting user is not stored, the others are.
	res := publish(t, s, withCategory(toUsers("t", "a", "b"), "news"), withType(toUsers("t", "a"), "digest"), toUsers("t", "a", "b"))
	if d := res.Events[0].Deliveries; len(d) != 1 || d[0].User != "b" {
		t.Fatalf("deliveries %+v", d)
	}
	if d := res.Events[1].Deliveries; len(d) != 0 {
		t.Fatalf("deliveries %+v", d)
	}
	if items := listAll(t, s, a, false); len(items) != 1 || items[0].ID != res.IDs[2] {
		t.Fatalf("a: %v", ids(items))
	}
	_, err = s.Delete(ctx, a, res.IDs[1])
	wantErr(t, err, ErrNotFound)
	checkInbox(t, s, a, &notification.Position{})
	checkInbox(t, s, b, nil)
	// A muted type within a category is taken out of that category only.
	if _, err := s.SetPreferences(ctx, a, notification.Preferences{MutedTypes: []string{"digest"}}); err != nil {
		t.Fatal(err)
	}
	if c := checkInbox(t, s, a, &notification.Position{}); c.Unread != 2 || !maps.Equal(c.ByCategory, map[string]int64{"news": 1}) {
		t.Fatalf("a mutes digest: %+v", c)
	}
	// Cleared: everything is back.
	if _, err := s.SetPreferences(ctx, a, notification.Preferences{}); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Preferences(ctx, a); !p.Empty() {
		t.Fatalf("cleared: %+v", p)
	}
	if c := checkInbox(t, s, a, &notification.Position{}); c.Unread != 4 {
		t.Fatalf("a cleared: %+v", c)
	}
	for _, bad := range []notification.Preferences{
		{MutedCategories: []string{"*"}},
		{MutedTypes: []string{"*"}},
		{MutedCategories: []string{"Bad Name"}},
		{MutedCategories: []string{"a", "a"}},
		{MutedTypes: []string{strings.Repeat("x", notification.MaxTypeLen+1)}},
		{MutedCategories: slices.Repeat([]string{"c"}, notification.MaxMuted+1)},
	} {
		_, err := s.SetPreferences(ctx, a, bad)
		wantErr(t, err, ErrInvalid)
	}
}

// testInboxRandom runs random inbox operations over categories, types,
// collapse keys, archive, seen marks and preferences, and checks every
// counter against recounts after each.
func testInboxRandom(t *testing.T, s Store) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(15, 15))
	rs := []notification.Recipient{rcp("r", "a", "admin"), rcp("r", "b", "user"), rcp("r", "c", "")}
	marks := make([]notification.Position, len(rs))
	cats, types := []string{"", "x", "y"}, []string{"t1", "t2"}
	var all []string
	draft := func(r notification.Recipient) notification.Draft {
		d := []notification.Draft{toTenant("r"), toRole("r", "admin"), toUsers("r", "a", "c"), toUsers("r", r.User)}[rng.IntN(4)]
		d = withType(withCategory(d, cats[rng.IntN(len(cats))]), types[rng.IntN(len(types))])
		if !d.Audience.Broadcast() && rng.IntN(3) == 0 {
			d.CollapseKey = []string{"k1", "k2"}[rng.IntN(2)]
		}
		return d
	}
	for step := range 150 {
		i := rng.IntN(len(rs))
		r := rs[i]
		var err error
		pick := func() []string {
			var out []string
			for range 1 + rng.IntN(3) {
				if len(all) > 0 {
					out = append(out, all[rng.IntN(len(all))])
				}
			}
			return out
		}
		switch op := rng.IntN(14); {
		case op < 5 || len(all) == 0:
			all = append(all, publish(t, s, draft(r), draft(r)).IDs...)
		case op < 6:
			_, err = s.MarkRead(ctx, r, pick())
		case op < 7:
			_, err = s.Delete(ctx, r, pick()[0])
		case op < 8:
			_, err = s.Archive(ctx, r, pick(), false)
		case op < 9:
			_, err = s.Unarchive(ctx, r, pick(), false)
		case op < 10:
			_, err = s.Archive(ctx, r, nil, rng.IntN(2) == 0)
			if err != nil { // nil ids without all
				wantErr(t, err, ErrInvalid)
				err = nil
			}
		case op < 11:
			_, err = s.Unarchive(ctx, r, nil, true)
		case op < 12:
			_, err = s.MarkAllRead(ctx, r)
		case op < 13:
			if _, err = s.MarkSeen(ctx, r, nil); err == nil {
				marks[i], err = s.Head(ctx, r)
			}
		default:
			p := notification.Preferences{}
			if c := cats[rng.IntN(len(cats))]; c != "" {
				p.MutedCategories = []string{c}
			}
			if rng.IntN(2) == 0 {
				p.MutedTypes = []string{types[rng.IntN(len(types))]}
			}
			_, err = s.SetPreferences(ctx, r, p)
		}
		if err != nil && !isNotFound(err) {
			t.Fatalf("step %d: %v", step, err)
		}
		for j, r := range rs {
			checkInbox(t, s, r, &marks[j])
		}
	}
}

func testInboxInvalid(t *testing.T, s Store) {
	ctx := context.Background()
	for _, d := range []notification.Draft{
		withCategory(toUsers("t", "a"), "Upper"),
		withCategory(toUsers("t", "a"), strings.Repeat("c", notification.MaxCategoryLen+1)),
		withCategory(toUsers("t", "a"), "sp ace"),
		withKey(toTenant("t"), "k"),
		withKey(toRole("t", "admin"), "k"),
		withKey(toUsers("t", "a"), strings.Repeat("k", notification.MaxCollapseKeyLen+1)),
		withKey(toUsers("t", "a"), "bad\nkey"),
	} {
		_, err := s.Publish(ctx, PublishRequest{Drafts: []notification.Draft{toUsers("t", "a"), d}})
		wantErr(t, err, ErrInvalid)
	}
	if items := listAll(t, s, rcp("t", "a", ""), false); len(items) != 0 {
		t.Fatalf("stored %d items", len(items))
	}
	_, err := s.List(ctx, rcp("t", "a", ""), ListQuery{Category: "Bad"})
	wantErr(t, err, ErrInvalid)
	_, err = s.Unarchive(ctx, rcp("t", "a", ""), []string{}, false)
	wantErr(t, err, ErrInvalid)
	_, err = s.MarkSeen(ctx, rcp("", "a", ""), nil)
	wantErr(t, err, ErrInvalid)
}

// testPGConcurrentInbox: three nodes publish (categories, types, collapse
// keys, broadcasts) while others read, delete, archive and unarchive (ids
// and all), mark seen, change preferences and sweep. No operation fails,
// and every counter equals a recount at the end.
func testPGConcurrentInbox(t *testing.T, p *pgSchemas) {
	clk := newTestClock()
	var logs testkit.SyncBuffer
	nodes := openNodes(t, p, 3, PostgresConfig{Clock: clk.Now, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	ctx := context.Background()
	users := []string{"a", "b", "c", "d"}
	roles := map[string]string{"a": "admin", "b": "", "c": "user", "d": "admin"}
	rcpt := func(u string) notification.Recipient { return rcp("x", u, roles[u]) }
	var (
		mu  sync.Mutex
		all []string
	)
	pick := func(rng *rand.Rand) []string {
		mu.Lock()
		defer mu.Unlock()
		var out []string
		for range 1 + rng.IntN(3) {
			if len(all) > 0 {
				out = append(out, all[rng.IntN(len(all))])
			}
		}
		return out
	}
	var wg sync.WaitGroup
	for w := range 9 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 15))
			for range 25 {
				s := nodes[rng.IntN(len(nodes))]
				r := rcpt(users[rng.IntN(len(users))])
				var err error
				switch op := rng.IntN(12); {
				case op < 4 || w < 3:
					drafts := randomExpiringDrafts(rng, clk, users)
					for i := range drafts {
						drafts[i].Category = []string{"", "x", "y"}[rng.IntN(3)]
						drafts[i].Type = []string{"t1", "t2"}[rng.IntN(2)]
						if !drafts[i].Audience.Broadcast() && rng.IntN(2) == 0 {
							drafts[i].CollapseKey = []string{"k1", "k2"}[rng.IntN(2)]
						}
					}
					var res PublishResult
					if res, err = s.Publish(ctx, PublishRequest{Drafts: drafts}); err == nil {
						mu.Lock()
						all = append(all, res.IDs...)
						mu.Unlock()
					}
				case op < 5:
					if ids := pick(rng); len(ids) > 0 {
						_, err = s.Archive(ctx, r, ids, false)
					}
				case op < 6:
					if ids := pick(rng); len(ids) > 0 {
						_, err = s.Unarchive(ctx, r, ids, false)
					}
				case op < 7:
					_, err = s.Archive(ctx, r, nil, true)
				case op < 8:
					_, err = s.Unarchive(ctx, r, nil, true)
				case op < 9:
					_, err = s.MarkSeen(ctx, r, nil)
				case op < 10:
					if ids := pick(rng); len(ids) > 0 {
						_, err = s.MarkRead(ctx, r, ids)
					}
				case op < 11:
					if ids := pick(rng); len(ids) > 0 {
						_, err = s.Delete(ctx, r, ids[0])
					}
				default:
					clk.Advance(time.Second)
					_, err = s.sweepNow(ctx)
				}
				if err != nil && !errors.Is(err, ErrNotFound) {
					t.Errorf("worker %d: %v", w, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	deadlocks := logRetries(t, nodes)
	if deadlocks > 0 && os.Getenv("HERALD_TEST_LOGS") != "" {
		t.Logf("logs:\n%s", logs.String())
	}
	for _, d := range []time.Duration{0, time.Minute} {
		clk.Advance(d)
		if _, err := nodes[0].sweepNow(ctx); err != nil {
			t.Fatal(err)
		}
		for i, u := range users {
			checkInbox(t, nodes[i%len(nodes)], rcpt(u), nil)
		}
	}
	// The unseen counters: after everyone marks seen, nothing is unseen.
	for i, u := range users {
		if c, err := nodes[i%len(nodes)].MarkSeen(ctx, rcpt(u), nil); err != nil || c.Counts.Unseen != 0 {
			t.Fatalf("%s: seen: %+v, %v", u, c.Counts, err)
		}
	}
}
