package node

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/heraldhq/herald/internal/audit"
	"github.com/heraldhq/herald/internal/testkit"
	"github.com/heraldhq/herald/internal/topicauth"
)

// liveJSON is a live event object as every transport carries it.
type liveJSON struct {
	ID        string          `json:"id"`
	Topic     string          `json:"topic"`
	Type      string          `json:"type"`
	Title     string          `json:"title"`
	Body      string          `json:"body"`
	Data      json.RawMessage `json:"data"`
	CreatedAt time.Time       `json:"created_at"`
}

// topicToken is a JWT of acme's user with the topics claim.
func topicToken(t testing.TB, tenant, user string, topics ...string) string {
	t.Helper()
	claims := map[string]any{"sub": user, "tenant_id": tenant, "exp": time.Now().Add(time.Hour).Unix()}
	if topics != nil {
		list := make([]any, len(topics))
		for i, s := range topics {
			list[i] = s
		}
		claims["topics"] = list
	}
	return tokenWith(t, claims)
}

func liveBody(tenant string, to map[string]any, typ string, extra ...any) map[string]any {
	b := map[string]any{"tenant": tenant, "to": to, "type": typ, "ephemeral": true}
	for i := 0; i+1 < len(extra); i += 2 {
		b[extra[i].(string)] = extra[i+1]
	}
	return b
}

// publishLive publishes a live event and returns its id (fails on non-202).
func (n *testNode) publishLive(body map[string]any, hdr ...string) string {
	n.t.Helper()
	status, out, _ := n.do("POST", "/v1/notifications", n.apiKey, body, hdr...)
	if status != http.StatusAccepted {
		n.t.Fatalf("live publish: %d %s", status, out)
	}
	var r struct {
		ID        string
		Ephemeral bool
	}
	if err := json.Unmarshal(out, &r); err != nil || r.ID == "" || !r.Ephemeral {
		n.t.Fatalf("live publish response %s: %v", out, err)
	}
	return r.ID
}

// wsAuth dials and authenticates a WebSocket client and waits for ready.
func (n *testNode) wsAuth(tok string) *wsClient {
	n.t.Helper()
	c := n.mustDial(dialOpts{})
	c.send(map[string]any{"type": "auth", "token": tok})
	c.next("ready")
	return c
}

func TestLiveTopicsOverWebSocket(t *testing.T) {
	n := startNode(t)
	c := n.wsAuth(topicToken(t, "acme", "ana", "project.*"))
	other := n.wsAuth(topicToken(t, "globex", "gus", "*")) // same topic name, another tenant

	c.send(map[string]any{"type": "subscribe", "topics": []string{"project.42"}, "ref": 1})
	if m := c.next("ack", "notification:error"); m.Type != "ack" || string(m.Ref) != "1" {
		t.Fatalf("subscribe answered %s", m.Raw)
	}
	other.send(map[string]any{"type": "subscribe", "topics": []string{"project.42"}, "ref": "g"})
	other.next("ack")

	id := n.publishLive(liveBody("acme", map[string]any{"topics": []string{"project.42"}}, "order:updated",
		"data", map[string]any{"id": 7}, "title", "Order 7"))
	m := c.next("event")
	if e := m.Event; e == nil || e.ID != id || e.Topic != "project.42" || e.Type != "order:updated" || e.Title != "Order 7" ||
		string(e.Data) != `{"id":7}` || e.CreatedAt.IsZero() {
		t.Fatalf("event message %s", m.Raw)
	}

	// Refused: outside the claim (forbidden, audited), and malformed.
	c.send(map[string]any{"type": "subscribe", "topics": []string{"admin.1"}, "ref": 2})
	if m := c.next("notification:error"); m.Code != "forbidden" || string(m.Ref) != "2" || !strings.Contains(m.Message, "admin.1") {
		t.Fatalf("forbidden subscribe answered %s", m.Raw)
	}
	testkit.Eventually(t, 0, func() bool {
		return strings.Contains(n.logs.String(), `"event":"`+string(audit.SubscribeForbidden)+`"`)
	},
		"the refusal is audited")
	for i, bad := range []any{[]string{"bad name"}, []string{}, "project.1", []string{strings.Repeat("a", 129)}, []any{7}} {
		c.send(map[string]any{"type": "subscribe", "topics": bad, "ref": 10 + i})
		if m := c.next("notification:error"); m.Code != "invalid_message" {
			t.Fatalf("subscribe %v answered %s", bad, m.Raw)
		}
	}

	// Unsubscribe: the next topic event does not arrive; a user event does.
	c.send(map[string]any{"type": "unsubscribe", "topics": []string{"project.42"}, "ref": 3})
	c.next("ack")
	n.publishLive(liveBody("acme", map[string]any{"topics": []string{"project.42"}}, "order:updated"))
	n.publishLive(liveBody("acme", map[string]any{"users": []string{"ana"}}, "job:progress", "data", map[string]any{"pct": 50}))
	if m := c.next("event"); m.Event.Type != "job:progress" || m.Event.Topic != "" {
		t.Fatalf("after unsubscribe got %s", m.Raw)
	}
	// The other tenant's subscriber got none of acme's events.
	n.publishLive(liveBody("globex", map[string]any{"topics": []string{"project.42"}}, "marker"))
	if m := other.next("event"); m.Event.Type != "marker" {
		t.Fatalf("globex subscriber got %s before its own marker", m.Raw)
	}
	if topics, subs := n.node.Hub().TopicStats(); topics != 1 || subs != 1 {
		t.Fatalf("index %d topics %d subscriptions, want globex's one", topics, subs)
	}
	other.close()
	testkit.Eventually(t, 0, func() bool { _, subs := n.node.Hub().TopicStats(); return subs == 0 }, "the closed client left its topics")
}

