package session

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/notification"
	"github.com/heraldhq/herald/internal/store"
)

const (
	id1 = "01HZX3V6Q8N2M4K7J9B1C5D0EF"
	id2 = "01HZX3V6Q8N2M4K7J9B1C5D0EG"
)

func sp(s string) *string { return &s }
func ip(i int) *int       { return &i }
func bp(b bool) *bool     { return &b }

func ids(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = id1
	}
	return out
}

func TestParse(t *testing.T) {
	ref := Ref{JSON: []byte(`"r1"`), Ack: 7}
	tests := []struct {
		name    string
		wire    string
		args    *Args
		want    Request // Ref is always ref
		wantErr string  // a substring of the error; "" for none
	}{
		{name: "no type", wire: "", wantErr: "type missing"},
		{name: "unknown type", wire: "notification:subscribe", wantErr: "unknown type"},
		{name: "wrong case", wire: "PING", wantErr: "unknown type"},

		{name: "auth", wire: "auth", args: &Args{Token: sp("tok")}, want: Request{Name: NameAuth, Token: "tok"}},
		{name: "auth with since", wire: "auth", args: &Args{Token: sp("tok"), Since: sp("12.3")},
			want: Request{Name: NameAuth, Token: "tok", Since: &notification.Position{User: 12, Tenant: 3}}},
		{name: "auth with empty since", wire: "auth", args: &Args{Token: sp("tok"), Since: sp("")},
			want: Request{Name: NameAuth, Token: "tok", Since: &notification.Position{}}},
		{name: "auth with a token of the maximum length", wire: "auth",
			args: &Args{Token: sp(strings.Repeat("a", MaxTokenLen))},
			want: Request{Name: NameAuth, Token: strings.Repeat("a", MaxTokenLen)}},
		{name: "auth without args", wire: "auth", wantErr: "token missing"},
		{name: "auth without token", wire: "auth", args: &Args{Since: sp("1.1")}, wantErr: "token missing"},
		{name: "auth with empty token", wire: "auth", args: &Args{Token: sp("")}, wantErr: "token missing"},
		{name: "auth with a token over the limit", wire: "auth",
			args: &Args{Token: sp(strings.Repeat("a", MaxTokenLen+1))}, wantErr: "too long"},
		{name: "auth with bad since", wire: "auth", args: &Args{Token: sp("tok"), Since: sp("12")}, wantErr: "since"},
		{name: "auth with negative since", wire: "auth", args: &Args{Token: sp("tok"), Since: sp("-1.0")}, wantErr: "since"},

		{name: "list", wire: "notification:list", args: &Args{}, want: Request{Name: NameList}},
		{name: "list without args", wire: "notification:list", want: Request{Name: NameList}},
		{name: "list with everything", wire: "notification:list",
			args: &Args{Before: sp(id1), Limit: ip(20), Unread: bp(true)},
			want: Request{Name: NameList, Query: store.ListQuery{Before: id1, Limit: 20, UnreadOnly: true}}},
		{name: "list unread false", wire: "notification:list", args: &Args{Unread: bp(false)}, want: Request{Name: NameList}},
		{name: "list limit 0 means the default", wire: "notification:list", args: &Args{Limit: ip(0)},
			want: Request{Name: NameList}},
		{name: "list limit is capped", wire: "notification:list", args: &Args{Limit: ip(store.MaxListLimit + 1)},
			want: Request{Name: NameList, Query: store.ListQuery{Limit: store.MaxListLimit}}},
		{name: "list negative limit", wire: "notification:list", args: &Args{Limit: ip(-1)}, wantErr: "negative limit"},
		{name: "list malformed before", wire: "notification:list", args: &Args{Before: sp("x")}, wantErr: "before"},
		{name: "list lower-case before", wire: "notification:list", args: &Args{Before: sp(strings.ToLower(id1))},
			wantErr: "before"},

		{name: "mark-read ids", wire: "notification:mark-read", args: &Args{IDs: []string{id1, id2}},
			want: Request{Name: NameMarkRead, IDs: []string{id1, id2}}},
		{name: "mark-read id", wire: "notification:mark-read", args: &Args{ID: sp(id1)},
			want: Request{Name: NameMarkRead, IDs: []string{id1}}},
		{name: "mark-read id and ids", wire: "notification:mark-read", args: &Args{ID: sp(id2), IDs: []string{id1}},
			want: Request{Name: NameMarkRead, IDs: []string{id1, id2}}},
		{name: "mark-read the maximum of ids", wire: "notification:mark-read", args: &Args{IDs: ids(MaxIDs)},
			want: Request{Name: NameMarkRead, IDs: ids(MaxIDs)}},
		{name: "mark-read too many ids", wire: "notification:mark-read", args: &Args{IDs: ids(MaxIDs + 1)},
			wantErr: "ids required"},
		{name: "mark-read too many with id", wire: "notification:mark-read", args: &Args{IDs: ids(MaxIDs), ID: sp(id2)},
			wantErr: "ids required"},
		{name: "mark-read without ids", wire: "notification:mark-read", args: &Args{}, wantErr: "ids required"},
		{name: "mark-read empty ids", wire: "notification:mark-read", args: &Args{IDs: []string{}}, wantErr: "ids required"},
		{name: "mark-read malformed id", wire: "notification:mark-read", args: &Args{IDs: []string{id1, "nope"}},
			wantErr: "malformed id"},
		{name: "mark-read malformed single id", wire: "notification:mark-read", args: &Args{ID: sp("")},
			wantErr: "malformed id"},

		{name: "mark-all-read", wire: "notification:mark-all-read", args: &Args{}, want: Request{Name: NameMarkAllRead}},
		{name: "mark-all-read without args", wire: "notification:mark-all-read", want: Request{Name: NameMarkAllRead}},

		{name: "delete", wire: "notification:delete", args: &Args{ID: sp(id1)}, want: Request{Name: NameDelete, ID: id1}},
		{name: "delete without id", wire: "notification:delete", args: &Args{}, wantErr: "malformed id"},
		{name: "delete malformed id", wire: "notification:delete", args: &Args{ID: sp(id1 + "0")}, wantErr: "malformed id"},

		{name: "unread-count", wire: "notification:unread-count", want: Request{Name: NameUnreadCount}},

		{name: "list by category, archived", wire: "notification:list", args: &Args{Category: sp("ci.builds"), Archived: bp(true)},
			want: Request{Name: NameList, Query: store.ListQuery{Category: "ci.builds", Archived: true}}},
		{name: "list bad category", wire: "notification:list", args: &Args{Category: sp("CI")}, wantErr: "category"},
		{name: "list empty category", wire: "notification:list", args: &Args{Category: sp("")}, wantErr: "category"},
		{name: "list oversized category", wire: "notification:list", args: &Args{Category: sp(strings.Repeat("c", 65))}, wantErr: "category"},

		{name: "seen", wire: "notification:seen", want: Request{Name: NameSeen}},
		{name: "seen up to", wire: "notification:seen", args: &Args{Position: sp("4.2")},
			want: Request{Name: NameSeen, Position: &notification.Position{User: 4, Tenant: 2}}},
		{name: "seen bad position", wire: "notification:seen", args: &Args{Position: sp("4")}, wantErr: "position"},
		{name: "seen empty position", wire: "notification:seen", args: &Args{Position: sp("")}, wantErr: "position"},
		{name: "seen huge position", wire: "notification:seen", args: &Args{Position: sp(strings.Repeat("9", 50) + ".1")}, wantErr: "position"},

		{name: "archive ids", wire: "notification:archive", args: &Args{IDs: []string{id1}, ID: sp(id2)},
			want: Request{Name: NameArchive, IDs: []string{id1, id2}}},
		{name: "archive all", wire: "notification:archive", args: &Args{All: bp(true)}, want: Request{Name: NameArchive, All: true}},
		{name: "archive all false", wire: "notification:archive", args: &Args{All: bp(false)}, wantErr: "ids or all required"},
		{name: "archive nothing", wire: "notification:archive", wantErr: "ids or all required"},
		{name: "archive ids and all", wire: "notification:archive", args: &Args{All: bp(true), ID: sp(id1)}, wantErr: "exclusive"},
		{name: "archive malformed id", wire: "notification:archive", args: &Args{ID: sp("x")}, wantErr: "malformed id"},
		{name: "archive too many", wire: "notification:archive", args: &Args{IDs: ids(MaxIDs + 1)}, wantErr: "ids or all required"},
		{name: "unarchive all", wire: "notification:unarchive", args: &Args{All: bp(true)}, want: Request{Name: NameUnarchive, All: true}},
		{name: "unarchive id", wire: "notification:unarchive", args: &Args{ID: sp(id1)}, want: Request{Name: NameUnarchive, IDs: []string{id1}}},

		{name: "preferences", wire: "preferences:get", want: Request{Name: NamePreferences}},
		{name: "set preferences", wire: "preferences:set", args: &Args{MutedCategories: []string{"news"}, MutedTypes: []string{"a/b"}},
			want: Request{Name: NameSetPreferences, Prefs: notification.Preferences{MutedCategories: []string{"news"}, MutedTypes: []string{"a/b"}}}},
		{name: "set empty preferences", wire: "preferences:set", args: &Args{}, want: Request{Name: NameSetPreferences}},
		{name: "mute everything", wire: "preferences:set", args: &Args{MutedCategories: []string{"*"}}, wantErr: "mute everything"},
		{name: "mute a bad category", wire: "preferences:set", args: &Args{MutedCategories: []string{"A B"}}, wantErr: "not a valid name"},
		{name: "mute too many", wire: "preferences:set", args: &Args{MutedTypes: ids(notification.MaxMuted + 1)}, wantErr: "more than"},
		{name: "mute twice", wire: "preferences:set", args: &Args{MutedTypes: []string{"a", "a"}}, wantErr: "twice"},
		{name: "ping", wire: "ping", args: &Args{}, want: Request{Name: NamePing}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.wire, tt.args, ref)
			if !reflect.DeepEqual(got.Ref, ref) {
				t.Errorf("ref %+v, want %+v", got.Ref, ref)
			}
			if tt.wantErr != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want ErrInvalid mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.want.Ref = ref
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// TestParseRejectsMisplacedFields sends every field to every request that
// does not take it. The allowed sets are written out here, not read from the
// package's table, so a change to the protocol shows up as a test failure.
func TestParseRejectsMisplacedFields(t *testing.T) {
	allowed := map[string][]string{
		"auth":                       {"token", "since"},
		"notification:list":          {"before", "limit", "unread", "category", "archived"},
		"notification:mark-read":     {"id", "ids"},
		"notification:mark-all-read": nil,
		"notification:delete":        {"id"},
		"notification:unread-count":  nil,
		"ping":                       nil,
		"notification:seen":          {"position"},
		"notification:archive":       {"id", "ids", "all"},
		"notification:unarchive":     {"id", "ids", "all"},
		"preferences:get":            nil,
		"preferences:set":            {"muted_categories", "muted_types"},
		"subscribe":                  {"topics"},
		"unsubscribe":                {"topics"},
	}
	fields := map[string]func(*Args){
		"token":            func(a *Args) { a.Token = sp("tok") },
		"since":            func(a *Args) { a.Since = sp("1.1") },
		"id":               func(a *Args) { a.ID = sp(id1) },
		"ids":              func(a *Args) { a.IDs = []string{id1} },
		"before":           func(a *Args) { a.Before = sp(id1) },
		"limit":            func(a *Args) { a.Limit = ip(5) },
		"unread":           func(a *Args) { a.Unread = bp(true) },
		"position":         func(a *Args) { a.Position = sp("1.1") },
		"all":              func(a *Args) { a.All = bp(true) },
		"category":         func(a *Args) { a.Category = sp("c") },
		"archived":         func(a *Args) { a.Archived = bp(true) },
		"muted_categories": func(a *Args) { a.MutedCategories = []string{"c"} },
		"muted_types":      func(a *Args) { a.MutedTypes = []string{"t"} },
		"topics":           func(a *Args) { a.Topics = []string{"project.42"} },
	}
	if len(allowed) != len(Names()) {
		t.Fatalf("the test knows %d requests, the package %d", len(allowed), len(Names()))
	}
	for wire, ok := range allowed {
		for field, set := range fields {
			isAllowed := false
			for _, f := range ok {
				isAllowed = isAllowed || f == field
			}
			t.Run(fmt.Sprintf("%s/%s", wire, field), func(t *testing.T) {
				// A valid request of this name plus the field.
				a := &Args{}
				switch wire {
				case "auth":
					a.Token = sp("tok")
				case "notification:mark-read", "notification:delete":
					a.ID = sp(id1)
				case "notification:archive", "notification:unarchive":
					if field != "ids" && field != "all" {
						a.ID = sp(id1)
					}
				case "subscribe", "unsubscribe":
					a.Topics = []string{"project.42"}
				}
				set(a)
				_, err := Parse(wire, a, Ref{Ack: NoAck})
				if isAllowed {
					if err != nil {
						t.Errorf("allowed field refused: %v", err)
					}
					return
				}
				want := fmt.Sprintf("field %q not allowed in %q", field, wire)
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
					t.Errorf("err = %v, want %s", err, want)
				}
			})
		}
	}
}

func TestNames(t *testing.T) {
	want := []string{"auth", "notification:list", "notification:mark-read", "notification:mark-all-read",
		"notification:delete", "notification:unread-count", "ping", "notification:seen", "notification:archive",
		"notification:unarchive", "preferences:get", "preferences:set",
		"subscribe", "unsubscribe"}
	names := Names()
	if len(names) != len(want) {
		t.Fatalf("Names() = %v, want %v", names, want)
	}
	seen := map[string]bool{}
	for i, n := range names {
		if n.String() != want[i] {
			t.Errorf("Names()[%d] = %q, want %q", i, n, want[i])
		}
		if seen[n.String()] {
			t.Errorf("duplicate wire name %q", n)
		}
		seen[n.String()] = true
		got, ok := Lookup(n.String())
		if !ok || got != n {
			t.Errorf("Lookup(%q) = %v, %v; want %v", n, got, ok, n)
		}
	}
	for _, wire := range []string{"", "unknown", "Auth", "auth ", "notification:"} {
		if n, ok := Lookup(wire); ok || n != NameNone {
			t.Errorf("Lookup(%q) = %v, %v", wire, n, ok)
		}
	}
	if NameNone.String() != "" || Name(nameCount).String() != "unknown" || Name(255).String() != "unknown" {
		t.Errorf("out of range names: %q %q", NameNone, Name(nameCount))
	}
}

func TestValidRef(t *testing.T) {
	tests := []struct {
		name string
		ref  string
		ok   bool
	}{
		{name: "absent", ref: "", ok: true},
		{name: "string", ref: `"abc"`, ok: true},
		{name: "number", ref: `42`, ok: true},
		{name: "negative number", ref: `-1`, ok: true},
		{name: "zero", ref: `0`, ok: true},
		{name: "string of the maximum length", ref: `"` + strings.Repeat("x", MaxRefLen-2) + `"`, ok: true},
		{name: "too long", ref: `"` + strings.Repeat("x", MaxRefLen-1) + `"`, ok: false},
		{name: "object", ref: `{"a":1}`, ok: false},
		{name: "array", ref: `[1]`, ok: false},
		{name: "true", ref: `true`, ok: false},
		{name: "null", ref: `null`, ok: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ref []byte
			if tt.ref != "" {
				ref = []byte(tt.ref)
			}
			err := ValidRef(ref)
			if tt.ok != (err == nil) {
				t.Fatalf("ValidRef(%s) = %v, want ok %v", tt.ref, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
		})
	}
}
