package node

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/testkit"
	"github.com/heraldhq/herald/internal/webhook"
)

// TestOnlineOfflineWebhooks: the first connection sends user.online; a
// reload within the grace sends nothing; the last connection gone for
// longer sends user.offline.
func TestOnlineOfflineWebhooks(t *testing.T) {
	secret := webhook.NewSecret()
	rcv := testkit.NewWebhookReceiver(t, secret)
	n := startNode(t, fastWebhooks(rcv.URL, secret))
	tok := token(t, "acme", "alice", "", time.Hour)
	c := n.mustDial(dialOpts{header: tok})
	c.next("ready")
	testkit.Eventually(t, 5*time.Second, func() bool { return len(rcv.Delivered()) == 1 }, "user.online")
	want := []string{"user.online acme/alice"}
	// A reload: the page's connection closes and a new one opens.
	c.close()
	c = n.mustDial(dialOpts{header: tok})
	c.next("ready")
	checkNoMore(t, rcv, want, 600*time.Millisecond)
	c.close()
	testkit.Eventually(t, 5*time.Second, func() bool { return len(rcv.Delivered()) == 2 }, "user.offline")
	want = append(want, "user.offline acme/alice")
	if got := events(t, rcv); !slices.Equal(got, want) {
		t.Fatalf("webhooks %v, want %v", got, want)
	}
}

// TestFallbackWebhook: a notification published with a fallback reaches
// the webhook as notification.unseen for each recipient who has not read,
// seen or archived it in time, and only for them; a fallback on a broadcast is refused.
func TestFallbackWebhook(t *testing.T) {
	secret := webhook.NewSecret()
	rcv := testkit.NewWebhookReceiver(t, secret)
	n := startNode(t, fastWebhooks(rcv.URL, secret))
	req := toUsers("acme", "alice", "bob", "carol", "dave")
	req["fallback"] = map[string]any{"after_s": 1}
	req["category"] = "billing"
	id := n.publish(req)
	if status, out, _ := n.do("POST", "/v1/me/notifications/"+id+"/read", token(t, "acme", "alice", "", time.Hour), nil); status != 200 {
		t.Fatalf("alice reads: %d %s", status, out)
	}
	// Seen (the inbox was opened past it) and archived count as not unseen.
	if status, out, _ := n.do("POST", "/v1/me/notifications/seen", token(t, "acme", "carol", "", time.Hour), nil); status != 200 {
		t.Fatalf("carol sees: %d %s", status, out)
	}
	if status, out, _ := n.do("POST", "/v1/me/notifications/"+id+"/archive", token(t, "acme", "dave", "", time.Hour), nil); status != 200 {
		t.Fatalf("dave archives: %d %s", status, out)
	}
	testkit.Eventually(t, 5*time.Second, func() bool { return len(rcv.Delivered()) == 1 }, "bob's notification.unseen")
	b := bodies(t, rcv)[0]
	if b.Type != "notification.unseen" || b.User != "bob" || b.Tenant != "acme" || b.Notification == nil ||
		b.Notification.ID != id || b.Notification.Title != "hello" || b.Notification.Category != "billing" {
		t.Fatalf("fallback %+v", b)
	}
	checkNoMore(t, rcv, []string{"notification.unseen acme/bob"}, 300*time.Millisecond)

	for name, fb := range map[string]any{
		"zero":       map[string]any{"after_s": 0},
		"negative":   map[string]any{"after_s": -5},
		"too late":   map[string]any{"after_s": 8 * 24 * 3600},
		"fraction":   map[string]any{"after_s": 1.5},
		"string":     map[string]any{"after_s": "10"},
		"missing":    map[string]any{},
		"unknown":    map[string]any{"after_s": 10, "channel": "email"},
		"not object": 10,
	} {
		req := toUsers("acme", "alice")
		req["fallback"] = fb
		if status, out, _ := n.do("POST", "/v1/notifications", n.apiKey, req); status != 400 {
			t.Errorf("fallback %s: %d %s", name, status, out)
		}
	}
	for name, to := range map[string]any{"tenant": map[string]any{"tenant": true}, "role": map[string]any{"role": "admin"}} {
		req := map[string]any{"tenant": "acme", "to": to, "type": "x", "title": "t", "fallback": map[string]any{"after_s": 5}}
		if status, out, _ := n.do("POST", "/v1/notifications", n.apiKey, req); status != 400 {
			t.Errorf("fallback on a %s audience: %d %s", name, status, out)
		}
	}
	batch := map[string]any{"notifications": []any{toUsers("acme", "a"), map[string]any{"tenant": "acme",
		"to": map[string]any{"tenant": true}, "type": "x", "title": "t", "fallback": map[string]any{"after_s": 5}}}}
	if status, out, _ := n.do("POST", "/v1/notifications/batch", n.apiKey, batch); status != 400 || !strings.Contains(string(out), "index 1") {
		t.Errorf("batch with a broadcast fallback: %d %s", status, out)
	}
}

