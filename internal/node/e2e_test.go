package node

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldhq/herald/internal/testkit"
)

func TestPublishDeliversLiveWithHeaderAuth(t *testing.T) {
	n := startNode(t)
	c := n.mustDial(dialOpts{header: token(t, "acme", "alice", "", time.Hour)})
	ready := c.next("ready")
	if ready.User != "alice" || ready.Tenant != "acme" || ready.Unread != 0 || ready.Position != "0.0" {
		t.Fatalf("ready = %+v", ready)
	}
	id := n.publish(map[string]any{"tenant": "acme", "to": map[string]any{"users": []string{"alice"}},
		"type": "invoice.paid", "title": "Paid", "body": "line1\nline2", "data": map[string]any{"amount": 42}})
	m := c.next("notification")
	if m.Notification.ID != id || m.Notification.Type != "invoice.paid" || m.Notification.Body != "line1\nline2" ||
		string(m.Notification.Data) != `{"amount":42}` || m.Notification.Read || m.Notification.Position != "1.0" {
		t.Fatalf("notification = %s", m.Raw)
	}
	if u := c.next("unread"); u.Count != 1 {
		t.Fatalf("unread = %+v", u)
	}
}

func TestFirstFrameAuthAndResumeSince(t *testing.T) {
	n := startNode(t)
	tok := token(t, "acme", "bob", "", time.Hour)
	ids := n.publishN(5, "acme", "bob")
	c := n.mustDial(dialOpts{})
	c.send(map[string]any{"type": "auth", "token": tok, "since": "2.0"})
	ready := c.next("ready")
	if ready.Unread != 5 || ready.Position != "2.0" {
		t.Fatalf("ready = %s", ready.Raw)
	}
	for i := 2; i < 5; i++ {
		m := c.next("notification")
		if m.Notification.ID != ids[i] || m.Notification.Position != fmt.Sprintf("%d.0", i+1) {
			t.Fatalf("replayed %d = %s", i, m.Raw)
		}
	}
	live := n.publish(toUsers("acme", "bob"))
	if m := c.next("notification"); m.Notification.ID != live || m.Notification.Position != "6.0" {
		t.Fatalf("live after replay = %s", m.Raw)
	}
}

func TestTabsStayInSyncAndWSOperations(t *testing.T) {
	n := startNode(t)
	tok := token(t, "acme", "carol", "", time.Hour)
	tab1 := n.mustDial(dialOpts{header: tok})
	tab2 := n.mustDial(dialOpts{header: tok})
	tab1.next("ready")
	tab2.next("ready")
	a := n.publish(toUsers("acme", "carol"))
	b := n.publish(toUsers("acme", "carol"))
	for _, tab := range []*wsClient{tab1, tab2} {
		for i := 0; i < 2; i++ {
			tab.next("notification")
			tab.next("unread")
		}
	}

	tab1.send(map[string]any{"type": "notification:mark-read", "id": a, "ref": "r1"})
	if ack := tab1.next("ack", "notification:error"); ack.Type != "ack" || string(ack.Ref) != `"r1"` {
		t.Fatalf("ack = %s", ack.Raw)
	}
	for _, tab := range []*wsClient{tab1, tab2} {
		if m := tab.next("notification:read"); len(m.IDs) != 1 || m.IDs[0] != a {
			t.Fatalf("read event = %s", m.Raw)
		}
		if u := tab.next("unread"); u.Count != 1 {
			t.Fatalf("unread after read = %s", u.Raw)
		}
	}

	tab2.send(map[string]any{"type": "notification:delete", "id": b, "ref": 7})
	if ack := tab2.next("ack", "notification:error"); ack.Type != "ack" || string(ack.Ref) != "7" {
		t.Fatalf("delete ack = %s", ack.Raw)
	}
	for _, tab := range []*wsClient{tab1, tab2} {
		if m := tab.next("notification:deleted"); m.ID != b {
			t.Fatalf("deleted event = %s", m.Raw)
		}
		if u := tab.next("unread"); u.Count != 0 {
			t.Fatalf("unread after delete = %s", u.Raw)
		}
	}

	tab1.send(map[string]any{"type": "notification:list", "limit": 10, "ref": "l"})
	l := tab1.next("notification:list")
	if len(l.Notifications) != 1 || !strings.Contains(string(l.Notifications[0]), a) || !strings.Contains(string(l.Notifications[0]), `"read":true`) {
		t.Fatalf("list = %s", l.Raw)
	}

	n.publish(toUsers("acme", "carol"))
	for _, tab := range []*wsClient{tab1, tab2} {
		tab.next("notification")
		tab.next("unread")
	}
	tab2.send(map[string]any{"type": "notification:mark-all-read"})
	tab2.next("ack")
	if m := tab1.next("notification:read"); !m.All {
		t.Fatalf("read-all event = %s", m.Raw)
	}
	if u := tab1.next("unread"); u.Count != 0 {
		t.Fatalf("unread after read-all = %s", u.Raw)
	}
	tab1.send(map[string]any{"type": "ping", "ref": "p"})
	if p := tab1.next("pong"); string(p.Ref) != `"p"` {
		t.Fatalf("pong = %s", p.Raw)
	}
}

