package node

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/limit"
	"github.com/heraldhq/herald/internal/notification"
	"github.com/heraldhq/herald/internal/testkit"
)

// One protocol suite: every case below runs on every transport through its
// real wire (protocol_clients_test.go), WebSocket, Socket.IO and SSE with
// the REST user API, so that a request added once is proven everywhere. A
// case is skipped on a transport only where it cannot apply, and the table
// says why.

type protoCase struct {
	name string
	// skip: transport → why the case cannot apply there.
	skip map[string]string
	// config, when set, gives the case a node of its own so configured.
	config func(*Config)
	run    func(t *testing.T, e *protoEnv)
}

const (
	protoTenant = "acme"
	protoOther  = "globex"
	unknownID   = "01J00000000000000000000000" // well-formed, never issued
)

// Reasons a case cannot apply to the SSE + REST pair.
const (
	noRESTConn    = "SSE is receive-only and REST calls are independent: no connection carries requests"
	noRESTRefresh = "no in-band refresh: the stream is receive-only and every REST call carries its own token"
	noRESTPing    = "ping has no REST form (HTTP clients check liveness with GET /livez)"
	noRESTIDs     = "the REST API marks one id per call (POST /v1/me/notifications/{id}/read): no ids list"
	noRESTArgs    = "the REST form takes no arguments beyond the path: there is no field to misplace"
	noRESTQuery   = "the REST list reads before/limit/unread from its query; other query parameters are ignored, as HTTP APIs do"
	noRESTBody    = "REST requests carry no JSON body to break"
	noRESTName    = "REST has no request names: an unknown /v1/me/ path is answered by the router (a plain-text 405), not by the user API"
)

func protoConfig(c *Config) { c.Limits.HandshakeRate.Per = -1 } // many first-frame and CONNECT auths from one IP

func TestProtocol(t *testing.T) {
	cases := protoCases()
	for _, tr := range protoTransports {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			shared := startNode(t, protoConfig)
			for i, pc := range cases {
				t.Run(pc.name, func(t *testing.T) {
					if why := pc.skip[tr.name]; why != "" {
						t.Skip(why)
					}
					t.Parallel()
					var n *testNode
					if pc.config != nil {
						n = startNode(t, protoConfig, pc.config)
					} else {
						bound := *shared // the shared node, with failures and cleanups on this test
						bound.t = t
						n = &bound
					}
					e := &protoEnv{t: t, n: n, tr: tr, suffix: fmt.Sprintf("-%d", i)}
					pc.run(t, e)
				})
			}
		})
	}
}

func protoCases() []protoCase {
	only := func(reason string) map[string]string { return map[string]string{trSSERest: reason} }
	cases := []protoCase{
		{name: "list", run: protoList},
		{name: "unread-count", run: protoUnreadCount},
		{name: "mark-read", run: protoMarkRead},
		{name: "mark-read ids", skip: only(noRESTIDs), run: protoMarkReadIDs},
		{name: "mark-all-read", run: protoMarkAllRead},
		{name: "delete", run: protoDelete},
		{name: "unknown id", run: protoUnknownID},
		{name: "another user's id", run: protoOtherUsersID},
		{name: "cross-tenant", run: protoCrossTenant},
		{name: "ping", skip: only(noRESTPing), run: protoPing},
		{name: "refresh", skip: only(noRESTRefresh), run: protoRefresh},
		{name: "refresh as another identity", skip: only(noRESTRefresh), run: protoRefreshOther},
		{name: "unauthorized", run: protoUnauthorized},
		{name: "rate limited", config: func(c *Config) { c.Limits.EventRate = limit.Rate{Per: 0.001, Burst: 3} },
			run: protoRateLimited},
		{name: "malformed JSON", skip: only(noRESTBody), run: protoMalformedJSON},
		{name: "duplicate keys", skip: only(noRESTBody), run: protoDuplicateKeys},
		{name: "invalid messages close", skip: only(noRESTConn), run: protoInvalidCloses},
	}
	cases = append(cases, inboxProtoCases()...)
	for _, b := range badRequests() {
		pc := protoCase{name: "bad/" + b.name, run: func(t *testing.T, e *protoEnv) { protoBad(t, e, b) }}
		if b.noREST != "" {
			pc.skip = only(b.noREST)
		}
		cases = append(cases, pc)
	}
	return cases
}

