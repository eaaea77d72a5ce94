package node

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/presence"
	"github.com/heraldhq/herald/internal/testkit"
	"github.com/heraldhq/herald/internal/webhook"
)

// presenceAnswer is GET /v1/presence's body.
type presenceAnswer struct {
	Tenant string            `json:"tenant"`
	Users  []presence.Status `json:"users"`
}

func (n *testNode) presence(key, query string) (int, presenceAnswer) {
	n.t.Helper()
	status, body, _ := n.do("GET", "/v1/presence?"+query, key, nil)
	var a presenceAnswer
	if status == http.StatusOK {
		if err := json.Unmarshal(body, &a); err != nil {
			n.t.Fatalf("presence body %s: %v", body, err)
		}
	}
	return status, a
}

// waitPresence polls until user of tenant has conns connections over ws.
func (n *testNode) waitPresence(tenant, user string, conns int) {
	n.t.Helper()
	testkit.Eventually(n.t, 5*time.Second, func() bool {
		status, a := n.presence(n.apiKey, "tenant="+url.QueryEscape(tenant)+"&user="+url.QueryEscape(user))
		return status == 200 && len(a.Users) == 1 && a.Users[0].Connections == conns && a.Users[0].Online == (conns > 0) &&
			a.Users[0].Transports["ws"] == conns
	}, "%s/%s with %d ws connections", tenant, user, conns)
}

// fastWebhooks makes a node send webhooks to url at once and retry fast.
func fastWebhooks(url, secret string) func(*Config) {
	return func(c *Config) {
		c.Webhook = webhook.Config{URL: url, Secret: secret, Poll: 20 * time.Millisecond, RetryBase: 50 * time.Millisecond,
			RetryMax: 200 * time.Millisecond, EndpointRefresh: 100 * time.Millisecond, StatsInterval: 50 * time.Millisecond}
		c.PresenceGrace = 300 * time.Millisecond
		c.PresenceTTL = time.Second
	}
}

func TestPresenceAPI(t *testing.T) {
	n := startNode(t)
	a1 := n.mustDial(dialOpts{header: token(t, "acme", "alice", "", time.Hour)})
	a1.next("ready")
	a2 := n.mustDial(dialOpts{header: token(t, "acme", "alice", "", time.Hour)})
	a2.next("ready")
	n.waitPresence("acme", "alice", 2)
	status, a := n.presence(n.apiKey, "tenant=acme&user=alice&user=bob")
	if status != 200 || a.Tenant != "acme" || len(a.Users) != 2 || a.Users[1].User != "bob" || a.Users[1].Online ||
		a.Users[1].Connections != 0 || a.Users[1].Transports == nil {
		t.Fatalf("presence %d %+v", status, a)
	}
	// A tenant-scoped key reads its own tenant, with or without naming it.
	if status, a := n.presence("scoped-api-key-0123456789", "user=alice"); status != 200 || a.Tenant != "acme" || !a.Users[0].Online {
		t.Fatalf("scoped key: %d %+v", status, a)
	}
	// Another tenant's alice is somebody else.
	if status, a := n.presence(n.apiKey, "tenant=globex&user=alice"); status != 200 || a.Users[0].Online {
		t.Fatalf("globex/alice: %d %+v", status, a)
	}
	a1.close()
	a2.close()
	n.waitPresence("acme", "alice", 0)
}

func TestPresenceAPIRefusesBadInput(t *testing.T) {
	n := startNode(t)
	many := strings.Repeat("user=u&", webhookMaxUsers+1)
	for _, tc := range []struct {
		name, key, query string
		want             int
	}{
		{"no key", "", "tenant=acme&user=a", 401},
		{"wrong key", "not-a-key-0123456789", "tenant=acme&user=a", 401},
		{"other tenant", "scoped-api-key-0123456789", "tenant=globex&user=a", 403},
		{"no users", n.apiKey, "tenant=acme", 400},
		{"too many users", n.apiKey, "tenant=acme&" + many, 400},
		{"no tenant", n.apiKey, "user=a", 400},
		{"two tenants", n.apiKey, "tenant=acme&tenant=globex&user=a", 400},
		{"control character", n.apiKey, "tenant=acme&user=a%01b", 400},
		{"empty user", n.apiKey, "tenant=acme&user=", 400},
		{"long user", n.apiKey, "tenant=acme&user=" + strings.Repeat("x", 1000), 400},
		{"unknown parameter", n.apiKey, "tenant=acme&user=a&users=b", 400},
		{"bad escape", n.apiKey, "tenant=acme&user=%zz", 400},
	} {
		status, body, _ := n.do("GET", "/v1/presence?"+tc.query, tc.key, nil)
		if status != tc.want || (status != 200 && !strings.Contains(string(body), `"code"`)) {
			t.Errorf("%s: %d %s, want %d", tc.name, status, body, tc.want)
		}
	}
	// 1,000 users of ordinary length fit in one query.
	var q strings.Builder
	q.WriteString("tenant=acme")
	for i := range webhookMaxUsers {
		q.WriteString("&user=user-" + strconv.Itoa(100000+i))
	}
	if status, a := n.presence(n.apiKey, q.String()); status != 200 || len(a.Users) != webhookMaxUsers {
		t.Fatalf("1000 users: %d, %d answers", status, len(a.Users))
	}
}

const webhookMaxUsers = 1000

// body is a webhook body as a receiver sees it.
type body struct {
	ID           string `json:"id"`
	Type         string `json:"type"`
	CreatedAt    string `json:"created_at"`
	Tenant       string `json:"tenant"`
	User         string `json:"user"`
	Notification *struct {
		ID       string `json:"id"`
		Title    string `json:"title"`
		Category string `json:"category"`
	} `json:"notification"`
	NotificationIDs []string `json:"notification_ids"`
}

func bodies(t *testing.T, r *testkit.WebhookReceiver) []body {
	var out []body
	for _, d := range r.Delivered() {
		var b body
		d.Decode(t, &b)
		if b.ID == "" || b.CreatedAt == "" || b.Tenant == "" || b.User == "" || b.Type == "" {
			t.Fatalf("body without a required field: %s", d.Body)
		}
		out = append(out, b)
	}
	return out
}

// events lists "type user" of the deliveries.
func events(t *testing.T, r *testkit.WebhookReceiver) []string {
	var out []string
	for _, b := range bodies(t, r) {
		out = append(out, b.Type+" "+b.Tenant+"/"+b.User)
	}
	return out
}

// checkNoMore polls for a while that the receiver gets nothing more.
func checkNoMore(t *testing.T, r *testkit.WebhookReceiver, want []string, d time.Duration) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if got := events(t, r); !slices.Equal(got, want) {
			t.Fatalf("webhooks %v, want %v", got, want)
		}
	}
}