func TestLiveEventsAreNeverStoredOrCounted(t *testing.T) {
	n := startNode(t)
	tok := token(t, "acme", "ana", "admin", time.Hour)
	c := n.wsAuth(tok)
	for _, to := range []map[string]any{
		{"users": []string{"ana", "ana"}}, {"tenant": true}, {"role": "admin"},
	} {
		n.publishLive(liveBody("acme", to, "cache:refresh", "body", "b"))
		if m := c.next("event", "notification", "unread"); m.Type != "event" {
			t.Fatalf("a live event to %v produced %s", to, m.Raw)
		}
	}
	n.publishLive(liveBody("acme", map[string]any{"role": "guest"}, "cache:refresh"))
	stored := n.publish(toUsers("acme", "ana")) // a marker: the only thing stored
	if m := c.next("event", "notification"); m.Type != "notification" || m.Notification.ID != stored {
		t.Fatalf("after the live events got %s (a role-guest event, or a duplicate to ana?)", m.Raw)
	}
	status, body, _ := n.do("GET", "/v1/me/notifications", tok, nil)
	var page struct{ Notifications []sseNotification }
	if status != 200 || json.Unmarshal(body, &page) != nil || len(page.Notifications) != 1 || page.Notifications[0].ID != stored {
		t.Fatalf("list %d %s: want only the stored notification", status, body)
	}
	status, body, _ = n.do("GET", "/v1/me/unread-count", tok, nil)
	if status != 200 || !strings.Contains(string(body), `"count":1`) {
		t.Fatalf("unread count %d %s, want 1", status, body)
	}
}

func TestLivePublishBadInput(t *testing.T) {
	n := startNode(t)
	topics := map[string]any{"topics": []string{"project.42"}}
	many := make([]string, 101)
	for i := range many {
		many[i] = fmt.Sprintf("t%d", i)
	}
	for _, tc := range []struct {
		name   string
		body   any
		key    string
		status int
		msg    string
	}{
		{"topics without ephemeral", map[string]any{"tenant": "acme", "to": topics, "type": "x", "title": "t"}, "", 400, "to.topics needs"},
		{"topics with ephemeral false", map[string]any{"tenant": "acme", "to": topics, "type": "x", "title": "t", "ephemeral": false}, "", 400, "to.topics needs"},
		{"bad topic name", liveBody("acme", map[string]any{"topics": []string{"a b"}}, "x"), "", 400, "to.topics"},
		{"wildcard topic", liveBody("acme", map[string]any{"topics": []string{"project.*"}}, "x"), "", 400, "to.topics"},
		{"too many topics", liveBody("acme", map[string]any{"topics": many}, "x"), "", 400, "to.topics"},
		{"empty topics", liveBody("acme", map[string]any{"topics": []string{}}, "x"), "", 400, "to.topics"},
		{"two audiences", liveBody("acme", map[string]any{"topics": []string{"a"}, "tenant": true}, "x"), "", 400, "exactly one"},
		{"no audience", liveBody("acme", map[string]any{}, "x"), "", 400, ""},
		{"reserved type connect", liveBody("acme", topics, "connect"), "", 400, "reserved"},
		{"reserved type notification", liveBody("acme", topics, "notification"), "", 400, "reserved"},
		{"reserved request name", liveBody("acme", topics, "subscribe"), "", 400, "reserved"},
		{"bad type", liveBody("acme", topics, "a b"), "", 400, "type"},
		{"expires_at", liveBody("acme", topics, "x", "expires_at", time.Now().Add(time.Hour)), "", 400, "expires_at"},
		{"data not an object", liveBody("acme", topics, "x", "data", []int{1}), "", 400, ""},
		{"unknown field", liveBody("acme", topics, "x", "priority", 1), "", 400, ""},
		{"title too long", liveBody("acme", topics, "x", "title", strings.Repeat("a", 513)), "", 400, "title"},
		{"oversized", liveBody("acme", topics, "x", "body", strings.Repeat("a", 70<<10)), "", 413, ""},
		{"no api key", liveBody("acme", topics, "x"), "none", 401, ""},
		{"key of another tenant", liveBody("acme", topics, "x"), "other-api-key-0123456789", 403, ""},
		{"ephemeral in a batch", `{"notifications":[{"tenant":"acme","to":{"tenant":true},"type":"x","title":"t","ephemeral":true}]}`, "batch", 400, "one event at a time"},
		{"duplicate key", `{"tenant":"acme","to":{"topics":["a"]},"type":"x","ephemeral":true,"ephemeral":false}`, "", 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, path := n.apiKey, "/v1/notifications"
			switch tc.key {
			case "none":
				key = ""
			case "batch":
				path += "/batch"
			case "":
			default:
				key = tc.key
			}
			status, out, _ := n.do("POST", path, key, tc.body)
			if status != tc.status || !strings.Contains(string(out), tc.msg) {
				t.Fatalf("status %d %s, want %d mentioning %q", status, out, tc.status, tc.msg)
			}
		})
	}
}