// badRequest is a request every transport must refuse with a clear error,
// losing nothing: invalid_message on the live transports, and on REST what
// its HTTP rules give.
type badRequest struct {
	name    string
	request string
	args    func(id, tok string) map[string]any // id: the user's notification; tok: a valid token of the user
	rest    string                              // the REST API's code
	noREST  string                              // why it has no REST form
}

func badRequests() []badRequest {
	ids101 := func(id, _ string) map[string]any {
		ids := make([]any, 101)
		for i := range ids {
			ids[i] = id
		}
		return map[string]any{"ids": ids}
	}
	with := func(kv ...any) func(id, tok string) map[string]any {
		return func(id, tok string) map[string]any {
			m := map[string]any{}
			for i := 0; i+1 < len(kv); i += 2 {
				v := kv[i+1]
				switch v {
				case "$id":
					v = id
				case "$tok":
					v = tok
				}
				m[kv[i].(string)] = v
			}
			return m
		}
	}
	const noAuth = "REST has no auth request: every call carries its own token"
	bad := []badRequest{
		{name: "auth token missing", request: "auth", args: with(), noREST: noAuth},
		{name: "auth token over 8 KiB", request: "auth", args: with("token", strings.Repeat("a", 8<<10+1)), noREST: noAuth},
		{name: "auth malformed since", request: "auth", args: with("token", "$tok", "since", "x.y"), noREST: noAuth},
		{name: "auth misplaced id", request: "auth", args: with("token", "$tok", "id", "$id"), noREST: noAuth},
		{name: "list limit not a number", request: "notification:list", args: with("limit", "ten"), rest: "invalid_request"},
		{name: "list negative limit", request: "notification:list", args: with("limit", -1), rest: "invalid_request"},
		{name: "list malformed before", request: "notification:list", args: with("before", "bad"), rest: "invalid_request"},
		{name: "list unread not a boolean", request: "notification:list", args: with("unread", "yes"), rest: "invalid_request"},
		{name: "list misplaced id", request: "notification:list", args: with("id", "$id"), noREST: noRESTQuery},
		{name: "list unknown field", request: "notification:list", args: with("foo", 1), noREST: noRESTQuery},
		// REST: a malformed id names no notification, so its path is 404 by design.
		{name: "mark-read malformed id", request: "notification:mark-read", args: with("id", "bad"), rest: "not_found"},
		{name: "mark-read lower-case id", request: "notification:mark-read", args: func(id, _ string) map[string]any {
			return map[string]any{"id": strings.ToLower(id)}
		}, rest: "not_found"},
		{name: "mark-read id not a string", request: "notification:mark-read", args: with("id", 42), noREST: noRESTArgs},
		{name: "mark-read no id", request: "notification:mark-read", args: with(), noREST: noRESTArgs},
		{name: "mark-read 101 ids", request: "notification:mark-read", args: ids101, noREST: noRESTIDs},
		{name: "mark-read malformed id in ids", request: "notification:mark-read", args: func(id, _ string) map[string]any {
			return map[string]any{"ids": []any{id, "bad"}}
		}, noREST: noRESTIDs},
		{name: "mark-read ids not a list", request: "notification:mark-read", args: with("ids", "$id"), noREST: noRESTIDs},
		{name: "mark-read misplaced limit", request: "notification:mark-read", args: with("id", "$id", "limit", 1), noREST: noRESTArgs},
		{name: "mark-all-read misplaced id", request: "notification:mark-all-read", args: with("id", "$id"), noREST: noRESTArgs},
		{name: "delete malformed id", request: "notification:delete", args: with("id", "bad"), rest: "not_found"},
		{name: "delete no id", request: "notification:delete", args: with(), noREST: noRESTArgs},
		{name: "delete misplaced ids", request: "notification:delete", args: func(id, _ string) map[string]any {
			return map[string]any{"ids": []any{id}}
		}, noREST: noRESTArgs},
		{name: "unread-count misplaced unread", request: "notification:unread-count", args: with("unread", true), noREST: noRESTArgs},
		{name: "ping misplaced id", request: "ping", args: with("id", "$id"), noREST: noRESTPing},
		{name: "unknown request", request: "notification:frobnicate", args: with(), noREST: noRESTName},
		{name: "request name missing", request: "", args: with(), noREST: noRESTName},
	}
	return append(bad, inboxBadRequests(with)...)
}