func TestTenantAndRoleAudiences(t *testing.T) {
	n := startNode(t)
	admin := n.mustDial(dialOpts{header: token(t, "acme", "ann", "admin", time.Hour)})
	member := n.mustDial(dialOpts{header: token(t, "acme", "max", "member", time.Hour)})
	other := n.mustDial(dialOpts{header: token(t, "globex", "ann", "admin", time.Hour)})
	for _, c := range []*wsClient{admin, member, other} {
		c.next("ready")
	}
	all := n.publish(map[string]any{"tenant": "acme", "to": map[string]any{"tenant": true}, "type": "maint", "title": "maintenance"})
	admins := n.publish(map[string]any{"tenant": "acme", "to": map[string]any{"role": "admin"}, "type": "audit", "title": "audit"})
	last := n.publish(toUsers("acme", "max"))

	if m := admin.next("notification"); m.Notification.ID != all || m.Notification.Position != "0.1" {
		t.Fatalf("admin 1 = %s", m.Raw)
	}
	if m := admin.next("notification"); m.Notification.ID != admins || m.Notification.Position != "0.2" {
		t.Fatalf("admin 2 = %s", m.Raw)
	}
	if m := member.next("notification"); m.Notification.ID != all {
		t.Fatalf("member 1 = %s", m.Raw)
	}
	// The member never sees the admin notification, but its cursor moves past it.
	if m := member.next("notification"); m.Notification.ID != last || m.Notification.Position != "1.2" {
		t.Fatalf("member 2 = %s", m.Raw)
	}
	// A user connecting later sees tenant- and role-wide notifications too.
	late := token(t, "acme", "lou", "admin", time.Hour)
	status, body, _ := n.do("GET", "/v1/me/notifications", late, nil)
	if status != 200 || !strings.Contains(string(body), all) || !strings.Contains(string(body), admins) {
		t.Fatalf("late user list: %d %s", status, body)
	}
	status, body, _ = n.do("GET", "/v1/me/unread-count", late, nil)
	if status != 200 || strings.TrimSpace(string(body)) != `{"count":2,"unseen":2,"by_category":{}}` {
		t.Fatalf("late unread: %d %s", status, body)
	}
	// The other tenant got nothing: publish to it and see that it is the first thing it receives.
	g := n.publish(toUsers("globex", "ann"))
	if m := other.next("notification"); m.Notification.ID != g {
		t.Fatalf("globex got %s", m.Raw)
	}
}

