package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// The protocol suite's clients (protocol_test.go runs the cases): one per
// transport, each speaking its real wire to a real node, and each
// normalizing what it reads into the same shapes, so that one case reads
// the same on every transport.

// protoReply is the answer to one request, as every client normalizes it.
type protoReply struct {
	ok     bool
	code   string         // the error code; "" when ok
	corrID string         // the error's correlation_id
	status int            // the HTTP status (REST only)
	fields map[string]any // the reply's fields without the envelope (type, ref, ok)
	closed *closeInfo     // the connection ended instead of answering
	raw    string         // as received
	// deviation: how the reply departs from the documented protocol in a
	// way the client could work around (TestProtocol reports it).
	deviation string
}

func (r protoReply) String() string {
	if r.closed != nil {
		return fmt.Sprintf("connection closed (%d %q)", r.closed.code, r.closed.reason)
	}
	return r.raw
}

// closeInfo is how the server ended a connection: the close label and,
// where the transport carries one, the close code (WebSocket close frame,
// SSE close event); code is 0 when there is none.
type closeInfo struct {
	code   int
	reason string
}

// refusal is how a transport turned away a bad credential: code is the
// catalogue's name for it, whatever carries it (an HTTP error body, the
// plain-text body before a WebSocket upgrade, a close label, a Socket.IO
// CONNECT_ERROR message).
type refusal struct {
	how      string
	code     string
	status   int    // the HTTP status or close code; 0 when none
	corrID   string // the error body's correlation_id
	wantCorr bool   // the catalogue promises one here (JSON error bodies)
}

// protoClient is one connection of a user, through one transport's wire.
type protoClient interface {
	// request sends a request by its wire name (session.Name.String()) with
	// args as its argument object (nil: none) and waits for its reply.
	request(name string, args map[string]any) protoReply
	// requestRaw is request with the argument object's JSON text as given,
	// valid or not.
	requestRaw(name, args string) protoReply
	// nextEvent waits for the next pushed event called name (its WebSocket
	// name: "notification:read", "unread", …) and returns its payload.
	nextEvent(name string) map[string]any
	// closed waits for the server to end the connection.
	closed() closeInfo
}

// protoTransport opens protoClients.
type protoTransport struct {
	name    string
	refresh bool // requests travel on the connection: in-band token refresh, pings, invalid-message counting
	// connect authenticates with tok; a refused tok gives the refusal.
	connect func(n *testNode, tok string) (protoClient, *refusal)
	// refusals tries tok on every way in the transport has.
	refusals func(n *testNode, tok string) []refusal
}

const (
	trWS      = "ws"
	trSIO     = "socketio"
	trSSERest = "sse+rest"
)

var protoTransports = []protoTransport{
	{name: trWS, refresh: true, connect: wsProtoConnect, refusals: wsProtoRefusals},
	{name: trSIO, refresh: true, connect: sioProtoConnect, refusals: sioProtoRefusals},
	{name: trSSERest, connect: restProtoConnect, refusals: restProtoRefusals},
}

// protoWait bounds every wait for the server (a hang fails, with what was
// received instead).
const protoWait = 15 * time.Second

var corrIDPattern = regexp.MustCompile(`^[0-9a-f]{16}$`)

// take returns the first item, from backlog and then from ch, that match
// accepts, keeping the others in backlog in order; items skip accepts are
// dropped. ok is false when done closed before a match (ch drained).
func take[T any](t testing.TB, what string, backlog *[]T, ch <-chan T, done <-chan struct{},
	match, skip func(T) bool) (v T, ok bool) {
	t.Helper()
	for i, x := range *backlog {
		if match(x) {
			*backlog = append((*backlog)[:i], (*backlog)[i+1:]...)
			return x, true
		}
	}
	deadline := time.NewTimer(protoWait)
	defer deadline.Stop()
	for {
		select {
		case x := <-ch:
			if skip != nil && skip(x) {
				continue
			}
			if match(x) {
				return x, true
			}
			*backlog = append(*backlog, x)
		case <-done:
			select {
			case x := <-ch: // what arrived before the end
				if skip != nil && skip(x) {
					continue
				}
				if match(x) {
					return x, true
				}
				*backlog = append(*backlog, x)
				continue
			default:
			}
			return v, false
		case <-deadline.C:
			t.Fatalf("timed out after %s waiting for %s; received meanwhile: %v", protoWait, what, *backlog)
		}
	}
}