// protoEnv is what a case runs with: a node, the transport, and users of
// its own (suffix keeps the cases sharing a node apart).
type protoEnv struct {
	t      *testing.T
	n      *testNode
	tr     protoTransport
	suffix string
}

func (e *protoEnv) user(name string) string { return name + e.suffix }

func (e *protoEnv) token(tenant, user string) string { return token(e.t, tenant, user, "", time.Hour) }

// open connects user of tenant.
func (e *protoEnv) open(tenant, user string) protoClient {
	e.t.Helper()
	c, r := e.tr.connect(e.n, e.token(tenant, user))
	if r != nil {
		e.t.Fatalf("%s: %s@%s refused: %+v", e.tr.name, user, tenant, *r)
	}
	return c
}

// publish publishes k notifications to user and returns their ids, oldest first.
func (e *protoEnv) publish(tenant, user string, k int) []string {
	e.t.Helper()
	ids := make([]string, k)
	for i := range ids {
		ids[i] = e.n.publish(toUsers(tenant, user))
	}
	return ids
}

func (e *protoEnv) ok(rep protoReply, what string) protoReply {
	e.t.Helper()
	e.note(rep)
	if rep.closed != nil || !rep.ok {
		e.t.Fatalf("%s: %s: want success, got %s", e.tr.name, what, rep)
	}
	return rep
}

// fails checks an error reply: its code and its correlation id.
func (e *protoEnv) fails(rep protoReply, code, what string) {
	e.t.Helper()
	e.note(rep)
	if rep.closed != nil || rep.ok || rep.code != code {
		e.t.Fatalf("%s: %s: want error %s, got %s", e.tr.name, what, code, rep)
	}
	if !corrIDPattern.MatchString(rep.corrID) {
		e.t.Errorf("%s: %s: correlation_id %q, want 16 hex digits: %s", e.tr.name, what, rep.corrID, rep)
	}
}

// note fails on a reply that departs from the documented protocol.
func (e *protoEnv) note(rep protoReply) {
	e.t.Helper()
	if rep.deviation != "" {
		e.t.Errorf("%s", rep.deviation)
	}
}

// isClosed checks a close with reason (and, where the transport has
// codes, code).
func (e *protoEnv) isClosed(ci closeInfo, reason string, code int, what string) {
	e.t.Helper()
	if ci.reason != reason || ci.code != 0 && ci.code != code {
		e.t.Fatalf("%s: %s: closed with %d %q, want %d %q", e.tr.name, what, ci.code, ci.reason, code, reason)
	}
}

func items(t testing.TB, rep protoReply) []map[string]any {
	t.Helper()
	raw, ok := rep.fields["notifications"].([]any)
	if !ok {
		t.Fatalf("no notifications in %s", rep)
	}
	out := make([]map[string]any, len(raw))
	for i, it := range raw {
		out[i], _ = it.(map[string]any)
	}
	return out
}

func itemIDs(t testing.TB, rep protoReply) []string {
	t.Helper()
	var ids []string
	for _, it := range items(t, rep) {
		ids = append(ids, str(it["id"]))
	}
	return ids
}