// TestNotificationReadWebhook: with --webhook-notification-read, a read
// sends notification.read with the ids; without it, nothing.
func TestNotificationReadWebhook(t *testing.T) {
	secret := webhook.NewSecret()
	rcv := testkit.NewWebhookReceiver(t, secret)
	n := startNode(t, fastWebhooks(rcv.URL, secret), func(c *Config) { c.Webhook.NotificationRead = true })
	id := n.publish(toUsers("acme", "carol"))
	if status, out, _ := n.do("POST", "/v1/me/notifications/"+id+"/read", token(t, "acme", "carol", "", time.Hour), nil); status != 200 {
		t.Fatalf("read: %d %s", status, out)
	}
	testkit.Eventually(t, 5*time.Second, func() bool { return len(rcv.Delivered()) == 1 }, "notification.read")
	if b := bodies(t, rcv)[0]; b.Type != "notification.read" || b.User != "carol" || !slices.Equal(b.NotificationIDs, []string{id}) {
		t.Fatalf("read webhook %+v", b)
	}

	off := testkit.NewWebhookReceiver(t, secret)
	n2 := startNode(t, fastWebhooks(off.URL, secret))
	id2 := n2.publish(toUsers("acme", "carol"))
	n2.do("POST", "/v1/me/notifications/"+id2+"/read", token(t, "acme", "carol", "", time.Hour), nil)
	checkNoMore(t, off, nil, 300*time.Millisecond)
}

// TestTenantWebhookEndpoint: the admin API sets a tenant's own endpoint
// (its events go there, signed with its secret), refuses unsafe URLs and
// non-admin keys, shows no secret, and deletes it.
func TestTenantWebhookEndpoint(t *testing.T) {
	gsecret := webhook.NewSecret()
	global := testkit.NewWebhookReceiver(t, gsecret)
	n := startNode(t, fastWebhooks(global.URL, gsecret))
	const path = "/v1/admin/tenants/acme/webhook"
	for name, tc := range map[string]struct {
		key  string
		body any
		want int
	}{
		"no key":        {"", map[string]any{"url": "https://h.example/"}, 401},
		"publish key":   {n.apiKey, map[string]any{"url": "https://h.example/"}, 403},
		"metadata":      {adminKey, map[string]any{"url": "http://169.254.169.254/latest/meta-data/"}, 400},
		"metadata name": {adminKey, map[string]any{"url": "http://metadata.google.internal/"}, 400},
		"link-local v6": {adminKey, map[string]any{"url": "http://[fe80::1]/"}, 400},
		"ftp":           {adminKey, map[string]any{"url": "ftp://h.example/"}, 400},
		"no url":        {adminKey, map[string]any{}, 400},
		"bad secret":    {adminKey, map[string]any{"url": "https://h.example/", "secret": "hunter2"}, 400},
		"unknown field": {adminKey, map[string]any{"url": "https://h.example/", "events": []string{"x"}}, 400},
		"not json":      {adminKey, "url=https://h.example/", 400},
	} {
		if status, out, _ := n.do("PUT", path, tc.key, tc.body); status != tc.want {
			t.Errorf("%s: %d %s, want %d", name, status, out, tc.want)
		}
	}
	if status, _, _ := n.do("PUT", "/v1/admin/tenants/%01/webhook", adminKey, map[string]any{"url": "https://h.example/"}); status != 400 {
		t.Errorf("malformed tenant: %d", status)
	}
	if status, _, _ := n.do("GET", path, adminKey, nil); status != 404 {
		t.Errorf("GET before PUT: %d", status)
	}
	// The tenant's own receiver; the secret is generated and shown once.
	status, out, _ := n.do("PUT", path, adminKey, map[string]any{"url": "http://127.0.0.1:9/"})
	var put struct{ Tenant, URL, Secret string }
	if err := json.Unmarshal(out, &put); status != 200 || err != nil || !strings.HasPrefix(put.Secret, "whsec_") {
		t.Fatalf("PUT: %d %s", status, out)
	}
	own := testkit.NewWebhookReceiver(t, put.Secret)
	if status, out, _ := n.do("PUT", path, adminKey, map[string]any{"url": own.URL, "secret": put.Secret}); status != 200 ||
		strings.Contains(string(out), "whsec_") {
		t.Fatalf("PUT with a secret: %d %s", status, out)
	}
	status, out, _ = n.do("GET", path, adminKey, nil)
	if status != 200 || strings.Contains(string(out), "whsec_") || !strings.Contains(string(out), own.URL) {
		t.Fatalf("GET: %d %s", status, out)
	}
	for _, tenant := range []string{"acme", "globex"} {
		c := n.mustDial(dialOpts{header: token(t, tenant, "dan", "", time.Hour)})
		c.next("ready")
	}
	testkit.Eventually(t, 5*time.Second, func() bool { return len(own.Delivered()) == 1 && len(global.Delivered()) == 1 }, "one event each")
	if got := events(t, own); got[0] != "user.online acme/dan" {
		t.Fatalf("tenant endpoint got %v", got)
	}
	if status, _, _ := n.do("DELETE", path, adminKey, nil); status != http.StatusNoContent {
		t.Fatalf("DELETE: %d", status)
	}
	if status, _, _ := n.do("DELETE", path, adminKey, nil); status != 404 {
		t.Fatalf("second DELETE: %d", status)
	}
}

