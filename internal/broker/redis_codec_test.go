package broker

import (
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/notification"
)

func codecCases() []struct {
	name string
	ev   *notification.Event
} {
	created := time.UnixMilli(1_760_000_000_123).UTC()
	return []struct {
		name string
		ev   *notification.Event
	}{
		{"explicit users", &notification.Event{
			Kind: notification.EventNotification, Tenant: "acme",
			Notification: &notification.Notification{
				ID: "01JAAAAAAAAAAAAAAAAAAAAAAA", Tenant: "acme",
				Audience: notification.Audience{Kind: notification.AudienceUsers},
				Type:     "comment", Title: "Hi ✓", Body: "body\x00with nul",
				Data: json.RawMessage(`{"a":1}`), CreatedAt: created,
				ExpiresAt: created.Add(time.Hour),
			},
			Deliveries: []notification.Delivery{{User: "u1", Seq: 7, Unread: 3}, {User: "u2", Seq: 1 << 40, Unread: 0}},
		}},
		{"broadcast role", &notification.Event{
			Kind: notification.EventNotification, Tenant: "acme", TenantSeq: 42,
			Notification: &notification.Notification{
				ID: "01JBBBBBBBBBBBBBBBBBBBBBBB", Tenant: "acme",
				Audience: notification.Audience{Kind: notification.AudienceRole, Role: "admin"},
				Type:     "t", Data: json.RawMessage{}, CreatedAt: created,
			},
		}},
		{"audience users kept", &notification.Event{
			Kind: notification.EventNotification, Tenant: "t",
			Notification: &notification.Notification{
				Audience: notification.Audience{Kind: notification.AudienceUsers, Users: []string{"a", "b"}},
			},
			Deliveries: []notification.Delivery{{User: "a", Seq: 1, Unread: 1}},
		}},
		{"read some", &notification.Event{Kind: notification.EventRead, Tenant: "acme", User: "u1",
			IDs: []string{"x", "y"}, Unread: 5}},
		{"read all", &notification.Event{Kind: notification.EventRead, Tenant: "acme", User: "u1", All: true}},
		{"deleted", &notification.Event{Kind: notification.EventDeleted, Tenant: "acme", User: "u1",
			IDs: []string{"x"}, Unread: -1}},
		{"revoke user", &notification.Event{Kind: notification.EventRevoke, Tenant: "acme", User: "u1",
			RevokedAt: time.Date(2026, 11, 3, 4, 5, 6, 789, time.UTC)}},
		{"revoke token", &notification.Event{Kind: notification.EventRevoke, TokenID: "jti-1",
			RevokedAt:    time.Date(2026, 11, 3, 4, 5, 6, 0, time.UTC),
			RevokedUntil: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)}},
		{"pre-1970 time", &notification.Event{Kind: notification.EventRevoke, Tenant: "a", User: "b",
			RevokedAt: time.Date(1900, 1, 1, 0, 0, 0, 1, time.UTC)}},
		{"lift", &notification.Event{Kind: notification.EventLift, Tenant: "acme", User: "u1"}},
		{"expired for a user", &notification.Event{Kind: notification.EventExpired, Tenant: "acme", User: "u1",
			IDs: []string{"x", "y"}}},
		{"expired broadcast", &notification.Event{Kind: notification.EventExpired, Tenant: "acme",
			IDs: []string{"x"}, Notification: &notification.Notification{ID: "x", Tenant: "acme",
				Audience: notification.Audience{Kind: notification.AudienceRole, Role: "admin"}}}},
		{"replacement with a category", &notification.Event{
			Kind: notification.EventNotification, Tenant: "acme",
			Notification: &notification.Notification{ID: "01JCCCCCCCCCCCCCCCCCCCCCCC", Tenant: "acme",
				Audience: notification.Audience{Kind: notification.AudienceUsers}, Type: "build", CreatedAt: created,
				Category: "ci.builds", CollapseKey: "build-7 ✓"},
			Deliveries: []notification.Delivery{{User: "u1", Seq: 8, Unread: 2, Replaces: "01JBBBBBBBBBBBBBBBBBBBBBBB", ReplacedUnread: true},
				{User: "u2", Seq: 3, Unread: 1, Replaces: "01JAAAAAAAAAAAAAAAAAAAAAAA", ReplacedUnseen: true}},
		}},
		{"archived with counts", &notification.Event{Kind: notification.EventArchived, Tenant: "acme", User: "u1",
			IDs: []string{"x"}, Unread: 4, Unseen: 2, ByCategory: map[string]int64{"ci": 3, "billing": 1}}},
		{"unarchived all, empty counts", &notification.Event{Kind: notification.EventUnarchived, Tenant: "acme", User: "u1",
			All: true, ByCategory: map[string]int64{}}},
		{"seen", &notification.Event{Kind: notification.EventSeen, Tenant: "acme", User: "u1", Unread: 3, Unseen: 0}},
		{"preferences", &notification.Event{Kind: notification.EventPreferences, Tenant: "acme", User: "u1",
			Prefs: &notification.Preferences{MutedCategories: []string{"a", "b"}, MutedTypes: []string{"t"}}}},
		{"preferences cleared", &notification.Event{Kind: notification.EventPreferences, Tenant: "acme", User: "u1",
			Prefs: &notification.Preferences{}}},
	}
}

func TestRedisCodecRoundTrip(t *testing.T) {
	for _, tc := range codecCases() {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeEvent(string(encodeEvent(tc.ev)))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.ev) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, tc.ev)
			}
		})
	}
}

