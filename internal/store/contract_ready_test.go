package store

import (
	"context"
	"maps"
	"reflect"
	"testing"

	"github.com/heraldhq/herald/internal/notification"
)

// testReadyCounts: the counts of a ready frame (HeadCounts, one statement
// per engine) over categories, types, seen marks, archived and read items,
// tenant and role broadcasts and muted preferences, against counts worked
// out by hand; HeadCounts agrees with Head and Counts.
func testReadyCounts(t *testing.T, s Store) {
	ctx := context.Background()
	a, b, c := rcp("t", "a", "admin"), rcp("t", "b", "user"), rcp("t", "c", "")
	typed := func(d notification.Draft, cat, typ string) notification.Draft {
		return withType(withCategory(d, cat), typ)
	}
	first := publish(t, s,
		typed(toUsers("t", "a", "b"), "billing", "invoice"), // n1
		withCategory(toUsers("t", "a"), "social"),           // n2
		typed(toTenant("t"), "billing", "promo"),            // n3
	).IDs
	if _, err := s.MarkSeen(ctx, a, nil); err != nil {
		t.Fatal(err)
	}
	second := publish(t, s,
		toUsers("t", "a"),                           // n4: no category
		typed(toTenant("t"), "news", "digest"),      // n5
		typed(toRole("t", "admin"), "ops", "alert"), // n6
		typed(toRole("t", "user"), "ops", "alert"),  // n7
		typed(toTenant("t"), "news", "promo"),       // n8
		withCategory(toUsers("t", "a"), "billing"),  // n9
	).IDs
	if _, err := s.Archive(ctx, a, []string{first[1], second[1]}, false); err != nil { // n2, n5
		t.Fatal(err)
	}
	if _, err := s.MarkRead(ctx, a, []string{first[2]}); err != nil { // n3
		t.Fatal(err)
	}
	if _, err := s.SetPreferences(ctx, a, notification.Preferences{MutedTypes: []string{"promo"}}); err != nil {
		t.Fatal(err)
	}

	check := func(r notification.Recipient, unread, unseen int64, byCat map[string]int64, prefs notification.Preferences) {
		t.Helper()
		head, err := s.Head(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		h, got, err := s.HeadCounts(ctx, r)
		if err != nil {
			t.Fatalf("%v: head counts: %v", r, err)
		}
		if h != head {
			t.Fatalf("%v: HeadCounts head %v, Head %v", r, h, head)
		}
		if got.Unread != unread || got.Unseen != unseen || !maps.Equal(got.ByCategory, byCat) || !reflect.DeepEqual(got.Prefs, prefs) {
			t.Fatalf("%v: ready counts %+v, want unread %d, unseen %d, by category %v, prefs %+v", r, got, unread, unseen, byCat, prefs)
		}
		checkInbox(t, s, r, nil)
		if c := counts(t, s, r); !reflect.DeepEqual(c, got) {
			t.Fatalf("%v: Counts %+v, HeadCounts %+v", r, c, got)
		}
	}
	// a: n1 n4 n6 n9 unread (n3 read, n2 n5 archived, n7 another role,
	// n8 muted); n4 n6 n9 after the seen mark.
	check(a, 4, 3, map[string]int64{"billing": 2, "ops": 1}, notification.Preferences{MutedTypes: []string{"promo"}})
	check(b, 5, 5, map[string]int64{"billing": 2, "news": 2, "ops": 1}, notification.Preferences{})
	check(c, 3, 3, map[string]int64{"billing": 1, "news": 2}, notification.Preferences{})

	// Muting a category instead: n6 goes, n8 comes back.
	if _, err := s.SetPreferences(ctx, a, notification.Preferences{MutedCategories: []string{"ops"}}); err != nil {
		t.Fatal(err)
	}
	check(a, 4, 3, map[string]int64{"billing": 2, "news": 1}, notification.Preferences{MutedCategories: []string{"ops"}})
	// Unarchiving the broadcast n5 brings it back, unread and unseen.
	if _, err := s.Unarchive(ctx, a, []string{second[1]}, false); err != nil {
		t.Fatal(err)
	}
	check(a, 5, 4, map[string]int64{"billing": 2, "news": 2}, notification.Preferences{MutedCategories: []string{"ops"}})
}
