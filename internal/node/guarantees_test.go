package node

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestResumeUnderConcurrentPublishingAndRandomDisconnects: many publishers
// write to a set of users while each user's client disconnects at random and
// resumes from the last position it saw. Each client must end with exactly
// the store's sequence, in order, with no duplicate.
func TestResumeUnderConcurrentPublishingAndRandomDisconnects(t *testing.T) {
	n := startNode(t)
	const (
		users      = 6
		publishers = 4
		perPub     = 60
	)
	names := make([]string, users)
	for i := range names {
		names[i] = fmt.Sprintf("user%d", i)
	}
	results := make([]wsResumeResult, users)
	stop := make(chan struct{})
	var wg sync.WaitGroup

	for u := 0; u < users; u++ {
		wg.Add(1)
		go func(u int) {
			defer wg.Done()
			runResumingWSClient(t, n, names[u], uint64(u), &results[u], stop)
		}(u)
	}

	publishToRandomUsers(t, n, names, publishers, perPub, 7, 4)
	close(stop)
	wg.Wait()

	// Each user's final state: read the rest from its last position, then
	// compare with the store (REST list, oldest first).
	for u := 0; u < users; u++ {
		checkResumedWSClient(t, n, names[u], &results[u])
	}
}

// wsResumeResult is what one resuming WebSocket client saw.
type wsResumeResult struct {
	ids   []string
	since string // the last position seen
	err   error
}

// runResumingWSClient connects as user name, reads a random number of
// notifications, drops the connection and resumes from the last position it
// saw, until stop is closed. A duplicate notification or a failed dial ends
// it with res.err set.
func runResumingWSClient(t *testing.T, n *testNode, name string, seed uint64, res *wsResumeResult, stop <-chan struct{}) {
	tok := token(t, "acme", name, "", time.Hour)
	since := "0.0"
	seen := map[string]bool{}
	rng := rand.New(rand.NewPCG(seed, 42))
	for {
		c, _, err := n.dial(dialOpts{header: tok, since: since})
		if err != nil {
			res.err = err
			return
		}
		// Read a random number of messages, then drop the connection.
		budget := 5 + rng.IntN(40)
		deadline := time.After(3 * time.Second)
	read:
		for budget > 0 {
			select {
			case m := <-c.msgs:
				if m.Type != "notification" {
					continue
				}
				if seen[m.Notification.ID] {
					res.err = fmt.Errorf("duplicate %s", m.Notification.ID)
					c.close()
					return
				}
				seen[m.Notification.ID] = true
				res.ids = append(res.ids, m.Notification.ID)
				since = m.Notification.Position
				res.since = since
				budget--
			case <-deadline:
				break read
			case <-c.done:
				break read
			}
		}
		c.close()
		select {
		case <-stop:
			return // the rest is read by the final resume (checkResumedWSClient)
		default:
		}
	}
}

// checkResumedWSClient resumes once more from the last position the client
// saw to read the rest, then compares its ids with the store's.
func checkResumedWSClient(t *testing.T, n *testNode, name string, res *wsResumeResult) {
	t.Helper()
	if res.err != nil {
		t.Fatalf("%s: %v", name, res.err)
	}
	tok := token(t, "acme", name, "", time.Hour)
	want := listAll(t, n, tok)
	got := res.ids
	// Resume once more from the last position seen to read the rest.
	if len(got) < len(want) {
		since := res.since
		if since == "" {
			since = "0.0"
		}
		c := n.mustDial(dialOpts{header: tok, since: since})
		for len(got) < len(want) {
			m := c.next("notification")
			got = append(got, m.Notification.ID)
		}
		c.close()
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("%s: got %d ids, store has %d\n got  %v\n want %v", name, len(got), len(want), got, want)
	}
}