func TestRESTInboxOperations(t *testing.T) {
	n := startNode(t)
	tok := token(t, "acme", "dora", "", time.Hour)
	ids := n.publishN(7, "acme", "dora")
	type page struct {
		Notifications []struct {
			ID   string
			Read bool
		}
		Next *string
	}
	get := func(q string) page {
		status, body, _ := n.do("GET", "/v1/me/notifications"+q, tok, nil)
		if status != 200 {
			t.Fatalf("list %s: %d %s", q, status, body)
		}
		var p page
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p1 := get("?limit=3")
	if len(p1.Notifications) != 3 || p1.Notifications[0].ID != ids[6] || p1.Next == nil {
		t.Fatalf("page 1 = %+v", p1)
	}
	p2 := get("?limit=3&before=" + *p1.Next)
	if len(p2.Notifications) != 3 || p2.Notifications[0].ID != ids[3] {
		t.Fatalf("page 2 = %+v", p2)
	}
	if status, body, _ := n.do("POST", "/v1/me/notifications/"+ids[0]+"/read", tok, nil); status != 200 || !strings.Contains(string(body), `"unread":6`) {
		t.Fatalf("read: %d %s", status, body)
	}
	if p := get("?unread=true&limit=100"); len(p.Notifications) != 6 {
		t.Fatalf("unread list = %d", len(p.Notifications))
	}
	if status, body, _ := n.do("DELETE", "/v1/me/notifications/"+ids[1], tok, nil); status != 200 || !strings.Contains(string(body), `"unread":5`) {
		t.Fatalf("delete: %d %s", status, body)
	}
	if status, _, _ := n.do("DELETE", "/v1/me/notifications/"+ids[1], tok, nil); status != 404 {
		t.Fatalf("second delete: %d", status)
	}
	if status, body, _ := n.do("POST", "/v1/me/notifications/read-all", tok, nil); status != 200 || !strings.Contains(string(body), `"unread":0`) {
		t.Fatalf("read-all: %d %s", status, body)
	}
	if p := get("?limit=100"); len(p.Notifications) != 6 {
		t.Fatalf("after delete = %d", len(p.Notifications))
	}
}

func TestAuthDeadlineClosesSilentSocket(t *testing.T) {
	n := startNode(t, func(c *Config) { c.Session.AuthTimeout = 300 * time.Millisecond })
	c := n.mustDial(dialOpts{})
	if code := c.closeStatus(); code != 4001 {
		t.Fatalf("close code = %d, want 4001", code)
	}
	testkit.Eventually(t, 0, func() bool { return n.node.ws.Active() == 0 }, "socket freed")
	if !strings.Contains(n.logs.String(), `"event":"auth_timeout"`) {
		t.Fatal("no auth_timeout audit event")
	}
}

func TestTokenExpiryClosesConnection(t *testing.T) {
	n := startNode(t, func(c *Config) { c.Auth.Leeway = -1 })
	c := n.mustDial(dialOpts{header: token(t, "acme", "eve", "", 1500*time.Millisecond)})
	c.next("ready")
	if code := c.closeStatus(); code != 4003 {
		t.Fatalf("close code = %d, want 4003", code)
	}
}

func TestInBandRefreshKeepsConnection(t *testing.T) {
	n := startNode(t, func(c *Config) { c.Auth.Leeway = -1 })
	c := n.mustDial(dialOpts{header: token(t, "acme", "fay", "", 1500*time.Millisecond)})
	c.next("ready")
	c.send(map[string]any{"type": "auth", "token": token(t, "acme", "fay", "", time.Hour)})
	c.next("ack")
	time.Sleep(2 * time.Second)
	id := n.publish(toUsers("acme", "fay"))
	if m := c.next("notification"); m.Notification.ID != id {
		t.Fatalf("after refresh = %s", m.Raw)
	}
	// A refresh with another identity is refused and closes the socket.
	c.send(map[string]any{"type": "auth", "token": token(t, "acme", "mallory", "", time.Hour)})
	if code := c.closeStatus(); code != 4001 {
		t.Fatalf("identity switch close = %d", code)
	}
}

func TestResyncWhenGapTooLarge(t *testing.T) {
	n := startNode(t, func(c *Config) { c.Hub.ReplayLimit = 10; c.Hub.ReplayPage = 4 })
	n.publishN(25, "acme", "gil")
	c := n.mustDial(dialOpts{header: token(t, "acme", "gil", "", time.Hour), since: "0.0"})
	c.next("ready")
	got := 0
	for {
		m := c.next("notification", "resync")
		if m.Type == "resync" {
			if m.Position != "25.0" {
				t.Fatalf("resync position = %s", m.Raw)
			}
			break
		}
		got++
	}
	if got < 10 || got > 13 {
		t.Fatalf("replayed %d before resync", got)
	}
	id := n.publish(toUsers("acme", "gil"))
	if m := c.next("notification"); m.Notification.ID != id || m.Notification.Position != "26.0" {
		t.Fatalf("live after resync = %s", m.Raw)
	}
}

func TestSlowConsumerIsClosedWithoutSlowingOthers(t *testing.T) {
	n := startNode(t, func(c *Config) { c.WS.WriteBufferBytes = 64 << 10 })
	slowTok := token(t, "acme", "slow", "", time.Hour)
	// The slow client never reads: a raw TCP connection doing the handshake only.
	slow := rawUpgrade(t, n, slowTok)
	defer slow.Close()
	fast := n.mustDial(dialOpts{header: token(t, "acme", "fast", "", time.Hour)})
	fast.next("ready")
	big := strings.Repeat("x", 8000)
	const batches, per = 20, 100 // 16 MB to the slow client: more than its buffer plus the kernel's
	item := map[string]any{"tenant": "acme", "to": map[string]any{"users": []string{"slow", "fast"}}, "type": "bulk", "title": "t", "body": big}
	items := make([]any, per)
	for i := range items {
		items[i] = item
	}
	for i := 0; i < batches; i++ {
		if status, body, _ := n.do("POST", "/v1/notifications/batch", n.apiKey, map[string]any{"notifications": items}); status != 201 {
			t.Fatalf("batch: %d %s", status, body)
		}
	}
	const count = batches * per
	for i := 0; i < count; i++ {
		fast.next("notification")
	}
	defer func() {
		if t.Failed() {
			for _, l := range strings.Split(n.logs.String(), "\n") {
				if strings.Contains(l, "slow") && !strings.Contains(l, "bulk") {
					t.Log(l)
				}
			}
		}
	}()
	testkit.Eventually(t, 0, func() bool {
		return strings.Contains(n.logs.String(), `"reason":"slow_consumer"`) || strings.Contains(n.logs.String(), "slow_consumer")
	}, "slow consumer closed")
}

func TestWebSocketBadInput(t *testing.T) {
	n := startNode(t, func(c *Config) { c.WS.MaxMessageBytes = 4096; c.Session.MaxInvalid = 20 })
	tok := token(t, "acme", "hal", "", time.Hour)
	cases := invalidWSMessages()
	c := n.mustDial(dialOpts{header: tok})
	c.next("ready")
	for _, tc := range cases {
		c.send(tc.send)
		m := c.next("notification:error")
		if m.Code != "invalid_message" || m.Message != "invalid message" {
			t.Fatalf("%s: %s", tc.name, m.Raw)
		}
	}
	// The connection still works after errors.
	c.send(`{"type":"ping","ref":"ok"}`)
	c.next("pong")

	t.Run("too many invalid messages", func(t *testing.T) {
		c := n.mustDial(dialOpts{header: tok})
		c.next("ready")
		for i := 0; i < 21; i++ {
			c.send("nope")
		}
		if code := c.closeStatus(); code != websocket.StatusPolicyViolation {
			t.Fatalf("close = %d", code)
		}
	})
	t.Run("oversized", func(t *testing.T) {
		c := n.mustDial(dialOpts{header: tok})
		c.next("ready")
		c.send(`{"type":"ping","ref":"` + strings.Repeat("a", 5000) + `"}`)
		if code := c.closeStatus(); code != websocket.StatusMessageTooBig {
			t.Fatalf("close = %d", code)
		}
	})
	t.Run("binary", func(t *testing.T) {
		c := n.mustDial(dialOpts{header: tok})
		c.next("ready")
		_ = c.c.Write(t.Context(), websocket.MessageBinary, []byte{1, 2, 3})
		if code := c.closeStatus(); code != websocket.StatusUnsupportedData {
			t.Fatalf("close = %d", code)
		}
	})
	t.Run("invalid utf8", func(t *testing.T) {
		c := n.mustDial(dialOpts{header: tok})
		c.next("ready")
		c.send([]byte{'"', 0xff, 0xfe, '"'})
		if code := c.closeStatus(); code != websocket.StatusInvalidFramePayloadData {
			t.Fatalf("close = %d", code)
		}
	})
	testWebSocketBadAuth(t, n, tok)
}

// invalidWSMessage is a frame TestWebSocketBadInput sends to an
// authenticated socket, which must answer invalid_message and stay open.
type invalidWSMessage struct {
	name string
	send string
}

// invalidWSMessages is TestWebSocketBadInput's table of invalid frames.
func invalidWSMessages() []invalidWSMessage {
	return []invalidWSMessage{
		{"not json", "hello"},
		{"unknown type", `{"type":"notification:explode"}`},
		{"missing type", `{"id":"x"}`},
		{"bad id", `{"type":"notification:mark-read","id":"../../etc"}`},
		{"id wrong type", `{"type":"notification:mark-read","id":42}`},
		{"unknown field", `{"type":"ping","extra":1}`},
		{"field not allowed for type", `{"type":"ping","id":"01M8D4RNA158PW21GV7ZNT0BFT"}`},
		{"too many ids", `{"type":"notification:mark-read","ids":[` + strings.TrimSuffix(strings.Repeat(`"01M8D4RNA158PW21GV7ZNT0BFT",`, 101), ",") + `]}`},
		{"too deep", `{"type":"ping","ref":[[[[[1]]]]]}`},
		{"ref object", `{"type":"ping","ref":{"a":1}}`},
		{"negative limit", `{"type":"notification:list","limit":-1}`},
		{"trailing", `{"type":"ping"} {"type":"ping"}`},
	}
}

// testWebSocketBadAuth runs TestWebSocketBadInput's subtests for bad
// authentication frames (closed with 4001) and for handshakes refused before
// the upgrade.
func testWebSocketBadAuth(t *testing.T, n *testNode, tok string) {
	t.Run("message before auth", func(t *testing.T) {
		c := n.mustDial(dialOpts{})
		c.send(`{"type":"ping"}`)
		if code := c.closeStatus(); code != 4001 {
			t.Fatalf("close = %d", code)
		}
	})
	t.Run("bad token in auth frame", func(t *testing.T) {
		c := n.mustDial(dialOpts{})
		c.send(map[string]any{"type": "auth", "token": tok + "x"})
		if code := c.closeStatus(); code != 4001 {
			t.Fatalf("close = %d", code)
		}
	})
	t.Run("bad since", func(t *testing.T) {
		c := n.mustDial(dialOpts{})
		c.send(map[string]any{"type": "auth", "token": tok, "since": "abc"})
		if code := c.closeStatus(); code != 4001 {
			t.Fatalf("close = %d", code)
		}
	})
	t.Run("bad header token is 401 before upgrade", func(t *testing.T) {
		_, resp, err := n.dial(dialOpts{header: "garbage"})
		if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("err=%v resp=%v", err, resp)
		}
	})
	t.Run("disallowed origin is 403 before upgrade", func(t *testing.T) {
		_, resp, err := n.dial(dialOpts{header: tok, origin: "https://app.example.com.evil.test"})
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("err=%v resp=%v", err, resp)
		}
		c, _, err := n.dial(dialOpts{header: tok, origin: "https://app.example.com"})
		if err != nil {
			t.Fatalf("allowed origin: %v", err)
		}
		c.next("ready")
	})
}