func TestLiveIdempotencyKey(t *testing.T) {
	n := startNode(t)
	c := n.wsAuth(token(t, "acme", "ana", "", time.Hour))
	body := liveBody("acme", map[string]any{"users": []string{"ana"}}, "x")
	first := n.publishLive(body, "Idempotency-Key", "k-1")
	status, out, h := n.do("POST", "/v1/notifications", n.apiKey, body, "Idempotency-Key", "k-1")
	if status != http.StatusAccepted || !strings.Contains(string(out), first) || h.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry: %d %s %v", status, out, h)
	}
	body2 := liveBody("acme", map[string]any{"users": []string{"ana"}}, "y")
	if status, out, _ := n.do("POST", "/v1/notifications", n.apiKey, body2, "Idempotency-Key", "k-1"); status != 422 {
		t.Fatalf("another body under the key: %d %s", status, out)
	}
	marker := n.publishLive(liveBody("acme", map[string]any{"users": []string{"ana"}}, "marker"))
	if m := c.next("event"); m.Event.ID != first {
		t.Fatalf("first event %s", m.Raw)
	}
	if m := c.next("event"); m.Event.ID != marker {
		t.Fatalf("the retry was delivered again: %s", m.Raw)
	}
}

func TestLiveTopicsOverSSE(t *testing.T) {
	n := startNode(t)
	tok := topicToken(t, "acme", "sam", "room.*")
	s := n.mustStream(streamOpts{bearer: tok, query: "topics=" + url.QueryEscape("room.1, room.2")})
	s.next("ready")
	testkit.Eventually(t, 0, func() bool { _, subs := n.node.Hub().TopicStats(); return subs == 2 }, "the stream joined its topics")
	id := n.publishLive(liveBody("acme", map[string]any{"topics": []string{"room.2"}}, "typing", "data", map[string]any{"who": "x"}))
	ev := s.next("event")
	var e liveJSON
	if err := json.Unmarshal([]byte(ev.Data), &e); err != nil || e.ID != id || e.Topic != "room.2" || e.Type != "typing" {
		t.Fatalf("SSE event %q: %v", ev.Raw, err)
	}
	if ev.ID != "" {
		t.Fatalf("a live event carries an id line (it would move Last-Event-ID): %q", ev.Raw)
	}
	// A stream ticket carries the token's topics claim.
	st := n.mustStream(streamOpts{ticket: n.ticket(tok), query: "topics=room.9"})
	st.next("ready")
	testkit.Eventually(t, 0, func() bool { _, subs := n.node.Hub().TopicStats(); return subs == 3 }, "the ticket stream joined")
	n.publishLive(liveBody("acme", map[string]any{"topics": []string{"room.9"}}, "typing"))
	if ev := st.next("event"); !strings.Contains(ev.Data, `"topic":"room.9"`) {
		t.Fatalf("ticket stream event %q", ev.Raw)
	}
	for _, tc := range []struct {
		query  string
		status int
	}{
		{"topics=secret", 403},
		{"topics=room.1,secret", 403},
		{"topics=" + url.QueryEscape("bad name"), 400},
		{"topics=", 400},
		{"topics=a,,b", 400},
	} {
		_, resp, err := n.openStream(streamOpts{bearer: tok, query: tc.query})
		if err == nil || resp == nil || resp.StatusCode != tc.status {
			code := 0
			if resp != nil {
				code = resp.StatusCode
			}
			t.Errorf("?%s: status %d (%v), want %d", tc.query, code, err, tc.status)
		}
	}
}