func strs(v any) []string {
	l, _ := v.([]any)
	out := []string{}
	for _, x := range l {
		out = append(out, str(x))
	}
	return out
}

// inbox lists everything c's user sees: id → read.
func (e *protoEnv) inbox(c protoClient) map[string]bool {
	e.t.Helper()
	rep := e.ok(c.request("notification:list", map[string]any{"limit": 200}), "list all")
	out := map[string]bool{}
	for _, it := range items(e.t, rep) {
		out[str(it["id"])] = it["read"] == true
	}
	return out
}

// keeps checks that nothing was lost: each id is still listed for c's
// user, unread.
func (e *protoEnv) keeps(c protoClient, ids ...string) {
	e.t.Helper()
	in := e.inbox(c)
	for _, id := range ids {
		if read, ok := in[id]; !ok || read {
			e.t.Errorf("%s: %s lost: listed %v, read %v", e.tr.name, id, ok, read)
		}
	}
}

func (e *protoEnv) unreadCount(c protoClient) int {
	e.t.Helper()
	n, ok := e.ok(c.request("notification:unread-count", nil), "unread-count").fields["count"].(float64)
	if !ok {
		e.t.Fatalf("%s: unread-count without a count", e.tr.name)
	}
	return int(n)
}

// waitUnread consumes c's unread events up to one with count n.
func (e *protoEnv) waitUnread(c protoClient, n int) {
	e.t.Helper()
	for {
		if got, _ := c.nextEvent("unread")["count"].(float64); int(got) == n {
			return
		}
	}
}

// twoConns opens two connections of one fresh user, publishes k
// notifications to it and waits until both have them.
func (e *protoEnv) twoConns(k int) (a, b protoClient, ids []string) {
	e.t.Helper()
	u := e.user("alice")
	a, b = e.open(protoTenant, u), e.open(protoTenant, u)
	ids = e.publish(protoTenant, u, k)
	e.waitUnread(a, k)
	e.waitUnread(b, k)
	return a, b, ids
}

// --- the cases ---

func protoList(t *testing.T, e *protoEnv) {
	u := e.user("alice")
	c := e.open(protoTenant, u)
	ids := e.publish(protoTenant, u, 3)
	e.publish(protoTenant, e.user("bob"), 1) // another user's
	e.publish(protoOther, u, 1)              // the same name in another tenant
	rep := e.ok(c.request("notification:list", nil), "list")
	if got, want := itemIDs(t, rep), []string{ids[2], ids[1], ids[0]}; !slices.Equal(got, want) {
		t.Fatalf("%s: list = %v, want newest first %v", e.tr.name, got, want)
	}
	for _, it := range items(t, rep) {
		if it["read"] != false || it["position"] != nil || it["title"] != "hello" {
			t.Errorf("%s: list item %v: want unread, titled, no position", e.tr.name, it)
		}
	}
	if rep.fields["next"] != nil {
		t.Errorf("%s: last page with next %v", e.tr.name, rep.fields["next"])
	}
	page := e.ok(c.request("notification:list", map[string]any{"limit": 2}), "list limit 2")
	next := str(page.fields["next"])
	if got := itemIDs(t, page); !slices.Equal(got, []string{ids[2], ids[1]}) || next == "" {
		t.Fatalf("%s: first page %v next %q", e.tr.name, got, next)
	}
	page = e.ok(c.request("notification:list", map[string]any{"before": next, "limit": 2}), "list before")
	if got := itemIDs(t, page); !slices.Equal(got, []string{ids[0]}) || page.fields["next"] != nil {
		t.Fatalf("%s: second page %s", e.tr.name, page)
	}
	if capped := e.ok(c.request("notification:list", map[string]any{"limit": 500}), "list limit 500"); len(items(t, capped)) != 3 {
		t.Fatalf("%s: a limit over the maximum is capped, not refused: %s", e.tr.name, capped)
	}
	e.ok(c.request("notification:mark-read", map[string]any{"id": ids[1]}), "mark-read")
	unread := e.ok(c.request("notification:list", map[string]any{"unread": true}), "list unread")
	if got := itemIDs(t, unread); !slices.Equal(got, []string{ids[2], ids[0]}) {
		t.Fatalf("%s: unread list %v", e.tr.name, got)
	}
}