func TestUnreadCountsBroadcastsAndNamedTogether(t *testing.T) {
	n := startNode(t)
	c := n.mustDial(dialOpts{header: token(t, "acme", "uma", "", time.Hour)})
	c.next("ready")
	n.publish(map[string]any{"tenant": "acme", "to": map[string]any{"tenant": true}, "type": "x", "title": "all"})
	c.next("notification")
	if u := c.next("unread"); u.Count != 1 {
		t.Fatalf("after broadcast: %s", u.Raw)
	}
	n.publish(toUsers("acme", "uma"))
	c.next("notification")
	if u := c.next("unread"); u.Count != 2 {
		t.Fatalf("after named: %s", u.Raw)
	}
	status, body, _ := n.do("GET", "/v1/me/unread-count", token(t, "acme", "uma", "", time.Hour), nil)
	if status != 200 || strings.TrimSpace(string(body)) != `{"count":2,"unseen":2,"by_category":{}}` {
		t.Fatalf("REST unread: %s", body)
	}
}

func TestSinceAheadOfTheStreamIsAResync(t *testing.T) {
	n := startNode(t)
	n.publish(toUsers("acme", "vic"))
	c := n.mustDial(dialOpts{header: token(t, "acme", "vic", "", time.Hour), since: "50.50"})
	c.next("ready")
	if m := c.next("resync"); m.Position != "1.0" {
		t.Fatalf("resync = %s", m.Raw)
	}
	id := n.publish(toUsers("acme", "vic"))
	if m := c.next("notification"); m.Notification.ID != id || m.Notification.Position != "2.0" {
		t.Fatalf("live after resync = %s", m.Raw)
	}
}

