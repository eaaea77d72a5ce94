package node

import (
	"encoding/json"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"
)

// End-to-end tests of the inbox model (issue 15) beyond the protocol
// suite: the ready frame's counts, resume across a replacement, the
// publish API's new fields, the admin preferences API and the sync of
// state changes across nodes.

// readyCounts is the ready frame's counts.
type readyCounts struct {
	Unread     int64            `json:"unread"`
	Unseen     int64            `json:"unseen"`
	ByCategory map[string]int64 `json:"by_category"`
	Position   string           `json:"position"`
}

func TestReadyFrameCarriesInboxCounts(t *testing.T) {
	n := startNode(t)
	for _, c := range []string{"billing", "billing", "social", ""} {
		body := toUsers("acme", "dora")
		if c != "" {
			body["category"] = c
		}
		n.publish(body)
	}
	want := map[string]int64{"billing": 2, "social": 1}
	tok := token(t, "acme", "dora", "", time.Hour)

	ws := n.mustDial(dialOpts{header: tok})
	var rc readyCounts
	if err := json.Unmarshal([]byte(ws.next("ready").Raw), &rc); err != nil || rc.Unread != 4 || rc.Unseen != 4 || !maps.Equal(rc.ByCategory, want) {
		t.Fatalf("ws ready: %+v, %v", rc, err)
	}
	s, _, err := n.openStream(streamOpts{bearer: tok})
	if err != nil {
		t.Fatal(err)
	}
	var sc readyCounts
	if err := json.Unmarshal([]byte(s.next("ready").Data), &sc); err != nil || sc.Unread != 4 || sc.Unseen != 4 || !maps.Equal(sc.ByCategory, want) {
		t.Fatalf("sse ready: %+v, %v", sc, err)
	}
	// Seen over REST: the badge clears on both, the ready frame of a new
	// connection says so.
	if status, body, _ := n.do("POST", "/v1/me/notifications/seen", tok, nil); status != 200 || !strings.Contains(string(body), `"unseen":0`) {
		t.Fatalf("seen: %d %s", status, body)
	}
	for u := ws.next("unread"); u.Raw == "" || !strings.Contains(u.Raw, `"unseen":0`); u = ws.next("unread") {
	}
	if ev := s.next("unread"); !strings.Contains(ev.Data, `"unseen":0`) {
		t.Fatalf("sse unread after seen: %s", ev.Data)
	}
	again := n.mustDial(dialOpts{header: tok})
	var ac readyCounts
	if err := json.Unmarshal([]byte(again.next("ready").Raw), &ac); err != nil || ac.Unseen != 0 || ac.Unread != 4 {
		t.Fatalf("ready after seen: %+v, %v", ac, err)
	}
}

// TestResumeAcrossAReplacement: a client that saw the first notification
// of a collapse key and resumes after the replacement gets the replacement
// once, with no gap and no duplicate; one that resumes from the start gets
// only the replacement.
func TestResumeAcrossAReplacement(t *testing.T) {
	n := startNode(t)
	tok := token(t, "acme", "erin", "", time.Hour)
	c := n.mustDial(dialOpts{header: tok})
	c.next("ready")
	keyed := toUsers("acme", "erin")
	keyed["collapse_key"] = "deploy-42"
	first := n.publish(keyed)
	m := c.next("notification")
	if m.Notification.ID != first {
		t.Fatalf("first = %s", m.Raw)
	}
	pos := m.Notification.Position
	c.close()
	second := n.publish(keyed)
	other := n.publish(toUsers("acme", "erin"))

	resumed := n.mustDial(dialOpts{header: tok, since: pos})
	resumed.next("ready")
	got := []string{resumed.next("notification").Notification.ID, resumed.next("notification").Notification.ID}
	if got[0] != second || got[1] != other {
		t.Fatalf("resumed %v, want [%s %s]", got, second, other)
	}
	fresh := n.mustDial(dialOpts{header: tok, since: "0.0"})
	fresh.next("ready")
	if id := fresh.next("notification").Notification.ID; id != second {
		t.Fatalf("from the start: %s, want %s", id, second)
	}
	if id := fresh.next("notification").Notification.ID; id != other {
		t.Fatalf("from the start, then: %s, want %s", id, other)
	}
	// Nothing else is pending on either: a new one comes next.
	last := n.publish(toUsers("acme", "erin"))
	for _, w := range []*wsClient{resumed, fresh} {
		if id := w.next("notification").Notification.ID; id != last {
			t.Fatalf("next = %s, want %s", id, last)
		}
	}
}