func protoUnreadCount(t *testing.T, e *protoEnv) {
	u := e.user("alice")
	c := e.open(protoTenant, u)
	if n := e.unreadCount(c); n != 0 {
		t.Fatalf("%s: fresh user's unread count %d", e.tr.name, n)
	}
	ids := e.publish(protoTenant, u, 2)
	e.publish(protoTenant, e.user("bob"), 1)
	e.publish(protoOther, u, 1)
	if n := e.unreadCount(c); n != 2 {
		t.Fatalf("%s: unread count %d, want 2", e.tr.name, n)
	}
	e.ok(c.request("notification:mark-read", map[string]any{"id": ids[0]}), "mark-read")
	if n := e.unreadCount(c); n != 1 {
		t.Fatalf("%s: unread count after a read %d, want 1", e.tr.name, n)
	}
}

func protoMarkRead(t *testing.T, e *protoEnv) {
	a, b, ids := e.twoConns(2)
	e.ok(a.request("notification:mark-read", map[string]any{"id": ids[0]}), "mark-read")
	for _, c := range []protoClient{a, b} { // the requester and the user's other connection
		if got := strs(c.nextEvent("notification:read")["ids"]); !slices.Equal(got, []string{ids[0]}) {
			t.Fatalf("%s: notification:read ids %v, want [%s]", e.tr.name, got, ids[0])
		}
		e.waitUnread(c, 1)
	}
	if in := e.inbox(b); len(in) != 2 || !in[ids[0]] || in[ids[1]] {
		t.Fatalf("%s: inbox after mark-read %v", e.tr.name, in)
	}
	// Marking it again changes nothing and still succeeds.
	e.ok(a.request("notification:mark-read", map[string]any{"id": ids[0]}), "mark-read again")
	if n := e.unreadCount(b); n != 1 {
		t.Fatalf("%s: unread count %d, want 1", e.tr.name, n)
	}
}

func protoMarkReadIDs(t *testing.T, e *protoEnv) {
	a, b, ids := e.twoConns(3)
	e.ok(a.request("notification:mark-read", map[string]any{"ids": []string{ids[0]}, "id": ids[1]}), "mark-read ids+id")
	for _, c := range []protoClient{a, b} {
		got := strs(c.nextEvent("notification:read")["ids"])
		slices.Sort(got)
		if want := []string{ids[0], ids[1]}; !slices.Equal(got, want) {
			t.Fatalf("%s: notification:read ids %v, want %v", e.tr.name, got, want)
		}
		e.waitUnread(c, 1)
	}
	// An unknown id beside a known one: not_found only when none exists.
	e.ok(a.request("notification:mark-read", map[string]any{"ids": []string{ids[2], unknownID}}), "mark-read known+unknown")
	e.waitUnread(b, 0)
	e.fails(a.request("notification:mark-read", map[string]any{"ids": []string{unknownID}}), "not_found", "mark-read unknown ids")
}

func protoMarkAllRead(t *testing.T, e *protoEnv) {
	a, b, ids := e.twoConns(2)
	e.ok(a.request("notification:mark-all-read", nil), "mark-all-read")
	for _, c := range []protoClient{a, b} {
		ev := c.nextEvent("notification:read")
		if ev["all"] != true || len(strs(ev["ids"])) != 0 {
			t.Fatalf("%s: notification:read %v, want all", e.tr.name, ev)
		}
		e.waitUnread(c, 0)
	}
	if in := e.inbox(b); len(in) != 2 || !in[ids[0]] || !in[ids[1]] {
		t.Fatalf("%s: inbox after mark-all-read %v", e.tr.name, in)
	}
}