func TestSilentHeaderAuthSocketIsDropped(t *testing.T) {
	n := startNode(t, func(c *Config) { c.WS.PingInterval = 200 * time.Millisecond; c.WS.PongTimeout = 300 * time.Millisecond })
	// A raw socket never answers pings (nor reads): it must be dropped.
	raw := rawUpgrade(t, n, token(t, "acme", "ghost", "", time.Hour))
	defer raw.Close()
	testkit.Eventually(t, 0, func() bool { return n.node.ws.Active() == 0 }, "silent socket dropped")
	testkit.Eventually(t, 0, func() bool { return strings.Contains(n.logs.String(), `"reason":"ping_timeout"`) }, "ping_timeout logged")
	// A real client answers pings and stays.
	c := n.mustDial(dialOpts{header: token(t, "acme", "alive", "", time.Hour)})
	c.next("ready")
	time.Sleep(1200 * time.Millisecond)
	c.send(`{"type":"ping"}`)
	c.next("pong")
}

func TestQuerySinceWithFirstFrameAuth(t *testing.T) {
	n := startNode(t)
	n.publishN(3, "acme", "wes")
	c := n.mustDial(dialOpts{since: "2.0"})
	c.send(map[string]any{"type": "auth", "token": token(t, "acme", "wes", "", time.Hour)})
	if r := c.next("ready"); r.Position != "2.0" {
		t.Fatalf("ready = %s", r.Raw)
	}
	if m := c.next("notification"); m.Notification.Position != "3.0" {
		t.Fatalf("replayed = %s", m.Raw)
	}
}