// publishToRandomUsers runs publishers concurrent publishers, each
// publishing perPub notifications to a random user of names, and to a
// second random user one time in secondOneIn. Publisher p draws from
// rand.NewPCG(p, seed). It returns when every publisher is done.
func publishToRandomUsers(t *testing.T, n *testNode, names []string, publishers, perPub int, seed uint64, secondOneIn int) {
	var pwg sync.WaitGroup
	for p := 0; p < publishers; p++ {
		pwg.Add(1)
		go func(p int) {
			defer pwg.Done()
			rng := rand.New(rand.NewPCG(uint64(p), seed))
			for i := 0; i < perPub; i++ {
				to := []string{names[rng.IntN(len(names))]}
				if rng.IntN(secondOneIn) == 0 {
					to = append(to, names[rng.IntN(len(names))])
				}
				status, body, _ := n.do("POST", "/v1/notifications", n.apiKey, toUsers("acme", to...))
				if status != http.StatusCreated {
					t.Errorf("publish: %d %s", status, body)
				}
			}
		}(p)
	}
	pwg.Wait()
}

// listAll returns every notification id of the user, oldest first.
func listAll(t *testing.T, n *testNode, tok string) []string {
	t.Helper()
	var ids []string
	before := ""
	for {
		status, body, _ := n.do("GET", "/v1/me/notifications?limit=200&before="+before, tok, nil)
		if status != 200 {
			t.Fatalf("list: %d %s", status, body)
		}
		var p struct {
			Notifications []struct{ ID string }
			Next          *string
		}
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatal(err)
		}
		for _, it := range p.Notifications {
			ids = append(ids, it.ID)
		}
		if p.Next == nil {
			break
		}
		before = *p.Next
	}
	for i, j := 0, len(ids)-1; i < j; i, j = i+1, j-1 {
		ids[i], ids[j] = ids[j], ids[i]
	}
	return ids
}

func TestIdempotencyUnderConcurrentIdenticalPublishes(t *testing.T) {
	n := startNode(t)
	body := toUsers("acme", "ivy")
	var wg sync.WaitGroup
	ids := make([]string, 50)
	statuses := make([]int, 50)
	for i := range ids {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			status, out, _ := n.do("POST", "/v1/notifications", n.apiKey, body, "Idempotency-Key", "order-42")
			statuses[i] = status
			var r struct{ ID string }
			_ = json.Unmarshal(out, &r)
			ids[i] = r.ID
		}(i)
	}
	wg.Wait()
	for i := range ids {
		if statuses[i] != 201 || ids[i] != ids[0] || ids[0] == "" {
			t.Fatalf("publish %d: %d %q (first %q)", i, statuses[i], ids[i], ids[0])
		}
	}
	if got := listAll(t, n, token(t, "acme", "ivy", "", time.Hour)); len(got) != 1 {
		t.Fatalf("%d notifications stored, want 1", len(got))
	}
	// Same key, different body: 422 and nothing written.
	other := toUsers("acme", "ivy")
	other["title"] = "different"
	status, out, _ := n.do("POST", "/v1/notifications", n.apiKey, other, "Idempotency-Key", "order-42")
	if status != http.StatusUnprocessableEntity || !strings.Contains(string(out), "idempotency_mismatch") {
		t.Fatalf("mismatch: %d %s", status, out)
	}
	// A replay says so.
	_, _, hdr := n.do("POST", "/v1/notifications", n.apiKey, body, "Idempotency-Key", "order-42")
	if hdr.Get("Idempotent-Replayed") != "true" {
		t.Fatal("replay not flagged")
	}
	// Keys are per API key: another publisher's identical key is independent.
	status, _, _ = n.do("POST", "/v1/notifications", "scoped-api-key-0123456789", body, "Idempotency-Key", "order-42")
	if status != 201 {
		t.Fatalf("other key: %d", status)
	}
	if got := listAll(t, n, token(t, "acme", "ivy", "", time.Hour)); len(got) != 2 {
		t.Fatalf("%d notifications stored, want 2", len(got))
	}
}

