package node

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestDemoAbsentByDefault: without Demo (no --dev) the page and the dev
// endpoints do not exist.
func TestDemoAbsentByDefault(t *testing.T) {
	n := startNode(t)
	tok := token(t, "demo", "alice", "", time.Hour)
	for _, c := range []struct{ method, path, bearer string }{
		{"GET", "/", ""},
		{"GET", "/demo/app.js", ""},
		{"GET", "/v1/dev/token?user=alice", ""},
		{"POST", "/v1/dev/publish", tok},
	} {
		if status, body, _ := n.do(c.method, c.path, c.bearer, `{"title":"x"}`); status != http.StatusNotFound {
			t.Errorf("%s %s without Demo = %d %s, want 404", c.method, c.path, status, body)
		}
	}
}

func TestDemoPageTokenAndPublish(t *testing.T) {
	n := startNode(t, func(c *Config) { c.Demo = true; c.Auth.DefaultTenant = "demo" })

	status, body, h := n.do("GET", "/", "", nil)
	if status != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/html") ||
		!strings.Contains(string(body), `aria-live="polite"`) || !strings.Contains(h.Get("Content-Security-Policy"), "script-src 'self'") {
		t.Fatalf("GET / = %d %q %v", status, h.Get("Content-Type"), h)
	}
	for _, p := range []string{"/demo/app.js", "/demo/style.css"} {
		if status, _, _ := n.do("GET", p, "", nil); status != http.StatusOK {
			t.Errorf("GET %s = %d", p, status)
		}
	}
	for _, p := range []string{"/demo/missing.js", "/demo/..%2fdemo.go", "/demo/.hidden", "/nothing"} {
		if status, _, _ := n.do("GET", p, "", nil); status != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", p, status)
		}
	}

	// A dev token for bob works on the WebSocket, in the default tenant.
	status, body, _ = n.do("GET", "/v1/dev/token?user=bob", "", nil)
	var tr struct{ Token, User, Tenant string }
	if status != http.StatusOK || json.Unmarshal(body, &tr) != nil || tr.User != "bob" || tr.Tenant != "demo" {
		t.Fatalf("dev token = %d %s", status, body)
	}
	c := n.mustDial(dialOpts{})
	c.send(map[string]any{"type": "auth", "token": tr.Token})
	if r := c.next("ready"); r.User != "bob" || r.Tenant != "demo" {
		t.Fatalf("ready = %s", r.Raw)
	}

	// Publishing through the dev endpoint reaches the caller only.
	status, body, _ = n.do("POST", "/v1/dev/publish", tr.Token, map[string]any{"title": "Hi", "body": "there"})
	var pr struct{ ID string }
	if status != http.StatusCreated || json.Unmarshal(body, &pr) != nil || pr.ID == "" {
		t.Fatalf("dev publish = %d %s", status, body)
	}
	if m := c.next("notification"); m.Notification.ID != pr.ID || m.Notification.Title != "Hi" || m.Notification.Type != "demo.test" {
		t.Fatalf("notification = %s", m.Raw)
	}

	// A live event through the dev endpoint reaches every tab watching the
	// board (the dev token's topics claim is demo.*), and is not stored.
	c.send(map[string]any{"type": "subscribe", "topics": []string{"demo.board"}, "ref": 1})
	c.next("ack")
	status, body, _ = n.do("POST", "/v1/dev/publish", tr.Token, map[string]any{"title": "bob: typing", "ephemeral": true})
	if status != http.StatusAccepted || !strings.Contains(string(body), `"ephemeral":true`) {
		t.Fatalf("dev live publish = %d %s", status, body)
	}
	if m := c.next("event"); m.Event.Topic != "demo.board" || m.Event.Title != "bob: typing" || m.Event.Type != "demo:live" {
		t.Fatalf("event = %s", m.Raw)
	}
	if _, body, _ := n.do("GET", "/v1/me/notifications", tr.Token, nil); strings.Count(string(body), `"id":`) != 1 {
		t.Fatalf("the live event was stored: %s", body)
	}

	// Refusals.
	for _, tc := range []struct {
		name, method, path, bearer string
		body                       any
		hdr                        []string
		want                       int
	}{
		{"disallowed origin", "GET", "/v1/dev/token", "", nil, []string{"Origin", "https://evil.example.com"}, 403},
		{"bad user", "GET", "/v1/dev/token?user=a%20b", "", nil, nil, 400},
		{"publish without token", "POST", "/v1/dev/publish", "", map[string]any{"title": "x"}, nil, 401},
		{"publish with a bad token", "POST", "/v1/dev/publish", "nope", map[string]any{"title": "x"}, nil, 401},
		{"publish without title", "POST", "/v1/dev/publish", tr.Token, map[string]any{"body": "x"}, nil, 400},
		{"publish unknown field", "POST", "/v1/dev/publish", tr.Token, map[string]any{"title": "x", "to": "carol"}, nil, 400},
		{"publish bad type", "POST", "/v1/dev/publish", tr.Token, map[string]any{"title": "x", "type": "a b"}, nil, 400},
		{"publish too large", "POST", "/v1/dev/publish", tr.Token, map[string]any{"title": strings.Repeat("x", 20000)}, nil, 413},
	} {
		if status, body, _ := n.do(tc.method, tc.path, tc.bearer, tc.body, tc.hdr...); status != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, status, body, tc.want)
		}
	}
}