// TestExpiryReachesLiveClients: when the sweeper removes expired
// notifications, connected clients are told (a deleted frame marked
// expired per notification they could see) and get their new unread
// count, on WebSocket and SSE alike; a client of another role hears
// nothing of an admin broadcast.
func TestExpiryReachesLiveClients(t *testing.T) {
	n := startNode(t, func(c *Config) { c.SweepInterval = 100 * time.Millisecond })
	alice := n.mustDial(dialOpts{header: token(t, "acme", "alice", "admin", time.Hour)})
	alice.next("ready")
	bob := n.mustDial(dialOpts{header: token(t, "acme", "bob", "member", time.Hour)})
	bob.next("ready")
	stream := n.mustStream(streamOpts{bearer: token(t, "acme", "alice", "admin", time.Hour)})
	stream.next("ready")

	soon := time.Now().Add(1500 * time.Millisecond).UTC().Format(time.RFC3339Nano)
	mine := n.publish(map[string]any{"tenant": "acme", "to": map[string]any{"users": []string{"alice"}},
		"type": "t", "title": "yours", "expires_at": soon})
	admins := n.publish(map[string]any{"tenant": "acme", "to": map[string]any{"role": "admin"},
		"type": "t", "title": "admins", "expires_at": soon})
	keep := n.publish(map[string]any{"tenant": "acme", "to": map[string]any{"users": []string{"alice"}},
		"type": "t", "title": "stays"})
	var u msg
	for range 3 {
		alice.next("notification")
		u = alice.next("unread")
	}
	if u.Count != 3 {
		t.Fatalf("unread before expiry: %d", u.Count)
	}

	var gone []string
	for range 2 {
		m := alice.next("notification:deleted")
		if !strings.Contains(m.Raw, `"expired":true`) {
			t.Fatalf("deleted frame not marked expired: %s", m.Raw)
		}
		gone = append(gone, m.ID)
	}
	slices.Sort(gone)
	want := []string{mine, admins}
	slices.Sort(want)
	if !slices.Equal(gone, want) {
		t.Fatalf("expired %v, want %v", gone, want)
	}
	for u = alice.next("unread"); u.Count != 1; u = alice.next("unread") {
		if u.Count < 1 {
			t.Fatalf("unread after expiry: %d", u.Count)
		}
	}
	for range 2 {
		if ev := stream.next("deleted"); !strings.Contains(ev.Data, `"expired":true`) {
			t.Fatalf("SSE deleted event: %+v", ev)
		}
	}
	if status, body, _ := n.do("GET", "/v1/me/notifications", token(t, "acme", "alice", "admin", time.Hour), nil); status != 200 ||
		!strings.Contains(string(body), keep) || strings.Contains(string(body), mine) {
		t.Fatalf("inbox after expiry: %d %s", status, body)
	}
	// bob (member) saw neither notification and hears of neither expiry.
	bob.send(`{"type":"ping"}`)
	if m := bob.next(); m.Type != "pong" {
		t.Fatalf("bob got %s", m.Raw)
	}
}

// TestExpiryReachesClientsOnOtherNodes: with PostgreSQL and Redis, the
// node whose sweeper removes a notification tells every node's clients.
func TestExpiryReachesClientsOnOtherNodes(t *testing.T) {
	a, b := twoSharedNodes(t, func(c *Config) { c.SweepInterval = 100 * time.Millisecond })
	tok := token(t, "acme", "carol", "", time.Hour)
	onA := a.mustDial(dialOpts{header: tok})
	onA.next("ready")
	onB := b.mustDial(dialOpts{header: tok})
	onB.next("ready")
	id := a.publish(map[string]any{"tenant": "acme", "to": map[string]any{"users": []string{"carol"}}, "type": "t",
		"title": "brief", "expires_at": time.Now().Add(time.Second).UTC().Format(time.RFC3339Nano)})
	for _, c := range []*wsClient{onA, onB} {
		c.next("notification")
		if m := c.next("notification:deleted"); m.ID != id || !strings.Contains(m.Raw, `"expired":true`) {
			t.Fatalf("deleted = %s", m.Raw)
		}
		for u := c.next("unread"); u.Count != 0; u = c.next("unread") {
		}
	}
}