func decodeObject(t testing.TB, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("not a JSON object: %q: %v", s, err)
	}
	return m
}

func str(v any) string { s, _ := v.(string); return s }

func closeOf(err error) closeInfo {
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return closeInfo{code: int(ce.Code), reason: ce.Reason}
	}
	return closeInfo{}
}

// --- WebSocket: {"type":…,"ref":…,<args>} messages, first-frame auth ---

type wsProto struct {
	t       testing.TB
	w       *wsClient
	seq     int
	backlog []msg
}

// wsReplyTypes is the reply type of each request that is not answered "ack".
var wsReplyTypes = map[string]string{
	"notification:list": "notification:list", "notification:unread-count": "notification:unread-count", "ping": "pong",
	"preferences:get": "preferences:get", "preferences:set": "preferences:set",
}

func wsProtoConnect(n *testNode, tok string) (protoClient, *refusal) {
	n.t.Helper()
	c := &wsProto{t: n.t, w: n.mustDial(dialOpts{})}
	c.w.send(map[string]any{"type": "auth", "token": tok})
	if _, ok := c.take("ready", func(m msg) bool { return m.Type == "ready" }); !ok {
		ci := closeOf(c.w.err)
		return nil, &refusal{how: "first-frame auth", code: ci.reason, status: ci.code}
	}
	return c, nil
}

func wsProtoRefusals(n *testNode, tok string) []refusal {
	n.t.Helper()
	var out []refusal
	if tok != "" { // no header at all means first-frame auth
		r := refusal{how: "Authorization header"}
		if _, resp, err := n.dial(dialOpts{header: tok}); err == nil {
			n.t.Errorf("ws: upgrade with a bad token in the header succeeded")
		} else if resp != nil {
			body, _ := io.ReadAll(resp.Body)
			r = httpRefusal(r.how, resp.StatusCode, body)
			checkChallenge(n.t, "ws", resp.StatusCode, resp.Header)
		}
		out = append(out, r)
	}
	if _, r := wsProtoConnect(n, tok); r != nil {
		out = append(out, *r)
	} else {
		n.t.Errorf("ws: first-frame auth with a bad token succeeded")
	}
	return out
}

func (c *wsProto) take(what string, match func(msg) bool) (msg, bool) {
	c.t.Helper()
	return take(c.t, what, &c.backlog, c.w.msgs, c.w.done, match, nil)
}

func (c *wsProto) request(name string, args map[string]any) protoReply {
	c.t.Helper()
	c.seq++
	ref := fmt.Sprintf("r%d", c.seq)
	m := map[string]any{"type": name, "ref": ref}
	for k, v := range args {
		m[k] = v
	}
	c.w.send(m)
	return c.reply(name, ref, false)
}

func (c *wsProto) requestRaw(name, args string) protoReply {
	c.t.Helper()
	c.seq++
	ref := fmt.Sprintf("r%d", c.seq)
	head, _ := json.Marshal(map[string]string{"type": name, "ref": ref})
	frame := string(head[:len(head)-1])
	if rest := strings.TrimPrefix(args, "{"); strings.TrimSpace(rest) != "}" {
		frame += "," + rest
	} else {
		frame += "}"
	}
	c.w.send(frame)
	return c.reply(name, ref, true)
}

// reply waits for the reply carrying ref. An error without a ref is taken
// as the reply too (requests are sent one at a time): right when the
// request did not parse (unparsed), a deviation otherwise.
func (c *wsProto) reply(name, ref string, unparsed bool) protoReply {
	c.t.Helper()
	want := `"` + ref + `"`
	m, ok := c.take("the reply to "+ref, func(m msg) bool {
		switch m.Type {
		case "ack", "pong", "notification:list", "notification:unread-count", "preferences:get", "preferences:set":
		case "notification:error":
			if len(m.Ref) == 0 {
				return true
			}
		default:
			return false
		}
		return string(m.Ref) == want
	})
	if !ok {
		ci := closeOf(c.w.err)
		return protoReply{closed: &ci}
	}
	f := decodeObject(c.t, m.Raw)
	delete(f, "type")
	delete(f, "ref")
	rep := protoReply{ok: m.Type != "notification:error", code: m.Code, corrID: str(f["correlation_id"]), fields: f, raw: m.Raw}
	if len(m.Ref) == 0 && !unparsed {
		rep.deviation = "ws: the error reply does not echo the ref of a well-formed JSON message that carries it " +
			"(docs/protocol.md: \"ref is echoed when the message could be parsed far enough to read it\"; " +
			"socket.io acks the same request with its id): " + m.Raw
	}
	if wantType := wsReplyTypes[name]; rep.ok && m.Type != wantType && !(wantType == "" && m.Type == "ack") {
		c.t.Errorf("ws: %s answered with type %q: %s", name, m.Type, m.Raw)
	}
	return rep
}