func TestPublishInboxFieldsBadInput(t *testing.T) {
	n := startNode(t)
	users := func(extra map[string]any) map[string]any {
		b := toUsers("acme", "finn")
		maps.Copy(b, extra)
		return b
	}
	tenant := map[string]any{"tenant": "acme", "to": map[string]any{"tenant": true}, "type": "t", "title": "x", "collapse_key": "k"}
	for _, tc := range []struct {
		name string
		body map[string]any
		want string
	}{
		{"collapse key on a tenant audience", tenant, "collapse_key is only allowed with to.users"},
		{"collapse key on a role audience", map[string]any{"tenant": "acme", "to": map[string]any{"role": "admin"}, "type": "t", "title": "x", "collapse_key": "k"},
			"collapse_key is only allowed with to.users"},
		{"oversized collapse key", users(map[string]any{"collapse_key": strings.Repeat("k", 129)}), "collapse_key is longer than 128 bytes"},
		{"empty collapse key", users(map[string]any{"collapse_key": ""}), "collapse_key must be non-empty"},
		{"collapse key with a control character", users(map[string]any{"collapse_key": "a\nb"}), "without control characters"},
		{"collapse key not a string", users(map[string]any{"collapse_key": 7}), "invalid request"},
		{"upper-case category", users(map[string]any{"category": "Billing"}), "category must be 1..64 characters"},
		{"oversized category", users(map[string]any{"category": strings.Repeat("c", 65)}), "category must be 1..64 characters"},
		{"empty category", users(map[string]any{"category": ""}), "category must be 1..64 characters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body, _ := n.do("POST", "/v1/notifications", n.apiKey, tc.body)
			if status != http.StatusBadRequest || !strings.Contains(string(body), tc.want) || !strings.Contains(string(body), "invalid_request") {
				t.Fatalf("%d %s, want 400 saying %q", status, body, tc.want)
			}
		})
	}
	status, body, _ := n.do("POST", "/v1/notifications/batch", n.apiKey, map[string]any{"notifications": []any{
		users(nil), users(map[string]any{"category": "Bad"})}})
	if status != http.StatusBadRequest || !strings.Contains(string(body), "index 1: category") {
		t.Fatalf("batch: %d %s", status, body)
	}
	tok := token(t, "acme", "finn", "", time.Hour)
	if _, body, _ := n.do("GET", "/v1/me/notifications", tok, nil); !strings.Contains(string(body), `"notifications":[]`) {
		t.Fatalf("something was stored: %s", body)
	}
}

func TestAdminPreferences(t *testing.T) {
	n := startNode(t)
	tok := token(t, "acme", "gail", "", time.Hour)
	c := n.mustDial(dialOpts{header: tok})
	c.next("ready")
	const path = "/v1/admin/tenants/acme/users/gail/preferences"
	prefs := map[string]any{"muted_categories": []string{"marketing"}, "muted_types": []string{}}
	for _, key := range []string{adminKey, "scoped-api-key-0123456789"} {
		status, body, _ := n.do("PUT", path, key, prefs)
		if status != 200 || string(body) != `{"muted_categories":["marketing"],"muted_types":[]}`+"\n" {
			t.Fatalf("put with %s: %d %s", key, status, body)
		}
		if m := c.next("preferences"); !strings.Contains(m.Raw, `"muted_categories":["marketing"]`) {
			t.Fatalf("preferences frame = %s", m.Raw)
		}
	}
	if status, body, _ := n.do("GET", path, adminKey, nil); status != 200 || !strings.Contains(string(body), `"marketing"`) {
		t.Fatalf("get: %d %s", status, body)
	}
	if status, body, _ := n.do("GET", "/v1/me/preferences", tok, nil); status != 200 || !strings.Contains(string(body), `"marketing"`) {
		t.Fatalf("user get: %d %s", status, body)
	}
	for _, tc := range []struct {
		name, method, path, key string
		body                    any
		status                  int
		code                    string
	}{
		{"no key", "GET", path, "", nil, 401, "unauthorized"},
		{"a user token", "GET", path, tok, nil, 401, "unauthorized"},
		{"another tenant's key", "GET", path, "other-api-key-0123456789", nil, 403, "forbidden"},
		{"another tenant's key writing", "PUT", path, "other-api-key-0123456789", prefs, 403, "forbidden"},
		{"malformed user", "GET", "/v1/admin/tenants/acme/users/%01/preferences", adminKey, nil, 400, "invalid_request"},
		{"mute everything", "PUT", path, adminKey, map[string]any{"muted_categories": []string{"*"}}, 400, "invalid_request"},
		{"too many", "PUT", path, adminKey, map[string]any{"muted_types": strings.Split(strings.Repeat("t,", 33)+"u", ",")}, 400, "invalid_request"},
		{"unknown field", "PUT", path, adminKey, map[string]any{"mute": []string{"a"}}, 400, "invalid_request"},
		{"not JSON", "PUT", path, adminKey, "{", 400, "invalid_request"},
		{"duplicate names", "PUT", path, adminKey, `{"muted_types":[],"muted_types":["a"]}`, 400, "invalid_request"},
		{"oversized", "PUT", path, adminKey, `{"muted_types":["` + strings.Repeat("a", 9<<10) + `"]}`, 413, "too_large"},
		{"user: mute everything", "PUT", "/v1/me/preferences", tok, map[string]any{"muted_types": []string{"*"}}, 400, "invalid_request"},
		{"user: oversized", "PUT", "/v1/me/preferences", tok, `{"muted_types":["` + strings.Repeat("a", 9<<10) + `"]}`, 413, "too_large"},
		{"user: not an object", "PUT", "/v1/me/preferences", tok, `[]`, 400, "invalid_request"},
		{"user: no token", "PUT", "/v1/me/preferences", "", prefs, 401, "unauthorized"},
		{"user: seen not an object", "POST", "/v1/me/notifications/seen", tok, `"x"`, 400, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body, _ := n.do(tc.method, tc.path, tc.key, tc.body)
			if status != tc.status || !strings.Contains(string(body), `"code":"`+tc.code+`"`) {
				t.Fatalf("%d %s, want %d %s", status, body, tc.status, tc.code)
			}
		})
	}
	// Nothing changed through the refusals.
	if _, body, _ := n.do("GET", path, adminKey, nil); string(body) != `{"muted_categories":["marketing"],"muted_types":[]}`+"\n" {
		t.Fatalf("after refusals: %s", body)
	}
}

