package node

import (
	"maps"
	"slices"
	"strings"
	"testing"
)

// The inbox-model cases of the protocol suite (issue 15), on every
// transport: categories, collapse keys, seen vs read, archive and
// preferences. Every state change reaches the user's other connection.

func inboxProtoCases() []protoCase {
	return []protoCase{
		{name: "categories", run: protoCategories},
		{name: "collapse key", run: protoCollapse},
		{name: "seen", run: protoSeen},
		{name: "archive", run: protoArchive},
		{name: "archive all", run: protoArchiveAll},
		{name: "archive another user's id", run: protoArchiveOther},
		{name: "preferences", run: protoPreferences},
	}
}

func inboxBadRequests(with func(kv ...any) func(id, tok string) map[string]any) []badRequest {
	many := make([]any, 33)
	for i := range many {
		many[i] = "c" + strings.Repeat("x", i)
	}
	return []badRequest{
		{name: "list malformed category", request: "notification:list", args: with("category", "Not OK"), rest: "invalid_request"},
		{name: "list oversized category", request: "notification:list", args: with("category", strings.Repeat("c", 65)), rest: "invalid_request"},
		{name: "list archived not a boolean", request: "notification:list", args: with("archived", "yes"), rest: "invalid_request"},
		{name: "seen malformed position", request: "notification:seen", args: with("position", "x.y"), rest: "invalid_request"},
		{name: "seen position not a string", request: "notification:seen", args: with("position", 3), rest: "invalid_request"},
		{name: "seen misplaced id", request: "notification:seen", args: with("id", "$id"), rest: "invalid_request"},
		{name: "archive malformed id", request: "notification:archive", args: with("id", "bad"), rest: "not_found"},
		{name: "archive nothing", request: "notification:archive", args: with(), noREST: noRESTArgs},
		{name: "archive ids and all", request: "notification:archive", args: with("id", "$id", "all", true), noREST: noRESTArgs},
		{name: "archive all not a boolean", request: "notification:archive", args: with("all", "yes"), noREST: noRESTArgs},
		{name: "unarchive malformed id", request: "notification:unarchive", args: with("id", "bad"), rest: "not_found"},
		{name: "preferences misplaced id", request: "preferences:get", args: with("id", "$id"), noREST: noRESTArgs},
		{name: "mute everything", request: "preferences:set", args: with("muted_categories", []any{"*"}), rest: "invalid_request"},
		{name: "mute every type", request: "preferences:set", args: with("muted_types", []any{"*"}), rest: "invalid_request"},
		{name: "mute a malformed category", request: "preferences:set", args: with("muted_categories", []any{"Bad Name"}), rest: "invalid_request"},
		{name: "mute too many", request: "preferences:set", args: with("muted_categories", many), rest: "invalid_request"},
		{name: "mute not a list", request: "preferences:set", args: with("muted_types", "a"), rest: "invalid_request"},
		{name: "preferences unknown field", request: "preferences:set", args: with("muted", []any{"a"}), rest: "invalid_request"},
	}
}

// publishWith publishes one notification to user with extra fields.
func (e *protoEnv) publishWith(tenant, user string, extra map[string]any) string {
	e.t.Helper()
	body := toUsers(tenant, user)
	maps.Copy(body, extra)
	return e.n.publish(body)
}

func countsOf(t testing.TB, fields map[string]any) (unread, unseen int, by map[string]int) {
	t.Helper()
	c, _ := fields["count"].(float64)
	s, _ := fields["unseen"].(float64)
	by = map[string]int{}
	if m, ok := fields["by_category"].(map[string]any); ok {
		for k, v := range m {
			f, _ := v.(float64)
			by[k] = int(f)
		}
	}
	return int(c), int(s), by
}

// counts reads c's counts with an unread-count request.
func (e *protoEnv) counts(c protoClient) (unread, unseen int, by map[string]int) {
	e.t.Helper()
	return countsOf(e.t, e.ok(c.request("notification:unread-count", nil), "unread-count").fields)
}

// waitUnseen consumes c's unread events up to one with unseen n.
func (e *protoEnv) waitUnseen(c protoClient, n int) map[string]any {
	e.t.Helper()
	for {
		ev := c.nextEvent("unread")
		if got, _ := ev["unseen"].(float64); int(got) == n {
			return ev
		}
	}
}