func (c *wsProto) nextEvent(name string) map[string]any {
	c.t.Helper()
	m, ok := c.take(name, func(m msg) bool { return m.Type == name })
	if !ok {
		c.t.Fatalf("ws: connection ended while waiting for %s: %v", name, c.w.err)
	}
	f := decodeObject(c.t, m.Raw)
	if name == "notification" {
		inner, _ := f["notification"].(map[string]any)
		return inner
	}
	delete(f, "type")
	return f
}

func (c *wsProto) closed() closeInfo {
	c.t.Helper()
	c.take("the close", func(msg) bool { return false }) // keeps what arrives before it
	return closeOf(c.w.err)
}

// --- Socket.IO: events on /notifications over an Engine.IO WebSocket ---

const sioNsp = "/notifications"

type sioProto struct {
	t       testing.TB
	w       *eioWS
	seq     int
	backlog []string
}

func sioProtoConnect(n *testNode, tok string) (protoClient, *refusal) {
	n.t.Helper()
	c := &sioProto{t: n.t, w: n.mustEIODial("", nil)}
	c.mustTake("the open packet", "0{")
	c.w.send(connectPkt(sioNsp, map[string]any{"token": tok}))
	p := c.mustTake("the CONNECT reply", "4") // 40 CONNECT or 44 CONNECT_ERROR
	if rest, ok := strings.CutPrefix(p, "44"+sioNsp+","); ok {
		return nil, &refusal{how: "CONNECT auth", code: str(decodeObject(c.t, rest)["message"])}
	}
	if !strings.HasPrefix(p, "40"+sioNsp+",") {
		c.t.Fatalf("socketio: CONNECT answered %q", p)
	}
	c.mustTake("ready", `42`+sioNsp+`,["ready",`)
	return c, nil
}

func sioProtoRefusals(n *testNode, tok string) []refusal {
	n.t.Helper()
	if _, r := sioProtoConnect(n, tok); r != nil {
		return []refusal{*r}
	}
	n.t.Errorf("socketio: CONNECT with a bad token succeeded")
	return nil
}

func (c *sioProto) take(what string, match func(string) bool) (string, bool) {
	c.t.Helper()
	ping := func(p string) bool {
		if p == "2" {
			c.w.send("3")
			return true
		}
		return false
	}
	return take(c.t, what, &c.backlog, c.w.msgs, c.w.done, match, ping)
}

func (c *sioProto) mustTake(what, prefix string) string {
	c.t.Helper()
	p, ok := c.take(what, func(p string) bool { return strings.HasPrefix(p, prefix) })
	if !ok {
		c.t.Fatalf("socketio: connection ended while waiting for %s: %v", what, c.w.err)
	}
	return p
}

func (c *sioProto) request(name string, args map[string]any) protoReply {
	c.t.Helper()
	payload := []any{name}
	if args != nil {
		payload = append(payload, args)
	}
	b, _ := json.Marshal(payload)
	return c.emit(string(b))
}

func (c *sioProto) requestRaw(name, args string) protoReply {
	c.t.Helper()
	nb, _ := json.Marshal(name)
	return c.emit("[" + string(nb) + "," + args + "]")
}

// emit sends an EVENT with an ack id and waits for its ACK.
func (c *sioProto) emit(payload string) protoReply {
	c.t.Helper()
	c.seq++
	c.w.send(fmt.Sprintf("42%s,%d%s", sioNsp, c.seq, payload))
	ack := fmt.Sprintf("43%s,%d[", sioNsp, c.seq)
	p, ok := c.take("ack "+ack, func(p string) bool { return strings.HasPrefix(p, ack) || p == "41"+sioNsp+"," })
	if !ok || !strings.HasPrefix(p, ack) {
		ci := c.closeInfo(ok)
		return protoReply{closed: &ci}
	}
	f := sioArg(c.t, p)
	okv := f["ok"] == true
	delete(f, "ok")
	return protoReply{ok: okv, code: str(f["code"]), corrID: str(f["correlation_id"]), fields: f, raw: p}
}