// TestCrossUserAndCrossTenantAccess: every operation on another user's or
// another tenant's notification is a 404 (or WS not_found) with no state change.
func TestCrossUserAndCrossTenantAccess(t *testing.T) {
	n := startNode(t)
	victim := token(t, "acme", "victim", "", time.Hour)
	id := n.publish(toUsers("acme", "victim"))
	bcast := n.publish(map[string]any{"tenant": "acme", "to": map[string]any{"role": "admin"}, "type": "x", "title": "admins only"})
	attackers := map[string]string{
		"same tenant other user":   token(t, "acme", "mallory", "", time.Hour),
		"other tenant same userid": token(t, "globex", "victim", "admin", time.Hour),
		"same tenant wrong role":   token(t, "acme", "mallory", "member", time.Hour),
	}
	for name, tok := range attackers {
		t.Run(name, func(t *testing.T) {
			for _, target := range []string{id, bcast} {
				if name == "same tenant wrong role" && target == id {
					continue
				}
				if status, body, _ := n.do("POST", "/v1/me/notifications/"+target+"/read", tok, nil); status != 404 || !strings.Contains(string(body), `"not_found"`) {
					t.Fatalf("read: %d %s", status, body)
				}
				if status, _, _ := n.do("DELETE", "/v1/me/notifications/"+target, tok, nil); status != 404 {
					t.Fatalf("delete: %d", status)
				}
				c := n.mustDial(dialOpts{header: tok})
				c.next("ready")
				c.send(map[string]any{"type": "notification:mark-read", "id": target, "ref": 1})
				if m := c.next("ack", "notification:error"); m.Code != "not_found" {
					t.Fatalf("ws mark-read: %s", m.Raw)
				}
				c.send(map[string]any{"type": "notification:delete", "id": target, "ref": 2})
				if m := c.next("ack", "notification:error"); m.Code != "not_found" {
					t.Fatalf("ws delete: %s", m.Raw)
				}
				c.close()
			}
			if got := listAll(t, n, tok); len(got) != 0 && name != "same tenant wrong role" {
				t.Fatalf("attacker sees %v", got)
			}
		})
	}
	// The victim's state is untouched.
	status, body, _ := n.do("GET", "/v1/me/unread-count", victim, nil)
	if status != 200 || strings.TrimSpace(string(body)) != `{"count":1,"unseen":1,"by_category":{}}` {
		t.Fatalf("victim unread: %d %s", status, body)
	}
	admin := token(t, "acme", "boss", "admin", time.Hour)
	if status, body, _ := n.do("GET", "/v1/me/unread-count", admin, nil); strings.TrimSpace(string(body)) != `{"count":1,"unseen":1,"by_category":{}}` {
		t.Fatalf("admin unread: %d %s", status, body)
	}
	// A key scoped to one tenant cannot publish to another: 403, nothing stored.
	status, body, _ = n.do("POST", "/v1/notifications", "other-api-key-0123456789", toUsers("acme", "victim"))
	if status != http.StatusForbidden {
		t.Fatalf("scoped key cross-tenant: %d %s", status, body)
	}
	if got := listAll(t, n, victim); len(got) != 1 {
		t.Fatalf("victim has %d notifications after forbidden publish", len(got))
	}
}

