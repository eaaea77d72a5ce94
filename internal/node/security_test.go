package node

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/limit"
	"github.com/heraldhq/herald/internal/testkit"
)

const adminKey = "admin-api-key-0123456789"

func TestRevokeUserClosesConnectionsRejectsOldTokensAndSurvivesRestart(t *testing.T) {
	db := filepath.Join(t.TempDir(), "herald.db")
	n := startNode(t, func(c *Config) { c.Database = db })
	old := tokenWith(t, map[string]any{"sub": "bad", "tenant_id": "acme", "iat": time.Now().Add(-time.Minute).Unix(), "exp": time.Now().Add(time.Hour).Unix()})
	c1 := n.mustDial(dialOpts{header: old})
	c2 := n.mustDial(dialOpts{header: old})
	bystander := n.mustDial(dialOpts{header: token(t, "acme", "good", "", time.Hour)})
	for _, c := range []*wsClient{c1, c2, bystander} {
		c.next("ready")
	}
	// Only an admin key may revoke.
	if status, _, _ := n.do("POST", "/v1/admin/revocations", n.apiKey, map[string]any{"tenant": "acme", "user": "bad"}); status != 403 {
		t.Fatalf("non-admin revoke: %d", status)
	}
	if status, _, _ := n.do("POST", "/v1/admin/revocations", "", map[string]any{"tenant": "acme", "user": "bad"}); status != 401 {
		t.Fatalf("anonymous revoke: %d", status)
	}
	for _, bad := range []any{`{}`, `{"tenant":"acme"}`, `{"tenant":"acme","user":"bad","jti":"x"}`, `{"jti":"x"}`, `{"jti":"x","expires_at":"2000-01-01T00:00:00Z"}`, `{"tenant":"acme","user":"bad","extra":1}`} {
		if status, body, _ := n.do("POST", "/v1/admin/revocations", adminKey, bad); status != 400 {
			t.Fatalf("bad revoke %v: %d %s", bad, status, body)
		}
	}
	if status, body, _ := n.do("POST", "/v1/admin/revocations", adminKey, map[string]any{"tenant": "acme", "user": "bad"}); status != 201 {
		t.Fatalf("revoke: %d %s", status, body)
	}
	for _, c := range []*wsClient{c1, c2} {
		if code := c.closeStatus(); code != 4004 {
			t.Fatalf("revoked connection closed with %d", code)
		}
	}
	if status, _, _ := n.do("GET", "/v1/me/notifications", old, nil); status != 401 {
		t.Fatalf("revoked token on REST: %d", status)
	}
	if _, resp, err := n.dial(dialOpts{header: old}); err == nil || resp.StatusCode != 401 {
		t.Fatalf("revoked token on WS: %v", err)
	}
	// The bystander is untouched.
	id := n.publish(toUsers("acme", "good"))
	if m := bystander.next("notification"); m.Notification.ID != id {
		t.Fatal("bystander disturbed")
	}
	// A token issued after the revocation works (un-banning = new tokens).
	time.Sleep(1100 * time.Millisecond)
	fresh := tokenWith(t, map[string]any{"sub": "bad", "tenant_id": "acme", "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()})
	if status, _, _ := n.do("GET", "/v1/me/notifications", fresh, nil); status != 200 {
		t.Fatalf("fresh token: %d", status)
	}
	// Revocations survive a restart.
	if err := n.node.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	n2 := startNode(t, func(c *Config) { c.Database = db })
	if status, _, _ := n2.do("GET", "/v1/me/notifications", old, nil); status != 401 {
		t.Fatalf("revoked token after restart: %d", status)
	}
	// Lifting the revocation lets old tokens in again.
	if status, _, _ := n2.do("DELETE", "/v1/admin/revocations/users/acme/bad", adminKey, nil); status != 204 {
		t.Fatalf("lift: %d", status)
	}
	if status, _, _ := n2.do("GET", "/v1/me/notifications", old, nil); status != 200 {
		t.Fatalf("after lift: %d", status)
	}
}

func TestRevokeTokenByJTI(t *testing.T) {
	n := startNode(t)
	exp := time.Now().Add(time.Hour)
	stolen := tokenWith(t, map[string]any{"sub": "u", "tenant_id": "acme", "jti": "tok-1", "exp": exp.Unix()})
	other := tokenWith(t, map[string]any{"sub": "u", "tenant_id": "acme", "jti": "tok-2", "exp": exp.Unix()})
	c1 := n.mustDial(dialOpts{header: stolen})
	c2 := n.mustDial(dialOpts{header: other})
	c1.next("ready")
	c2.next("ready")
	if status, body, _ := n.do("POST", "/v1/admin/revocations", adminKey, map[string]any{"jti": "tok-1", "expires_at": exp}); status != 201 {
		t.Fatalf("revoke jti: %d %s", status, body)
	}
	if code := c1.closeStatus(); code != 4004 {
		t.Fatalf("close %d", code)
	}
	if status, _, _ := n.do("GET", "/v1/me/unread-count", stolen, nil); status != 401 {
		t.Fatalf("stolen token: %d", status)
	}
	if status, _, _ := n.do("GET", "/v1/me/unread-count", other, nil); status != 200 {
		t.Fatalf("other token: %d", status)
	}
	c2.send(`{"type":"ping"}`)
	c2.next("pong")
}

func TestConnectionLimits(t *testing.T) {
	n := startNode(t, func(c *Config) {
		c.MaxConnections = 6
		c.Limits.MaxConnsPerUser = 2
		c.Limits.MaxConnsPerIP = 5
		c.Limits.MaxUnauthenticated = 1
		c.Limits.HandshakeRate = limit.Rate{Per: -1}
	})
	tok := token(t, "acme", "u", "", time.Hour)
	a := n.mustDial(dialOpts{header: tok})
	b := n.mustDial(dialOpts{header: tok})
	a.next("ready")
	b.next("ready")
	if _, resp, err := n.dial(dialOpts{header: tok}); err == nil || resp.StatusCode != 429 {
		t.Fatalf("third connection of a user: %v", err)
	}
	// With first-frame auth the cap is enforced after the upgrade: 4013.
	f := n.mustDial(dialOpts{})
	f.send(map[string]any{"type": "auth", "token": tok})
	if code := f.closeStatus(); code != 4013 {
		t.Fatalf("first-frame over cap: %d", code)
	}
	// One unauthenticated socket at a time.
	idle := n.mustDial(dialOpts{})
	testkit.Eventually(t, 0, func() bool { return n.node.ws.Active() == 3 }, "idle socket counted")
	if _, resp, err := n.dial(dialOpts{}); err == nil || resp.StatusCode != 503 {
		t.Fatalf("second unauthenticated: %v", err)
	}
	idle.close()
	testkit.Eventually(t, 0, func() bool { return n.node.ws.Active() == 2 }, "idle socket freed")
	// Per IP: 5 (a, b and three more users).
	var cs []*wsClient
	for i := 0; i < 3; i++ {
		c := n.mustDial(dialOpts{header: token(t, "acme", fmt.Sprintf("p%d", i), "", time.Hour)})
		c.next("ready")
		cs = append(cs, c)
	}
	if _, resp, err := n.dial(dialOpts{header: token(t, "acme", "p9", "", time.Hour)}); err == nil || resp.StatusCode != 429 {
		t.Fatalf("over per-IP cap: %v", err)
	}
	// Closing frees the slots.
	a.close()
	testkit.Eventually(t, 0, func() bool { return n.node.ws.Active() == 4 }, "slot freed")
	c := n.mustDial(dialOpts{header: tok})
	c.next("ready")
}

func TestGlobalConnectionLimit(t *testing.T) {
	n := startNode(t, func(c *Config) { c.MaxConnections = 2 })
	for i := 0; i < 2; i++ {
		n.mustDial(dialOpts{header: token(t, "acme", fmt.Sprintf("g%d", i), "", time.Hour)}).next("ready")
	}
	if _, resp, err := n.dial(dialOpts{header: token(t, "acme", "g3", "", time.Hour)}); err == nil || resp.StatusCode != 503 {
		t.Fatalf("over global limit: %v", err)
	}
}

func TestHandshakeRateLimitPerIP(t *testing.T) {
	n := startNode(t, func(c *Config) { c.Limits.HandshakeRate = limit.Rate{Per: 0.001, Burst: 2} })
	// Users who authenticate in their first frame are never limited by
	// it: many of them behind one address (a NAT) all get in.
	for i := range 20 {
		c := n.mustDial(dialOpts{})
		c.send(`{"type":"auth","token":"` + token(t, "acme", fmt.Sprint("nat-", i), "", time.Hour) + `"}`)
		c.next("ready")
		c.close()
	}
	// Handshakes that end unauthenticated use up the budget (2), charged
	// as each one ends.
	n.mustDial(dialOpts{}).close()
	n.mustDial(dialOpts{}).close()
	testkit.Eventually(t, 0, func() bool {
		c, resp, err := n.dial(dialOpts{})
		if err == nil {
			c.close()
		}
		return err != nil && resp != nil && resp.StatusCode == 429
	}, "an unauthenticated handshake refused once two failed")
	// Authenticated handshakes are not limited by this.
	n.mustDial(dialOpts{header: token(t, "acme", "u", "", time.Hour)}).next("ready")
}

func TestEventRateLimitAndAbuseClose(t *testing.T) {
	n := startNode(t, func(c *Config) { c.Limits.EventRate = limit.Rate{Per: 0.001, Burst: 3} })
	tok := token(t, "acme", "spammer", "", time.Hour)
	c := n.mustDial(dialOpts{header: tok})
	c.next("ready")
	other := n.mustDial(dialOpts{header: token(t, "acme", "calm", "", time.Hour)})
	other.next("ready")
	for i := 0; i < 3; i++ {
		c.send(`{"type":"ping"}`)
		c.next("pong")
	}
	c.send(`{"type":"ping","ref":"x"}`)
	if m := c.next("notification:error"); m.Code != "rate_limited" || string(m.Ref) != `"x"` {
		t.Fatalf("over limit: %s", m.Raw)
	}
	// The same bucket covers the user's REST calls.
	if status, body, hdr := n.do("GET", "/v1/me/unread-count", tok, nil); status != 429 || hdr.Get("Retry-After") == "" || !strings.Contains(string(body), "rate_limited") {
		t.Fatalf("REST over limit: %d %s", status, body)
	}
	// Another user is not affected.
	other.send(`{"type":"ping"}`)
	other.next("pong")
	// Sustained abuse closes the socket with 4029.
	for i := 0; i < 25; i++ {
		c.send(`{"type":"ping"}`)
	}
	if code := c.closeStatus(); code != 4029 {
		t.Fatalf("abuse close: %d", code)
	}
}

func TestPublishRateLimitPerKey(t *testing.T) {
	n := startNode(t, func(c *Config) { c.Limits.PublishRate = limit.Rate{Per: 0.001, Burst: 2} })
	n.publish(toUsers("acme", "u"))
	n.publish(toUsers("acme", "u"))
	status, body, hdr := n.do("POST", "/v1/notifications", n.apiKey, toUsers("acme", "u"))
	if status != 429 || hdr.Get("Retry-After") == "" || !strings.Contains(string(body), "rate_limited") {
		t.Fatalf("over publish limit: %d %s", status, body)
	}
	// Another key has its own budget.
	if status, _, _ := n.do("POST", "/v1/notifications", "scoped-api-key-0123456789", toUsers("acme", "u")); status != 201 {
		t.Fatalf("other key: %d", status)
	}
	if got := listAll(t, n, token(t, "acme", "u", "", time.Hour)); len(got) != 3 {
		t.Fatalf("stored %d", len(got))
	}
}

// TestSlowlorisHeadersAreCutOff: a client that never finishes its upgrade
// request headers is disconnected by ReadHeaderTimeout.
func TestSlowlorisHeadersAreCutOff(t *testing.T) {
	n := startNode(t, func(c *Config) { c.ReadHeaderLimit = 300 * time.Millisecond })
	conn, err := net.Dial("tcp", strings.TrimPrefix(n.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	_, err = bufio.NewReader(conn).ReadString('\n')
	if err == nil {
		// net/http may answer 408 before closing; either way it must end.
		_, err = bufio.NewReader(conn).ReadString('\n')
	}
	if time.Since(start) > 4*time.Second {
		t.Fatalf("slow header connection held for %v", time.Since(start))
	}
}

// TestSecretsNeverLogged: tokens, API keys and notification bodies never
// appear in the logs, whatever happens.
func TestSecretsNeverLogged(t *testing.T) {
	n := startNode(t)
	tok := token(t, "acme", "u", "", time.Hour)
	c := n.mustDial(dialOpts{header: tok})
	c.next("ready")
	body := toUsers("acme", "u")
	body["body"] = "top-secret-body-text"
	n.publish(body)
	c.next("notification")
	n.do("POST", "/v1/notifications", "wrong-key-secret-123456", body)
	n.do("GET", "/v1/me/notifications", tok+"tampered", nil)
	bad := n.mustDial(dialOpts{})
	bad.send(map[string]any{"type": "auth", "token": tok + "x"})
	bad.closeStatus()
	c.send(`{"type":"notification:mark-read","id":"top-secret-body-text"}`)
	c.next("notification:error")
	n.do("POST", "/v1/admin/revocations", adminKey, map[string]any{"tenant": "acme", "user": "u"})
	c.closeStatus()
	logs := n.logs.String()
	for _, secret := range []string{tok, strings.Split(tok, ".")[2], n.apiKey, adminKey, "wrong-key-secret-123456", "top-secret-body-text", testSecret} {
		if strings.Contains(logs, secret) {
			t.Fatalf("logs contain a secret %q", secret[:min(12, len(secret))])
		}
	}
	for _, event := range []string{"connect", "token_validated", "token_invalid", "api_key_invalid", "invalid_message", "revoked", "disconnect"} {
		if !strings.Contains(logs, `"event":"`+event+`"`) {
			t.Errorf("no %q audit event in logs", event)
		}
	}
}

func TestAdminAPIRejectsNonAdminAndBadInput(t *testing.T) {
	n := startNode(t)
	for _, tc := range []struct {
		method, path, key string
		body              any
		status            int
	}{
		{"POST", "/v1/admin/revocations", "scoped-api-key-0123456789", `{"tenant":"acme","user":"u"}`, http.StatusForbidden},
		{"DELETE", "/v1/admin/revocations/users/acme/u", n.apiKey, nil, http.StatusForbidden},
		{"DELETE", "/v1/admin/revocations/users/acme/u", "", nil, http.StatusUnauthorized},
		{"POST", "/v1/admin/revocations", adminKey, `not json`, http.StatusBadRequest},
		{"POST", "/v1/admin/revocations", adminKey, `{"tenant":"acme","user":"` + strings.Repeat("u", 200) + `"}`, http.StatusBadRequest},
	} {
		if status, body, _ := n.do(tc.method, tc.path, tc.key, tc.body); status != tc.status {
			t.Errorf("%s %s with %q: %d %s", tc.method, tc.path, tc.key, status, body)
		}
	}
}

// TestHandshakeFloodLeavesNothingBehind: many sockets that never
// authenticate are closed at the deadline and free everything (goleak in
// TestMain checks goroutines; the hub and registry counts are checked here).
func TestHandshakeFloodLeavesNothingBehind(t *testing.T) {
	n := startNode(t, func(c *Config) {
		c.Session.AuthTimeout = 500 * time.Millisecond
		c.Limits.HandshakeRate = limit.Rate{Per: -1}
		c.Limits.MaxUnauthenticated = 1000
	})
	var cs []*wsClient
	for i := 0; i < 150; i++ {
		cs = append(cs, n.mustDial(dialOpts{}))
	}
	for _, c := range cs {
		if code := c.closeStatus(); code != 4001 {
			t.Fatalf("close %d", code)
		}
	}
	testkit.Eventually(t, 0, func() bool { return n.node.ws.Active() == 0 && n.node.hub.Active() == 0 }, "all sockets freed")
	if got := strings.Count(n.logs.String(), `"event":"auth_timeout"`); got != 150 {
		t.Fatalf("%d auth_timeout events", got)
	}
}

func TestInternalErrorsCarryCorrelationIDs(t *testing.T) {
	n := startNode(t)
	c := n.mustDial(dialOpts{header: token(t, "acme", "u", "", time.Hour)})
	c.next("ready")
	c.send("not json")
	m := c.next("notification:error")
	if !strings.Contains(m.Raw, `"correlation_id":"`) {
		t.Fatalf("no correlation id: %s", m.Raw)
	}
	var cid struct {
		CorrelationID string `json:"correlation_id"`
	}
	_ = json.Unmarshal([]byte(m.Raw), &cid)
	testkit.Eventually(t, 0, func() bool { return strings.Contains(n.logs.String(), cid.CorrelationID) }, "correlation id in logs")
}

// twoSharedNodes starts two nodes sharing a PostgreSQL schema and a Redis
// key prefix of their own (dropped and deleted when the test ends), and
// waits until both are ready.
func twoSharedNodes(t *testing.T, mutate ...func(*Config)) (a, b *testNode) {
	t.Helper()
	pgURL, schema := testkit.PostgresURL(t), testkit.PostgresSchema(t)
	redisURL := testkit.RedisURL(t)
	_, prefix := testkit.Redis(t)
	shared := func(c *Config) {
		c.Database, c.DatabaseSchema = pgURL, schema
		c.RedisURL, c.RedisPrefix = redisURL, prefix
	}
	a = startNode(t, append([]func(*Config){shared}, mutate...)...)
	b = startNode(t, append([]func(*Config){shared}, mutate...)...)
	testkit.Eventually(t, 0, func() bool {
		sa, _, _ := a.do("GET", "/readyz", "", nil)
		sb, _, _ := b.do("GET", "/readyz", "", nil)
		return sa == 200 && sb == 200
	}, "both nodes ready")
	return a, b
}

// TestRevocationAndLiftReachEveryNode: two nodes sharing PostgreSQL and
// Redis. A user revoked through one is refused and disconnected by the
// other; lifting the revocation through the second lets the user back in on
// the first, without a restart.
func TestRevocationAndLiftReachEveryNode(t *testing.T) {
	a, b := twoSharedNodes(t)
	old := tokenWith(t, map[string]any{"sub": "bad", "tenant_id": "acme", "iat": time.Now().Add(-time.Minute).Unix(), "exp": time.Now().Add(time.Hour).Unix()})
	onB := b.mustDial(dialOpts{header: old})
	onB.next("ready")

	if status, body, _ := a.do("POST", "/v1/admin/revocations", adminKey, map[string]any{"tenant": "acme", "user": "bad"}); status != 201 {
		t.Fatalf("revoke on a: %d %s", status, body)
	}
	if code := onB.closeStatus(); code != 4004 {
		t.Fatalf("connection on b closed with %d, want 4004", code)
	}
	if status, _, _ := b.do("GET", "/v1/me/notifications", old, nil); status != 401 {
		t.Fatalf("revoked token on b: %d", status)
	}

	if status, _, _ := b.do("DELETE", "/v1/admin/revocations/users/acme/bad", adminKey, nil); status != 204 {
		t.Fatalf("lift on b: %d", status)
	}
	testkit.Eventually(t, 0, func() bool {
		status, _, _ := a.do("GET", "/v1/me/notifications", old, nil)
		return status == 200
	}, "lift to reach node a")
	c := a.mustDial(dialOpts{header: old})
	c.next("ready")
}