// Two nodes sharing PostgreSQL and Redis: a live event published on either
// reaches the topic's subscribers on both, once; an Idempotency-Key retried
// on the other node is recognised (Redis SET NX).
func TestLiveTopicsAcrossTwoNodes(t *testing.T) {
	a, b := twoSharedNodes(t)
	tok := topicToken(t, "acme", "ana", "project.*")
	wsB := b.wsAuth(tok)
	wsB.send(map[string]any{"type": "subscribe", "topics": []string{"project.42"}, "ref": 1})
	wsB.next("ack")
	sseA := a.mustStream(streamOpts{ticket: b.ticket(tok), query: "topics=project.42"}) // a ticket from the other node (Redis)
	sseA.next("ready")
	testkit.Eventually(t, 0, func() bool { _, subs := a.node.Hub().TopicStats(); return subs == 1 }, "the stream joined")
	sseEvent := func() liveJSON {
		t.Helper()
		var e liveJSON
		if err := json.Unmarshal([]byte(sseA.next("event").Data), &e); err != nil {
			t.Fatal(err)
		}
		return e
	}

	body := liveBody("acme", map[string]any{"topics": []string{"project.42"}}, "order:updated", "data", map[string]any{"id": 1})
	first := a.publishLive(body, "Idempotency-Key", "order-1-shipped")
	if m := wsB.next("event"); m.Event.ID != first || m.Event.Topic != "project.42" {
		t.Fatalf("node b's subscriber got %s", m.Raw)
	}
	if e := sseEvent(); e.ID != first {
		t.Fatalf("node a's subscriber got %+v", e)
	}
	// The retry lands on node b: the same id, not published again.
	status, out, h := b.do("POST", "/v1/notifications", b.apiKey, body, "Idempotency-Key", "order-1-shipped")
	if status != http.StatusAccepted || !strings.Contains(string(out), first) || h.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry on the other node: %d %s", status, out)
	}
	second := b.publishLive(liveBody("acme", map[string]any{"topics": []string{"project.42"}}, "order:updated"))
	if m := wsB.next("event"); m.Event.ID != second {
		t.Fatalf("node b's subscriber got %s, want the second event (the retry must not be delivered)", m.Raw)
	}
	if e := sseEvent(); e.ID != second {
		t.Fatalf("node a's subscriber got %+v, want the second event", e)
	}
	// Nothing reached the store on either node.
	st, listed, _ := b.do("GET", "/v1/me/notifications", tok, nil)
	if st != 200 || !strings.Contains(string(listed), `"notifications":[]`) {
		t.Fatalf("list after live events: %d %s", st, listed)
	}
}

// The subscribe-authorization hook on a node: a real HTTP backend that
// checks the Standard Webhooks signature, allows room.1, denies the rest,
// and is too slow for slow.1 (a timeout denies).
func TestSubscribeAuthHook(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	defer close(release)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := wh.Verify(body, r.Header); err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var req topicauth.Request
		_ = json.Unmarshal(body, &req)
		if req.Tenant != "acme" || req.User != "ana" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if slices.Contains(req.Topics, "slow.1") {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		_ = json.NewEncoder(w).Encode(topicauth.Response{Allowed: []string{"room.1"}})
	}))
	defer backend.Close()
	n := startNode(t, func(c *Config) {
		c.SubscribeAuth = topicauth.Config{URL: backend.URL, Secret: secret, Timeout: 200 * time.Millisecond}
	})
	c := n.wsAuth(topicToken(t, "acme", "ana", "project.*"))
	for i, tc := range []struct {
		topics []string
		want   string
	}{
		{[]string{"room.1", "project.1"}, "ack"}, // the hook allows one, the claim the other
		{[]string{"room.2"}, "forbidden"},        // the hook denies
		{[]string{"slow.1"}, "forbidden"},        // the hook times out: denied
		{[]string{"room.1"}, "ack"},              // cached
	} {
		c.send(map[string]any{"type": "subscribe", "topics": tc.topics, "ref": i})
		m := c.next("ack", "notification:error")
		if (tc.want == "ack") != (m.Type == "ack") || (tc.want != "ack" && m.Code != tc.want) {
			t.Fatalf("subscribe %q answered %s, want %s", tc.topics, m.Raw, tc.want)
		}
	}
	testkit.Eventually(t, 0, func() bool { return strings.Contains(n.logs.String(), `"event":"subscribe_auth_failed"`) },
		"the hook's timeout is recorded")
	id := n.publishLive(liveBody("acme", map[string]any{"topics": []string{"room.1"}}, "typing"))
	if m := c.next("event"); m.Event.ID != id {
		t.Fatalf("event %s", m.Raw)
	}
}