func TestPublishAPIBadInput(t *testing.T) {
	n := startNode(t, func(c *Config) { c.API.MaxBodyBytes = 4096 })
	valid := func() map[string]any { return toUsers("acme", "u1") }
	with := func(k string, v any) map[string]any { m := valid(); m[k] = v; return m }
	without := func(k string) map[string]any { m := valid(); delete(m, k); return m }
	cases := []struct {
		name   string
		key    string
		body   any
		status int
		code   string
	}{
		{"no key", "", valid(), 401, "unauthorized"},
		{"wrong key", "nope-nope-nope-nope", valid(), 401, "unauthorized"},
		{"user token is not an api key", token(t, "acme", "u1", "", time.Hour), valid(), 401, "unauthorized"},
		{"malformed json", n.apiKey, `{"tenant":`, 400, "invalid_request"},
		{"not an object", n.apiKey, `[1,2]`, 400, "invalid_request"},
		{"unknown field", n.apiKey, with("bogus", 1), 400, "invalid_request"},
		{"no tenant", n.apiKey, without("tenant"), 400, "invalid_request"},
		{"no to", n.apiKey, without("to"), 400, "invalid_request"},
		{"two audiences", n.apiKey, with("to", map[string]any{"users": []string{"a"}, "tenant": true}), 400, "invalid_request"},
		{"empty users", n.apiKey, with("to", map[string]any{"users": []string{}}), 400, "invalid_request"},
		{"tenant false", n.apiKey, with("to", map[string]any{"tenant": false}), 400, "invalid_request"},
		{"control char user", n.apiKey, with("to", map[string]any{"users": []string{"a\nb"}}), 400, "invalid_request"},
		{"no type", n.apiKey, without("type"), 400, "invalid_request"},
		{"bad type", n.apiKey, with("type", "a b"), 400, "invalid_request"},
		{"no title", n.apiKey, without("title"), 400, "invalid_request"},
		{"data array", n.apiKey, with("data", []int{1}), 400, "invalid_request"},
		{"data string", n.apiKey, with("data", "x"), 400, "invalid_request"},
		{"expired", n.apiKey, with("expires_at", time.Now().Add(-time.Hour)), 400, "invalid_request"},
		{"bad time", n.apiKey, with("expires_at", "tomorrow"), 400, "invalid_request"},
		{"oversized", n.apiKey, with("body", strings.Repeat("x", 5000)), 413, "too_large"},
		{"invalid utf8", n.apiKey, []byte("{\"tenant\":\"acme\xff\"}"), 400, "invalid_request"},
		// Duplicate names: which copy counts would be up to the parser.
		{"duplicate tenant", n.apiKey, `{"tenant":"acme","to":{"users":["u1"]},"type":"t","title":"x","tenant":"globex"}`, 400, "invalid_request"},
		{"duplicate escaped", n.apiKey, `{"tenant":"acme","to":{"users":["u1"]},"type":"t","title":"x","\u0074itle":"y"}`, 400, "invalid_request"},
		{"duplicate in to", n.apiKey, `{"tenant":"acme","to":{"users":["u1"],"users":["u2"]},"type":"t","title":"x"}`, 400, "invalid_request"},
		{"duplicate in data", n.apiKey, `{"tenant":"acme","to":{"users":["u1"]},"type":"t","title":"x","data":{"a":{"b":1,"b":2}}}`, 400, "invalid_request"},
		{"same name in two objects is fine", n.apiKey, `{"tenant":"acme","to":{"users":["u9"]},"type":"t","title":"x","data":{"title":"y"}}`, 201, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body, hdr := n.do("POST", "/v1/notifications", tc.key, tc.body)
			if tc.status == 201 && status == 201 {
				return
			}
			if status != tc.status || !strings.Contains(string(body), `"code":"`+tc.code+`"`) || !strings.Contains(string(body), "correlation_id") {
				t.Fatalf("%d %s", status, body)
			}
			if hdr.Get("Access-Control-Allow-Origin") != "" {
				t.Fatal("publish API sent CORS headers")
			}
		})
	}
	t.Run("bad idempotency key", func(t *testing.T) {
		status, _, _ := n.do("POST", "/v1/notifications", n.apiKey, valid(), "Idempotency-Key", strings.Repeat("k", 300))
		if status != 400 {
			t.Fatalf("%d", status)
		}
	})
	t.Run("batch", func(t *testing.T) {
		items := []any{valid(), valid(), with("title", "")}
		status, body, _ := n.do("POST", "/v1/notifications/batch", n.apiKey, map[string]any{"notifications": items})
		if status != 400 || !strings.Contains(string(body), "index 2") {
			t.Fatalf("%d %s", status, body)
		}
		dup := `{"notifications":[{"tenant":"acme","to":{"users":["u1"]},"type":"t","title":"x","type":"u"}]}`
		if status, body, _ := n.do("POST", "/v1/notifications/batch", n.apiKey, dup); status != 400 || !strings.Contains(string(body), "invalid_request") {
			t.Fatalf("batch item with a duplicate key: %d %s", status, body)
		}
		if status, _, _ := n.do("POST", "/v1/notifications/batch", n.apiKey, map[string]any{"notifications": []any{}}); status != 400 {
			t.Fatalf("empty batch: %d", status)
		}
		status, body, _ = n.do("POST", "/v1/notifications/batch", n.apiKey, map[string]any{"notifications": []any{valid(), valid()}})
		var r struct{ IDs []string }
		_ = json.Unmarshal(body, &r)
		if status != 201 || len(r.IDs) != 2 {
			t.Fatalf("batch: %d %s", status, body)
		}
	})
	// Nothing from the failed requests was stored (only the 2 of the last batch).
	if got := listAll(t, n, token(t, "acme", "u1", "", time.Hour)); len(got) != 2 {
		t.Fatalf("stored %d", len(got))
	}
}