func (c *sioProto) nextEvent(name string) map[string]any {
	c.t.Helper()
	return sioArg(c.t, c.mustTake(name, `42`+sioNsp+`,["`+name+`",`))
}

// closed waits for the namespace's DISCONNECT or the end of the transport.
func (c *sioProto) closed() closeInfo {
	c.t.Helper()
	_, ok := c.take("the close", func(p string) bool { return p == "41"+sioNsp+"," })
	return c.closeInfo(ok)
}

// closeInfo reads a close: the label is the code of the notification:error
// event sent before it (or the WebSocket close frame's reason), the code
// the close frame's when the transport ended.
func (c *sioProto) closeInfo(disconnected bool) closeInfo {
	var ci closeInfo
	if !disconnected {
		ci = closeOf(c.w.err)
	}
	ev := `42` + sioNsp + `,["notification:error",`
	for i := len(c.backlog) - 1; i >= 0; i-- {
		if strings.HasPrefix(c.backlog[i], ev) {
			ci.reason = str(sioArg(c.t, c.backlog[i])["code"])
			c.backlog = append(c.backlog[:i], c.backlog[i+1:]...)
			break
		}
	}
	return ci
}

// --- SSE + REST: events from /v1/me/stream, requests through /v1/me/… ---

type restProto struct {
	t       testing.TB
	n       *testNode
	tok     string
	s       *sseClient
	backlog []sseEvent
}

// sseEventNames maps the WebSocket names of events onto the stream's.
var sseEventNames = map[string]string{"notification:read": "read", "notification:deleted": "deleted",
	"notification:archived": "archived", "notification:unarchived": "unarchived"}

func restProtoConnect(n *testNode, tok string) (protoClient, *refusal) {
	n.t.Helper()
	s, resp, err := n.openStream(streamOpts{bearer: tok})
	if err != nil {
		if resp == nil {
			n.t.Fatalf("sse: open stream: %v", err)
		}
		return nil, &refusal{how: "stream", status: resp.StatusCode}
	}
	c := &restProto{t: n.t, n: n, tok: tok, s: s}
	c.nextEvent("ready")
	return c, nil
}

func restProtoRefusals(n *testNode, tok string) []refusal {
	n.t.Helper()
	hdr := []string{"Accept", "text/event-stream"}
	if tok != "" {
		hdr = append(hdr, "Authorization", "Bearer "+tok)
	}
	resp, body := sioRequest(n.t, "GET", n.base+"/v1/me/stream", "", hdr...)
	out := []refusal{httpRefusal("stream", resp.StatusCode, []byte(body))}
	status, b, h := n.do("GET", "/v1/me/notifications", tok, nil)
	out = append(out, httpRefusal("REST list", status, b))
	checkChallenge(n.t, "sse+rest", status, h)
	return out
}

// checkChallenge checks that a 401 carries the Bearer challenge.
func checkChallenge(t testing.TB, tr string, status int, h http.Header) {
	t.Helper()
	if got := h.Get("WWW-Authenticate"); status == 401 && got != `Bearer realm="herald"` {
		t.Errorf("%s: 401 with WWW-Authenticate %q", tr, got)
	}
}

// httpRefusal reads an error body {"error":{"code","message","correlation_id"}}.
func httpRefusal(how string, status int, body []byte) refusal {
	var e struct {
		Error struct {
			Code          string `json:"code"`
			CorrelationID string `json:"correlation_id"`
		} `json:"error"`
	}
	_ = json.Unmarshal(body, &e)
	return refusal{how: how, code: e.Error.Code, status: status, corrID: e.Error.CorrelationID, wantCorr: true}
}