func protoDelete(t *testing.T, e *protoEnv) {
	a, b, ids := e.twoConns(2)
	e.ok(a.request("notification:delete", map[string]any{"id": ids[0]}), "delete")
	for _, c := range []protoClient{a, b} {
		if ev := c.nextEvent("notification:deleted"); str(ev["id"]) != ids[0] || ev["expired"] != nil {
			t.Fatalf("%s: notification:deleted %v, want id %s", e.tr.name, ev, ids[0])
		}
		e.waitUnread(c, 1)
	}
	if in := e.inbox(b); len(in) != 1 || in[ids[1]] {
		t.Fatalf("%s: inbox after delete %v, want only %s unread", e.tr.name, in, ids[1])
	}
	e.fails(a.request("notification:delete", map[string]any{"id": ids[0]}), "not_found", "delete again")
}

func protoUnknownID(t *testing.T, e *protoEnv) {
	u := e.user("alice")
	c := e.open(protoTenant, u)
	id := e.publish(protoTenant, u, 1)[0]
	e.fails(c.request("notification:mark-read", map[string]any{"id": unknownID}), "not_found", "mark-read unknown id")
	e.fails(c.request("notification:delete", map[string]any{"id": unknownID}), "not_found", "delete unknown id")
	e.keeps(c, id)
}

func protoOtherUsersID(t *testing.T, e *protoEnv) {
	alice, bob := e.open(protoTenant, e.user("alice")), e.open(protoTenant, e.user("bob"))
	id := e.publish(protoTenant, e.user("bob"), 1)[0]
	e.fails(alice.request("notification:mark-read", map[string]any{"id": id}), "not_found", "mark-read bob's id")
	e.fails(alice.request("notification:delete", map[string]any{"id": id}), "not_found", "delete bob's id")
	e.keeps(bob, id)
	if n := e.unreadCount(bob); n != 1 {
		t.Fatalf("%s: bob's unread count %d, want 1", e.tr.name, n)
	}
}

// protoCrossTenant: the same user name in another tenant cannot touch the
// first tenant's notification, and the first tenant loses nothing.
func protoCrossTenant(t *testing.T, e *protoEnv) {
	u := e.user("alice")
	a := e.open(protoTenant, u)
	other := e.open(protoOther, u)
	id := e.publish(protoTenant, u, 1)[0]
	e.waitUnread(a, 1)
	e.fails(other.request("notification:mark-read", map[string]any{"id": id}), "not_found", "mark-read across tenants")
	e.fails(other.request("notification:delete", map[string]any{"id": id}), "not_found", "delete across tenants")
	e.ok(other.request("notification:mark-all-read", nil), "mark-all-read in the other tenant")
	if in := e.inbox(other); len(in) != 0 {
		t.Fatalf("%s: the other tenant's user lists %v", e.tr.name, in)
	}
	e.keeps(a, id)
	if n := e.unreadCount(a); n != 1 {
		t.Fatalf("%s: unread count %d after the other tenant's requests, want 1", e.tr.name, n)
	}
}

func protoPing(t *testing.T, e *protoEnv) {
	c := e.open(protoTenant, e.user("alice"))
	rep := e.ok(c.request("ping", nil), "ping") // ws: the client checks the reply is a pong
	if len(rep.fields) != 0 {
		t.Errorf("%s: pong with fields %v", e.tr.name, rep.fields)
	}
}

func protoRefresh(t *testing.T, e *protoEnv) {
	u := e.user("alice")
	c := e.open(protoTenant, u)
	fresh := token(t, protoTenant, u, "admin", 2*time.Hour) // the role may change
	e.ok(c.request("auth", map[string]any{"token": fresh}), "refresh")
	e.ok(c.request("auth", map[string]any{"token": fresh, "since": "1.0"}), "refresh with since (ignored)")
	id := e.publish(protoTenant, u, 1)[0]
	if got := str(c.nextEvent("notification")["id"]); got != id {
		t.Fatalf("%s: after refresh got notification %s, want %s", e.tr.name, got, id)
	}
	e.keeps(c, id)
}