func TestRedisCodecRejectsGarbage(t *testing.T) {
	for _, tc := range codecCases() {
		msg := encodeEvent(tc.ev)
		for i := 0; i < len(msg); i++ { // every truncation
			if _, err := decodeEvent(string(msg[:i])); err == nil {
				t.Fatalf("%s: truncated at %d/%d decoded", tc.name, i, len(msg))
			}
		}
		if _, err := decodeEvent(string(msg) + "x"); !errors.Is(err, errCodec) {
			t.Fatalf("%s: trailing byte: %v", tc.name, err)
		}
	}
	bad := [][]byte{
		nil,
		{msgEvent, 9}, // unknown kind, truncated
		{msgEvent, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, // overflowing length
		{msgEvent, 1, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x04},                         // huge id count
		{msgProbe, 1},
	}
	for i, b := range bad {
		if _, err := decodeEvent(string(b)); err == nil {
			t.Fatalf("bad[%d] decoded", i)
		}
	}
	if seq, err := decodeProbe(string(encodeProbe(1 << 50))); err != nil || seq != 1<<50 {
		t.Fatalf("probe: %d %v", seq, err)
	}
}

func FuzzRedisDecodeEvent(f *testing.F) {
	for _, tc := range codecCases() {
		f.Add(encodeEvent(tc.ev))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := decodeEvent(string(b))
		if err != nil {
			return
		}
		again, err := decodeEvent(string(encodeEvent(ev)))
		if err != nil || !reflect.DeepEqual(ev, again) {
			t.Fatalf("re-encode differs: %v", err)
		}
	})
}

// TestRedisPartitionStable pins the partition function: changing it would
// split a cluster running two versions (a stream on two channels).
func TestRedisPartitionStable(t *testing.T) {
	tests := []struct {
		name         string
		tenant, user string
		isUser       bool
		want         int
	}{
		{"tenant", "acme", "", false, partitionOf(64, "acme", "", false)},
		{"user", "acme", "alice", true, partitionOf(64, "acme", "alice", true)},
	}
	// Golden values of FNV-1a 64: fnv("acme")%64 and fnv("acme\x00alice")%64.
	tests[0].want, tests[1].want = fnvMod("acme", 64), fnvMod("acme\x00alice", 64)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := partitionOf(64, tc.tenant, tc.user, tc.isUser); got != tc.want {
				t.Fatalf("partition = %d, want %d", got, tc.want)
			}
		})
	}
	if got := partitionOf(64, "acme", "", false); got != 15 {
		t.Fatalf("partition of tenant acme = %d, pinned 15", got)
	}
	if got := partitionOf(64, "acme", "alice", true); got != 47 {
		t.Fatalf("partition of acme/alice = %d, pinned 47", got)
	}
	// Spread: 64k users over 64 partitions, none far from the mean.
	counts := make([]int, 64)
	for i := 0; i < 1<<16; i++ {
		counts[partitionOf(64, "t", "user-"+strconv.Itoa(i), true)]++
	}
	for p, n := range counts {
		if n < 800 || n > 1250 {
			t.Fatalf("partition %d got %d of 65536", p, n)
		}
	}
}

func fnvMod(s string, n uint64) int {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return int(h % n)
}

func TestRedisRouteSplitsDeliveries(t *testing.T) {
	r := &Redis{cfg: RedisConfig{Partitions: 8}, channels: make([]string, 8)}
	for i := range r.channels {
		r.channels[i] = "h:{p" + strconv.Itoa(i) + "}"
	}
	ev := codecCases()[0].ev
	ev.Deliveries = nil
	for i := 0; i < 50; i++ {
		ev.Deliveries = append(ev.Deliveries, notification.Delivery{User: "user" + strconv.Itoa(i), Seq: int64(i + 1), Unread: 1})
	}
	msgs := r.route(ev)
	if len(msgs) < 2 || len(msgs) > 8 {
		t.Fatalf("%d messages for 50 users over 8 partitions", len(msgs))
	}
	seen := map[string]bool{}
	chans := map[int]bool{}
	for _, m := range msgs {
		if chans[m.part] {
			t.Fatalf("two messages on partition %d", m.part)
		}
		chans[m.part] = true
		got, err := decodeEvent(string(m.payload))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got.Notification, ev.Notification) {
			t.Fatal("notification differs in a part")
		}
		for _, d := range got.Deliveries {
			if want := partitionOf(8, ev.Tenant, d.User, true); want != m.part {
				t.Fatalf("%s sent on partition %d, belongs on %d", d.User, m.part, want)
			}
			if seen[d.User] {
				t.Fatalf("%s twice", d.User)
			}
			seen[d.User] = true
		}
	}
	if len(seen) != 50 {
		t.Fatalf("%d of 50 users routed", len(seen))
	}

	// One stream, one channel: a user's reads go where its notifications go.
	read := &notification.Event{Kind: notification.EventRead, Tenant: ev.Tenant, User: "user3"}
	one := &notification.Event{Kind: notification.EventNotification, Tenant: ev.Tenant, Notification: ev.Notification,
		Deliveries: []notification.Delivery{{User: "user3", Seq: 9}}}
	if a, b := r.route(read)[0].part, r.route(one)[0].part; a != b {
		t.Fatalf("user3's read on partition %d, notification on %d", a, b)
	}
	bc := codecCases()[1].ev
	if got, want := r.route(bc)[0].part, partitionOf(8, bc.Tenant, "", false); got != want {
		t.Fatalf("broadcast on partition %d, want tenant partition %d", got, want)
	}
}