// TestPresenceAndWebhooksAcrossNodes: two nodes on PostgreSQL and Redis.
// Presence sums both; user.online and user.offline are each sent once
// cluster-wide; moving from one node to the other within the grace sends
// nothing; every webhook reaches the receiver once.
func TestPresenceAndWebhooksAcrossNodes(t *testing.T) {
	secret := webhook.NewSecret()
	rcv := testkit.NewWebhookReceiver(t, secret)
	a, b := twoSharedNodes(t, fastWebhooks(rcv.URL, secret))
	tok := token(t, "acme", "erin", "", time.Hour)
	onA := a.mustDial(dialOpts{header: tok})
	onA.next("ready")
	onB := b.mustDial(dialOpts{header: tok})
	onB.next("ready")
	a.waitPresence("acme", "erin", 2)
	b.waitPresence("acme", "erin", 2)
	onA.close()
	onB.close()
	onA = a.mustDial(dialOpts{header: tok}) // back within the grace, on the other node
	onA.next("ready")
	b.waitPresence("acme", "erin", 1)
	want := []string{"user.online acme/erin"}
	checkNoMore(t, rcv, want, 600*time.Millisecond)
	onA.close()
	testkit.Eventually(t, 5*time.Second, func() bool { return len(rcv.Delivered()) == 2 }, "user.offline")
	if got := events(t, rcv); !slices.Equal(got, append(want, "user.offline acme/erin")) {
		t.Fatalf("webhooks %v", got)
	}
	req := toUsers("acme", "erin", "fred")
	req["fallback"] = map[string]any{"after_s": 1}
	b.publish(req)
	testkit.Eventually(t, 5*time.Second, func() bool { return len(rcv.Delivered()) == 4 }, "2 fallbacks")
	checkNoMore(t, rcv, events(t, rcv), 300*time.Millisecond)
	for id, n := range rcv.Tries() {
		if n != 1 {
			t.Fatalf("webhook %s sent %d times", id, n)
		}
	}
}

// TestWebhookSurvivesRestart: a node stopped while its receiver is down,
// then started again on the same database, delivers the event with the id
// it was first attempted with.
func TestWebhookSurvivesRestart(t *testing.T) {
	secret := webhook.NewSecret()
	rcv := testkit.NewWebhookReceiver(t, secret)
	rcv.Fail.Store(true)
	db := filepath.Join(t.TempDir(), "herald.db")
	first := startNode(t, fastWebhooks(rcv.URL, secret), func(c *Config) { c.Database = db })
	c := first.mustDial(dialOpts{header: token(t, "acme", "gina", "", time.Hour)})
	c.next("ready")
	var id string
	testkit.Eventually(t, 5*time.Second, func() bool {
		for k, n := range rcv.Tries() {
			if n >= 2 {
				id = k
				return true
			}
		}
		return false
	}, "two failed attempts")
	if err := first.node.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	rcv.Fail.Store(false)
	startNode(t, fastWebhooks(rcv.URL, secret), func(c *Config) { c.Database = db })
	testkit.Eventually(t, 5*time.Second, func() bool { return len(rcv.Delivered()) >= 1 }, "delivery after the restart")
	if got := rcv.Delivered()[0]; got.ID != id {
		t.Fatalf("delivered %s after the restart, want %s (retries keep the id)", got.ID, id)
	}
}

// TestPresenceOfAStoppedNode: a node that stops while holding a user's
// connection leaves entries that expire; the user drops out of presence on
// the other node and user.offline is sent once.
func TestPresenceOfAStoppedNode(t *testing.T) {
	secret := webhook.NewSecret()
	rcv := testkit.NewWebhookReceiver(t, secret)
	a, b := twoSharedNodes(t, fastWebhooks(rcv.URL, secret), func(c *Config) { c.PresenceGrace = 5 * time.Second })
	c := a.mustDial(dialOpts{header: token(t, "acme", "hana", "", time.Hour)})
	c.next("ready")
	b.waitPresence("acme", "hana", 1)
	testkit.Eventually(t, 5*time.Second, func() bool { return len(rcv.Delivered()) == 1 }, "user.online")
	if err := a.node.Shutdown(context.Background()); err != nil { // within the grace: a cannot send user.offline
		t.Fatal(err)
	}
	b.waitPresence("acme", "hana", 0)
	testkit.Eventually(t, 10*time.Second, func() bool { return len(rcv.Delivered()) == 2 }, "user.offline from the other node")
	if got := events(t, rcv); !slices.Equal(got, []string{"user.online acme/hana", "user.offline acme/hana"}) {
		t.Fatalf("webhooks %v", got)
	}
	checkNoMore(t, rcv, events(t, rcv), 500*time.Millisecond)
}