func protoRefreshOther(t *testing.T, e *protoEnv) {
	u := e.user("alice")
	id := e.publish(protoTenant, u, 1)[0]
	for name, tok := range map[string]string{
		"another user":                  e.token(protoTenant, e.user("mallory")),
		"the same user, another tenant": e.token(protoOther, u),
		"garbage":                       "not-a-jwt",
		"expired":                       token(t, protoTenant, u, "", -time.Hour),
	} {
		c := e.open(protoTenant, u)
		rep := c.request("auth", map[string]any{"token": tok})
		if rep.closed == nil {
			t.Fatalf("%s: refresh with %s: want the connection closed, got %s", e.tr.name, name, rep)
		}
		e.isClosed(*rep.closed, "unauthorized", 4001, "refresh with "+name)
	}
	e.keeps(e.open(protoTenant, u), id)
}

func protoUnauthorized(t *testing.T, e *protoEnv) {
	u := e.user("alice")
	id := e.publish(protoTenant, u, 1)[0]
	claims := map[string]any{"sub": u, "tenant_id": protoTenant, "exp": time.Now().Add(time.Hour).Unix()}
	for name, tok := range map[string]string{
		"garbage":   "not-a-jwt",
		"expired":   token(t, protoTenant, u, "", -time.Hour),
		"wrong key": testkit.Token(t, []byte("another-secret-another-secret-0123456789"), claims),
		"missing":   "",
	} {
		rs := e.tr.refusals(e.n, tok)
		if len(rs) == 0 {
			t.Fatalf("%s: %s token: no refusal", e.tr.name, name)
		}
		for _, r := range rs {
			if r.code != "unauthorized" || r.status != 0 && r.status != 401 && r.status != 4001 {
				t.Errorf("%s: %s token, %s: refused with %d %q, want unauthorized (401/4001)", e.tr.name, name, r.how, r.status, r.code)
			}
			if r.wantCorr && !corrIDPattern.MatchString(r.corrID) {
				t.Errorf("%s: %s token, %s: correlation_id %q", e.tr.name, name, r.how, r.corrID)
			}
		}
	}
	e.keeps(e.open(protoTenant, u), id)
}

// protoRateLimited runs on a node whose users may make 3 requests (and
// get no more for ~17 minutes). The in-band refresh counts as one.
func protoRateLimited(t *testing.T, e *protoEnv) {
	u := e.user("alice")
	tok := e.token(protoTenant, u)
	c := e.open(protoTenant, u)
	id := e.publish(protoTenant, u, 1)[0]
	spent := 0
	if e.tr.refresh {
		e.ok(c.request("auth", map[string]any{"token": tok}), "refresh")
		spent++
	}
	for ; spent < 3; spent++ {
		e.ok(c.request("notification:unread-count", nil), fmt.Sprintf("request %d", spent+1))
	}
	e.fails(c.request("notification:mark-read", map[string]any{"id": id}), "rate_limited", "request 4")
	// The bucket is the user's, across transports: the REST API refuses too.
	status, body, _ := e.n.do("GET", "/v1/me/unread-count", tok, nil)
	if r := httpRefusal("REST", status, body); status != 429 || r.code != "rate_limited" || !corrIDPattern.MatchString(r.corrID) {
		t.Errorf("%s: REST after the burst: %d %s", e.tr.name, status, body)
	}
	// Loses nothing: the refused mark-read did not run.
	n, err := e.n.node.store.UnreadCount(t.Context(), notification.Recipient{Tenant: protoTenant, User: u})
	if err != nil || n != 1 {
		t.Fatalf("%s: stored unread count %d (%v) after a refused mark-read, want 1", e.tr.name, n, err)
	}
}