// TestInboxChangesReachEveryNode: two nodes sharing PostgreSQL and Redis;
// a user connected to both. Seen, archive and preference changes made
// through one reach the connection on the other.
func TestInboxChangesReachEveryNode(t *testing.T) {
	a, b := twoSharedNodes(t)
	tok := token(t, "acme", "hana", "", time.Hour)
	onA := a.mustDial(dialOpts{header: tok})
	onA.next("ready")
	onB := b.mustDial(dialOpts{header: tok})
	onB.next("ready")
	body := toUsers("acme", "hana")
	body["category"] = "ci"
	id := a.publish(body)
	keyed := toUsers("acme", "hana")
	keyed["collapse_key"] = "k"
	first := b.publish(keyed)
	second := a.publish(keyed)
	for _, c := range []*wsClient{onA, onB} {
		c.next("notification")
		c.next("notification")
		if m := c.next("notification"); m.Notification.ID != second || !strings.Contains(m.Raw, `"replaces":"`+first+`"`) {
			t.Fatalf("replacement = %s", m.Raw)
		}
	}
	// Seen through a's REST API.
	if status, body, _ := a.do("POST", "/v1/me/notifications/seen", tok, nil); status != 200 {
		t.Fatalf("seen: %d %s", status, body)
	}
	for _, c := range []*wsClient{onA, onB} {
		for u := c.next("unread"); !strings.Contains(u.Raw, `"unseen":0`); u = c.next("unread") {
		}
	}
	// Archive over b's WebSocket.
	onB.send(map[string]any{"type": "notification:archive", "id": id, "ref": "a1"})
	for _, c := range []*wsClient{onA, onB} {
		if m := c.next("notification:archived"); len(m.IDs) != 1 || m.IDs[0] != id {
			t.Fatalf("archived = %s", m.Raw)
		}
		for u := c.next("unread"); u.Count != 1 || !strings.Contains(u.Raw, `"by_category":{}`); u = c.next("unread") {
		}
	}
	// Unarchive through a, preferences through b's admin API.
	if status, body, _ := a.do("POST", "/v1/me/notifications/"+id+"/unarchive", tok, nil); status != 200 || !strings.Contains(string(body), `"by_category":{"ci":1}`) {
		t.Fatalf("unarchive: %d %s", status, body)
	}
	if status, body, _ := b.do("PUT", "/v1/admin/tenants/acme/users/hana/preferences", adminKey, map[string]any{"muted_categories": []string{"ci"}}); status != 200 {
		t.Fatalf("preferences: %d %s", status, body)
	}
	for _, c := range []*wsClient{onA, onB} {
		if m := c.next("notification:unarchived"); len(m.IDs) != 1 {
			t.Fatalf("unarchived = %s", m.Raw)
		}
		if m := c.next("preferences"); !strings.Contains(m.Raw, `"muted_categories":["ci"]`) {
			t.Fatalf("preferences = %s", m.Raw)
		}
	}
	// The muted category is not delivered on either node; the next one is.
	a.publish(body)
	last := b.publish(toUsers("acme", "hana"))
	for _, c := range []*wsClient{onA, onB} {
		if m := c.next("notification"); m.Notification.ID != last {
			t.Fatalf("delivered %s, want %s", m.Raw, last)
		}
	}
}