func protoCategories(t *testing.T, e *protoEnv) {
	u := e.user("alice")
	a, b := e.open(protoTenant, u), e.open(protoTenant, u)
	billing := e.publishWith(protoTenant, u, map[string]any{"category": "billing"})
	e.publishWith(protoTenant, u, map[string]any{"category": "social"})
	e.publish(protoTenant, u, 1)
	for _, c := range []protoClient{a, b} {
		e.waitUnread(c, 3)
	}
	if n, unseen, by := e.counts(a); n != 3 || unseen != 3 || !maps.Equal(by, map[string]int{"billing": 1, "social": 1}) {
		t.Fatalf("%s: counts %d %d %v", e.tr.name, n, unseen, by)
	}
	rep := e.ok(a.request("notification:list", map[string]any{"category": "billing"}), "list billing")
	if got := itemIDs(t, rep); !slices.Equal(got, []string{billing}) || items(t, rep)[0]["category"] != "billing" {
		t.Fatalf("%s: list billing %s", e.tr.name, rep)
	}
	e.ok(a.request("notification:mark-read", map[string]any{"id": billing}), "mark-read")
	for _, c := range []protoClient{a, b} {
		c.nextEvent("notification:read")
		for {
			ev := c.nextEvent("unread")
			if n, _, by := countsOf(t, ev); n == 2 {
				if !maps.Equal(by, map[string]int{"social": 1}) {
					t.Fatalf("%s: unread event %v", e.tr.name, ev)
				}
				break
			}
		}
	}
}

func protoCollapse(t *testing.T, e *protoEnv) {
	u := e.user("alice")
	a, b := e.open(protoTenant, u), e.open(protoTenant, u)
	first := e.publishWith(protoTenant, u, map[string]any{"collapse_key": "build-7", "title": "Build 7 running"})
	for _, c := range []protoClient{a, b} {
		if n := c.nextEvent("notification"); str(n["id"]) != first || n["collapse_key"] != "build-7" {
			t.Fatalf("%s: first %v", e.tr.name, n)
		}
	}
	second := e.publishWith(protoTenant, u, map[string]any{"collapse_key": "build-7", "title": "Build 7 passed"})
	for _, c := range []protoClient{a, b} {
		n := c.nextEvent("notification")
		if str(n["id"]) != second || str(n["replaces"]) != first {
			t.Fatalf("%s: replacement %v", e.tr.name, n)
		}
		e.waitUnread(c, 1) // the replaced one was unread: still one
	}
	if in := e.inbox(b); len(in) != 1 || in[second] {
		t.Fatalf("%s: inbox %v", e.tr.name, in)
	}
	e.fails(a.request("notification:mark-read", map[string]any{"id": first}), "not_found", "mark-read the replaced one")
}

func protoSeen(t *testing.T, e *protoEnv) {
	a, b, ids := e.twoConns(3)
	if n, unseen, _ := e.counts(a); n != 3 || unseen != 3 {
		t.Fatalf("%s: counts %d %d", e.tr.name, n, unseen)
	}
	// Read stays separate from seen.
	e.ok(a.request("notification:mark-read", map[string]any{"id": ids[0]}), "mark-read")
	for _, c := range []protoClient{a, b} {
		e.waitUnread(c, 2)
	}
	if _, unseen, _ := e.counts(b); unseen != 3 {
		t.Fatalf("%s: unseen after read %d", e.tr.name, unseen)
	}
	// Seen everything: the badge clears on every connection of the user;
	// unread stays.
	e.ok(a.request("notification:seen", nil), "seen")
	for _, c := range []protoClient{a, b} {
		if ev := e.waitUnseen(c, 0); ev["count"] != float64(2) {
			t.Fatalf("%s: unread event after seen %v", e.tr.name, ev)
		}
	}
	if n, unseen, _ := e.counts(b); n != 2 || unseen != 0 {
		t.Fatalf("%s: counts after seen %d %d", e.tr.name, n, unseen)
	}
	// A new one is unseen; seen up to a position before it leaves it so.
	e.publish(protoTenant, e.user("alice"), 1)
	e.waitUnread(b, 3)
	e.ok(a.request("notification:seen", map[string]any{"position": "1.0"}), "seen up to 1.0")
	if _, unseen, _ := e.counts(b); unseen != 1 {
		t.Fatalf("%s: unseen after an old position %d", e.tr.name, unseen)
	}
}