// protoMalformedJSON: an argument that is not JSON. On the WebSocket it is
// an invalid message (no ref: it could not be read); Socket.IO, as
// socket.io-parser does, treats a packet that is not JSON as a protocol
// error and closes the transport (1002).
// protoDuplicateKeys: a request whose JSON has a name twice is refused
// (invalid_message) and does nothing, whichever copy a parser would keep:
// every request type that takes arguments, the duplicate at the top level
// and nested. On the WebSocket the request's own "type" twice too.
func protoDuplicateKeys(t *testing.T, e *protoEnv) {
	u := e.user("dora")
	c := e.open(protoTenant, u)
	id := e.publish(protoTenant, u, 1)[0]
	q := `"` + id + `"`
	cases := []struct{ name, args string }{
		{"notification:list", `{"limit":5,"limit":5}`},
		{"notification:list", `{"limit":5,"unread":true,"\u006cimit":5}`}, // an escaped copy
		{"notification:mark-read", `{"id":` + q + `,"id":` + q + `}`},
		{"notification:mark-read", `{"ids":[` + q + `],"ids":[` + q + `]}`},
		{"notification:delete", `{"id":` + q + `,"id":` + q + `}`},
		{"auth", `{"token":"` + e.token(protoTenant, u) + `","token":"x"}`},
	}
	if e.tr.name == trWS {
		for _, name := range []string{"notification:mark-all-read", "notification:unread-count", "ping", "notification:delete"} {
			cases = append(cases, struct{ name, args string }{name, `{"type":"` + name + `"}`})
		}
	}
	for _, tc := range cases {
		if tc.name == "auth" && !e.tr.refresh {
			continue
		}
		e.fails(c.requestRaw(tc.name, tc.args), "invalid_message", tc.name+" with a duplicate key "+tc.args)
	}
	e.keeps(c, id)
	if n := e.unreadCount(c); n != 1 {
		t.Fatalf("%s: unread %d after refused requests, want 1", e.tr.name, n)
	}
}

func protoMalformedJSON(t *testing.T, e *protoEnv) {
	u := e.user("alice")
	c := e.open(protoTenant, u)
	id := e.publish(protoTenant, u, 1)[0]
	rep := c.requestRaw("notification:mark-read", `{"id":"`+id+`",}`)
	if e.tr.name == trSIO {
		if rep.closed == nil {
			t.Fatalf("%s: malformed packet answered %s, want a protocol_error close", e.tr.name, rep)
		}
		e.isClosed(*rep.closed, "protocol_error", 1002, "malformed packet")
		c = e.open(protoTenant, u)
	} else {
		e.fails(rep, "invalid_message", "malformed JSON")
	}
	e.keeps(c, id)
}

// protoInvalidCloses: more than 10 invalid messages close the connection
// (policy_violation), each answered first.
func protoInvalidCloses(t *testing.T, e *protoEnv) {
	u := e.user("alice")
	c := e.open(protoTenant, u)
	id := e.publish(protoTenant, u, 1)[0]
	for i := 1; i <= 11; i++ {
		e.fails(c.request("notification:frobnicate", nil), "invalid_message", fmt.Sprintf("invalid message %d", i))
	}
	e.isClosed(c.closed(), "policy_violation", 1008, "after 11 invalid messages")
	e.keeps(e.open(protoTenant, u), id)
}

func protoBad(t *testing.T, e *protoEnv, b badRequest) {
	u := e.user("alice")
	c := e.open(protoTenant, u)
	id := e.publish(protoTenant, u, 1)[0]
	want := "invalid_message"
	if e.tr.name == trSSERest {
		want = b.rest
	}
	e.fails(c.request(b.request, b.args(id, e.token(protoTenant, u))), want, b.name)
	e.keeps(c, id) // on the same connection: it still answers, and the notification is there, unread
	if n := e.unreadCount(c); n != 1 {
		t.Fatalf("%s: unread count %d after %s, want 1", e.tr.name, n, b.name)
	}
}