func TestUserAPIBadInputAndCORS(t *testing.T) {
	n := startNode(t)
	tok := token(t, "acme", "u1", "", time.Hour)
	for _, tc := range []struct {
		method, path, tok string
		status            int
	}{
		{"GET", "/v1/me/notifications", "", 401},
		{"GET", "/v1/me/notifications", "garbage", 401},
		{"GET", "/v1/me/notifications", "test-api-key-0123456789", 401},
		{"GET", "/v1/me/notifications?limit=abc", tok, 400},
		{"GET", "/v1/me/notifications?limit=0", tok, 400},
		{"GET", "/v1/me/notifications?before=nope", tok, 400},
		{"GET", "/v1/me/notifications?unread=maybe", tok, 400},
		{"GET", "/v1/me/notifications?limit=100000", tok, 200}, // capped, not an error
		{"POST", "/v1/me/notifications/not-an-id/read", tok, 404},
		{"DELETE", "/v1/me/notifications/01M8D4RNA158PW21GV7ZNT0BFT", tok, 404},
		{"PUT", "/v1/me/notifications/read-all", tok, 405},
	} {
		status, body, _ := n.do(tc.method, tc.path, tc.tok, nil)
		if status != tc.status {
			t.Errorf("%s %s: %d %s", tc.method, tc.path, status, body)
		}
	}
	// CORS: an allowlisted origin gets exact headers; others get 403 and none.
	status, _, hdr := n.do("OPTIONS", "/v1/me/notifications", "", nil, "Origin", "https://app.example.com", "Access-Control-Request-Method", "GET")
	if status != 204 || hdr.Get("Access-Control-Allow-Origin") != "https://app.example.com" || hdr.Get("Access-Control-Allow-Credentials") != "true" {
		t.Fatalf("preflight allowed: %d %v", status, hdr)
	}
	status, _, hdr = n.do("OPTIONS", "/v1/me/notifications", "", nil, "Origin", "https://evil.test", "Access-Control-Request-Method", "GET")
	if status != 403 || hdr.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("preflight evil: %d %v", status, hdr)
	}
	status, _, hdr = n.do("GET", "/v1/me/notifications", tok, nil, "Origin", "https://evil.test")
	if status != 403 || hdr.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("evil GET: %d %v", status, hdr)
	}
	status, _, hdr = n.do("GET", "/v1/me/notifications", tok, nil, "Origin", "https://app.example.com")
	if status != 200 || hdr.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Fatalf("good GET: %d %v", status, hdr)
	}
}

func TestHealthAndDrain(t *testing.T) {
	n := startNode(t)
	if status, body, _ := n.do("GET", "/livez", "", nil); status != 200 {
		t.Fatalf("livez %d %s", status, body)
	}
	if status, body, _ := n.do("GET", "/readyz", "", nil); status != 200 || !strings.Contains(string(body), `"store":"ok"`) {
		t.Fatalf("readyz %d %s", status, body)
	}
	c := n.mustDial(dialOpts{header: token(t, "acme", "u", "", time.Hour)})
	c.next("ready")
	done := make(chan error, 1)
	go func() { done <- n.node.Shutdown(t.Context()) }()
	if code := c.closeStatus(); code != 4009 {
		t.Fatalf("drain close code %d", code)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