func protoArchive(t *testing.T, e *protoEnv) {
	a, b, ids := e.twoConns(2)
	e.ok(a.request("notification:archive", map[string]any{"id": ids[0]}), "archive")
	for _, c := range []protoClient{a, b} {
		if got := strs(c.nextEvent("notification:archived")["ids"]); !slices.Equal(got, ids[:1]) {
			t.Fatalf("%s: archived event %v", e.tr.name, got)
		}
		e.waitUnread(c, 1)
	}
	if in := e.inbox(b); len(in) != 1 {
		t.Fatalf("%s: inbox after archive %v", e.tr.name, in)
	}
	rep := e.ok(b.request("notification:list", map[string]any{"archived": true}), "list archived")
	if got := itemIDs(t, rep); !slices.Equal(got, ids[:1]) || items(t, rep)[0]["archived"] != true {
		t.Fatalf("%s: archived list %s", e.tr.name, rep)
	}
	e.ok(b.request("notification:unarchive", map[string]any{"id": ids[0]}), "unarchive")
	for _, c := range []protoClient{a, b} {
		if got := strs(c.nextEvent("notification:unarchived")["ids"]); !slices.Equal(got, ids[:1]) {
			t.Fatalf("%s: unarchived event %v", e.tr.name, got)
		}
		e.waitUnread(c, 2)
	}
	e.keeps(a, ids...)
}

func protoArchiveAll(t *testing.T, e *protoEnv) {
	a, b, ids := e.twoConns(3)
	e.ok(a.request("notification:archive", map[string]any{"all": true}), "archive all")
	for _, c := range []protoClient{a, b} {
		if ev := c.nextEvent("notification:archived"); ev["all"] != true {
			t.Fatalf("%s: archived event %v", e.tr.name, ev)
		}
		e.waitUnread(c, 0)
	}
	if n, unseen, _ := e.counts(b); n != 0 || unseen != 0 {
		t.Fatalf("%s: counts after archive all %d %d", e.tr.name, n, unseen)
	}
	e.ok(b.request("notification:unarchive", map[string]any{"all": true}), "unarchive all")
	for _, c := range []protoClient{a, b} {
		c.nextEvent("notification:unarchived")
		e.waitUnread(c, 3)
	}
	e.keeps(a, ids...)
}

func protoArchiveOther(t *testing.T, e *protoEnv) {
	c := e.open(protoTenant, e.user("alice"))
	theirs := e.publish(protoTenant, e.user("bob"), 1)[0]
	other := e.publish(protoOther, e.user("alice"), 1)[0]
	for _, id := range []string{theirs, other, unknownID} {
		e.fails(c.request("notification:archive", map[string]any{"id": id}), "not_found", "archive "+id)
		e.fails(c.request("notification:unarchive", map[string]any{"id": id}), "not_found", "unarchive "+id)
	}
	bob := e.open(protoTenant, e.user("bob"))
	e.keeps(bob, theirs)
}

func protoPreferences(t *testing.T, e *protoEnv) {
	u := e.user("alice")
	a, b := e.open(protoTenant, u), e.open(protoTenant, u)
	rep := e.ok(a.request("preferences:get", nil), "get preferences")
	if len(strs(rep.fields["muted_categories"])) != 0 || len(strs(rep.fields["muted_types"])) != 0 {
		t.Fatalf("%s: initial preferences %s", e.tr.name, rep)
	}
	set := map[string]any{"muted_categories": []string{"marketing"}, "muted_types": []string{"digest.weekly"}}
	e.ok(a.request("preferences:set", set), "set preferences")
	for _, c := range []protoClient{a, b} {
		ev := c.nextEvent("preferences")
		if !slices.Equal(strs(ev["muted_categories"]), []string{"marketing"}) || !slices.Equal(strs(ev["muted_types"]), []string{"digest.weekly"}) {
			t.Fatalf("%s: preferences event %v", e.tr.name, ev)
		}
	}
	rep = e.ok(b.request("preferences:get", nil), "get preferences")
	if !slices.Equal(strs(rep.fields["muted_categories"]), []string{"marketing"}) {
		t.Fatalf("%s: preferences %s", e.tr.name, rep)
	}
	// Muted: not stored, not delivered, not counted. The next one arrives.
	e.publishWith(protoTenant, u, map[string]any{"category": "marketing"})
	body := toUsers(protoTenant, u)
	body["type"] = "digest.weekly"
	e.n.publish(body)
	kept := e.publish(protoTenant, u, 1)[0]
	for _, c := range []protoClient{a, b} {
		if n := c.nextEvent("notification"); str(n["id"]) != kept {
			t.Fatalf("%s: delivered %v, want %s", e.tr.name, n, kept)
		}
	}
	if in := e.inbox(a); len(in) != 1 {
		t.Fatalf("%s: inbox %v", e.tr.name, in)
	}
	if n, _, _ := e.counts(a); n != 1 {
		t.Fatalf("%s: unread %d", e.tr.name, n)
	}
}