// route maps a request onto its REST form; a request without one is a
// mistake in the case table (its skip should say so).
func (c *restProto) route(name string, args map[string]any) (method, path string, body any) {
	c.t.Helper()
	id, hasID := args["id"].(string)
	onlyID := hasID && len(args) == 1
	if method, path, body, ok := inboxRoute(name, args); ok {
		return method, path, body
	}
	switch {
	case name == "notification:list":
		q := url.Values{}
		for k, v := range args {
			if k != "before" && k != "limit" && k != "unread" && k != "category" && k != "archived" {
				c.t.Fatalf("sse+rest: the list has no REST form for %q (case table: skip it)", k)
			}
			q.Set(k, fmt.Sprint(v))
		}
		if len(q) == 0 {
			return "GET", "/v1/me/notifications", nil
		}
		return "GET", "/v1/me/notifications?" + q.Encode(), nil
	case name == "notification:unread-count" && len(args) == 0:
		return "GET", "/v1/me/unread-count", nil
	case name == "notification:mark-all-read" && len(args) == 0:
		return "POST", "/v1/me/notifications/read-all", nil
	case name == "notification:mark-read" && onlyID:
		return "POST", "/v1/me/notifications/" + url.PathEscape(id) + "/read", nil
	case name == "notification:delete" && onlyID:
		return "DELETE", "/v1/me/notifications/" + url.PathEscape(id), nil
	}
	c.t.Fatalf("sse+rest: %s %v has no REST form (case table: skip it)", name, args)
	return "", "", nil
}

// inboxRoute maps the inbox-model requests onto their REST forms.
func inboxRoute(name string, args map[string]any) (method, path string, body any, ok bool) {
	id, hasID := args["id"].(string)
	onlyID := hasID && len(args) == 1
	var b any
	if len(args) > 0 {
		b = args
	}
	switch {
	case name == "notification:seen":
		return "POST", "/v1/me/notifications/seen", b, true
	case (name == "notification:archive" || name == "notification:unarchive") && onlyID:
		return "POST", "/v1/me/notifications/" + url.PathEscape(id) + "/" + strings.TrimPrefix(name, "notification:"), nil, true
	case (name == "notification:archive" || name == "notification:unarchive") && len(args) == 1 && args["all"] == true:
		return "POST", "/v1/me/notifications/" + strings.TrimPrefix(name, "notification:") + "-all", nil, true
	case name == "preferences:get" && len(args) == 0:
		return "GET", "/v1/me/preferences", nil, true
	case name == "preferences:set":
		if b == nil {
			b = map[string]any{}
		}
		return "PUT", "/v1/me/preferences", b, true
	}
	return "", "", nil, false
}

func (c *restProto) request(name string, args map[string]any) protoReply {
	c.t.Helper()
	method, path, reqBody := c.route(name, args)
	status, body, _ := c.n.do(method, path, c.tok, reqBody)
	rep := protoReply{ok: status == 200, status: status, raw: fmt.Sprintf("%d %s", status, body)}
	if err := json.Unmarshal(body, &rep.fields); err != nil {
		c.t.Fatalf("sse+rest: %s %s: body %q: %v", method, path, body, err)
	}
	if !rep.ok {
		r := httpRefusal(path, status, body)
		rep.code, rep.corrID = r.code, r.corrID
	}
	return rep
}

func (c *restProto) requestRaw(name, args string) protoReply {
	c.t.Fatalf("sse+rest: REST requests carry no JSON argument (case table: skip it)")
	return protoReply{}
}

func (c *restProto) take(what string, match func(sseEvent) bool) (sseEvent, bool) {
	c.t.Helper()
	pseudo := func(ev sseEvent) bool { return ev.Event == "" && ev.Data == "" } // comments, retry
	return take(c.t, what, &c.backlog, c.s.events, c.s.done, match, pseudo)
}

func (c *restProto) nextEvent(name string) map[string]any {
	c.t.Helper()
	want := name
	if n, ok := sseEventNames[name]; ok {
		want = n
	}
	ev, ok := c.take(want, func(ev sseEvent) bool { return ev.Event == want })
	if !ok {
		c.t.Fatalf("sse: stream ended while waiting for %s: %v", want, c.s.err)
	}
	return decodeObject(c.t, ev.Data)
}

func (c *restProto) closed() closeInfo {
	c.t.Helper()
	ev, ok := c.take("close", func(ev sseEvent) bool { return ev.Event == "close" })
	if !ok {
		return closeInfo{}
	}
	d := decodeObject(c.t, ev.Data)
	code, _ := d["code"].(float64)
	return closeInfo{code: int(code), reason: str(d["reason"])}
}
