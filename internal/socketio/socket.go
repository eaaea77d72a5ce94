package socketio

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	mrand "math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/hub"
	"github.com/heraldhq/herald/internal/notification"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/ws"
)

// socket is one Socket.IO socket: a namespace connected on a session with a
// valid token. It is the hub client's Sender: hub frames become EVENT packets
// in its namespace.
type socket struct {
	sess     *session    // static
	ns       uint8       // static: index in cfg.Namespaces
	userHeld bool        // static: holds a ConnsPerUser slot (released by Close)
	connID   uint64      // static: the hub's connection id
	userKey  string      // static: ws.UserKey(tenant, user), for the shared limits
	client   *hub.Client // guarded by sess.mu; nil until attached
	closed   atomic.Bool
	inflight atomic.Int32
}

var _ hub.Sender = (*socket)(nil)

func (k *socket) nsp() string { return k.sess.srv.cfg.Namespaces[k.ns] }

func (k *socket) hubClient() *hub.Client {
	k.sess.mu.Lock()
	defer k.sess.mu.Unlock()
	return k.client
}

// eventNames maps hub frames to Socket.IO event names.
var eventNames = [...]string{
	hub.FrameReady:        "ready",
	hub.FrameNotification: "notification",
	hub.FrameRead:         "notification:read",
	hub.FrameDeleted:      "notification:deleted",
	hub.FrameUnread:       "unread",
	hub.FrameResync:       "resync",
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// Send implements hub.Sender: `42<nsp>,["<event>",<payload>]`, and the
// unread event that follows f, if any, as a packet of its own written
// together with it (session.writePair).
func (k *socket) Send(f hub.Frame) error {
	if k.closed.Load() {
		return errClosed
	}
	if int(f.Kind) >= len(eventNames) || eventNames[f.Kind] == "" {
		return nil
	}
	bp := bufPool.Get().(*[]byte)
	nsp := k.nsp()
	b := appendFrameEvent((*bp)[:0], nsp, f)
	var err error
	if f.Unread == nil {
		err = k.sess.write(b, false)
	} else {
		split := len(b)
		b = appendFrameEvent(b, nsp, hub.Frame{Kind: hub.FrameUnread, Payload: f.Unread})
		err = k.sess.writePair(b[:split], b[split:])
	}
	*bp = b
	if cap(b) <= 64<<10 {
		bufPool.Put(bp)
	}
	return err
}

// appendFrameEvent appends hub frame f as one EVENT packet.
func appendFrameEvent(b []byte, nsp string, f hub.Frame) []byte {
	b = appendEventStart(b, nsp, eventNames[f.Kind])
	if f.Kind == hub.FrameNotification {
		b = f.AppendNotification(b)
	} else {
		b = append(b, f.Payload...)
	}
	return append(b, ']')
}

// disconnects reports whether a socket closed for reason gets a DISCONNECT
// packet (socket.io-client then does not reconnect) rather than a transport
// close (the client's Manager reconnects and CONNECTs again, resuming with
// auth.since). Token expiry takes the reconnect path: a client whose auth is
// a function fetches a fresh token; a stale one gets CONNECT_ERROR.
func disconnects(r hub.CloseReason) bool {
	return !r.Reconnect() && r != hub.ReasonTokenExpired
}

// errorPayload is the notification:error object sent before a close.
func (k *socket) errorPayload(r hub.CloseReason) []byte {
	msg := "connection closed"
	switch r {
	case hub.ReasonShutdown:
		msg = "server shutting down: reconnect"
	case hub.ReasonSlowConsumer:
		msg = "too slow to keep up: reconnect"
	case hub.ReasonTokenExpired:
		msg = "token expired"
	case hub.ReasonRevoked, hub.ReasonUnauthorized:
		msg = "unauthorized"
	case hub.ReasonRateLimited:
		msg = "rate limit exceeded"
	}
	b := []byte(`{"code":"` + r.Label() + `","message":"` + msg + `"`)
	if r == hub.ReasonShutdown {
		b = append(b, `,"reconnect_after_ms":`...)
		b = strconv.AppendInt(b, mrand.Int64N(k.sess.srv.cfg.ReconnectSpread.Milliseconds()+1), 10)
	}
	return append(b, '}')
}

// Close implements hub.Sender. The hub calls it once per client; the
// session's own close paths may call it too.
func (k *socket) Close(reason hub.CloseReason) {
	if !k.closed.CompareAndSwap(false, true) {
		return
	}
	s := k.sess
	nsp := k.nsp()
	closeSession := false
	s.mu.Lock()
	if s.sockets[k.ns] == k {
		s.sockets[k.ns] = nil
	}
	if s.state != stateClosed && notifies(reason) {
		_ = s.writeLocked(appendEvent(nil, nsp, "notification:error", k.errorPayload(reason)), true)
	}
	if s.state == stateOpen {
		switch {
		case reason == hub.ReasonClientClosed:
			if s.emptyLocked() { // connect again within the auth deadline, or go
				s.authDeadline = s.srv.now() + int64(s.srv.cfg.AuthTimeout)
			}
		case disconnects(reason):
			_ = s.writeLocked(appendDisconnect(nil, nsp), true)
			closeSession = s.emptyLocked()
		default:
			closeSession = true
		}
	}
	s.mu.Unlock()
	if k.userHeld {
		s.srv.cfg.Limits.ConnsPerUser.Release(k.userKey)
	}
	if closeSession {
		s.close(reason)
	}
}

func (s *session) emptyLocked() bool {
	for _, k := range s.sockets {
		if k != nil {
			return false
		}
	}
	return true
}

// closeWith closes the socket through the hub (exactly one disconnect).
func (k *socket) closeWith(reason hub.CloseReason) {
	if cl := k.hubClient(); cl != nil {
		cl.Close(reason)
		return
	}
	k.Close(reason)
}

// connect handles a CONNECT to namespace ns: authenticate with auth.token
// (or the handshake's bearer token), attach to the hub, resume after
// auth.since. The caller holds s.in.
func (s *session) connect(ns int, data json.RawMessage) {
	srv := s.srv
	nsp := srv.cfg.Namespaces[ns]
	var a connectAuth
	if len(data) > 0 && (notification.JSONDepth(data, maxJSONDepth) > maxJSONDepth || json.Unmarshal(data, &a) != nil) {
		srv.log.Warn("token rejected", "event", "token_invalid", "reason", "malformed_auth", "conn", s.connID, "ip", s.ip, "transport", "socketio")
		s.reject(nsp, "unauthorized")
		return
	}
	tok := a.Token
	if tok == "" {
		s.mu.Lock()
		tok = s.headerToken
		s.mu.Unlock()
	}
	if tok == "" || len(tok) > maxTokenLen {
		srv.log.Warn("token rejected", "event", "token_invalid", "reason", "missing", "conn", s.connID, "ip", s.ip, "transport", "socketio")
		s.reject(nsp, "unauthorized")
		return
	}
	p, err := srv.verifier.Verify(tok)
	if err != nil {
		srv.log.Warn("token rejected", "event", "token_invalid", "reason", auth.ReasonOf(err), "conn", s.connID, "ip", s.ip, "transport", "socketio")
		s.reject(nsp, "unauthorized")
		return
	}
	var since *notification.Position
	if a.Since != nil {
		pos, err := notification.ParsePosition(*a.Since)
		if err != nil {
			srv.log.Info("invalid since", "event", "invalid_message", "conn", s.connID, "ip", s.ip)
			s.reject(nsp, "invalid since")
			return
		}
		since = &pos
	}
	k := &socket{sess: s, ns: uint8(ns), connID: srv.hub.NextConnID(), userKey: ws.UserKey(p.Tenant, p.User)}
	if lim := srv.cfg.Limits.ConnsPerUser; lim != nil {
		if !lim.Acquire(k.userKey) {
			srv.log.Warn("per-user connection cap reached", "event", "limit_exceeded", "scope", "user", "conn", s.connID, "tenant", p.Tenant, "user", p.User)
			_ = s.write(appendConnectError(nil, nsp, "too many connections"), false)
			return
		}
		k.userHeld = true
	}
	s.mu.Lock()
	if s.state != stateOpen {
		s.mu.Unlock()
		k.closed.Store(true)
		if k.userHeld {
			srv.cfg.Limits.ConnsPerUser.Release(k.userKey)
		}
		return
	}
	s.sockets[ns] = k
	s.authDeadline = 0
	if s.unauthHeld {
		s.unauthHeld = false
		srv.unauth.Add(-1)
	}
	// The CONNECT reply goes out before the hub's first frame (ready).
	_ = s.writeLocked(appendConnect(nil, nsp, newID()), true)
	s.mu.Unlock()

	cl, err := srv.hub.Attach(k, hub.AttachOptions{
		ConnID:    k.connID,
		Transport: "socketio",
		Recipient: notification.Recipient{Tenant: p.Tenant, User: p.User, Role: p.Role},
		Since:     since,
		Expires:   p.Expires.Add(srv.verifier.Leeway()),
		TokenID:   p.TokenID,
	})
	if err != nil {
		k.Close(hub.ReasonShutdown)
		return
	}
	s.mu.Lock()
	gone := k.closed.Load() // the session closed while attaching
	if !gone {
		k.client = cl
	}
	s.mu.Unlock()
	if gone {
		cl.Close(hub.ReasonShutdown)
		return
	}
	srv.log.Info("authenticated", "event", "token_validated", "conn", k.connID, "session", s.connID,
		"namespace", nsp, "tenant", p.Tenant, "user", p.User, "transport", "socketio")
}

// reject answers a CONNECT with a generic CONNECT_ERROR; repeated failures
// close the session. The caller holds s.in.
func (s *session) reject(nsp, message string) {
	_ = s.write(appendConnectError(nil, nsp, message), false)
	s.authFail++
	if int(s.authFail) >= s.srv.cfg.MaxAuthFailures {
		s.close(hub.ReasonUnauthorized)
	}
}

// onEvent handles a client EVENT. The caller holds s.in.
func (k *socket) onEvent(p *packet) {
	s := k.sess
	srv := s.srv
	if k.closed.Load() {
		return
	}
	ev, err := decodeEvent(p.Data)
	if err != nil {
		cid := k.replyError(p.ID, "invalid_message", "invalid message")
		srv.log.Info("invalid event", "event", "invalid_message", "conn", k.connID, "correlation_id", cid, "err", err)
		s.invalid++
		if int(s.invalid) > srv.cfg.MaxInvalid {
			k.closeWith(hub.ReasonPolicyViolation)
		}
		return
	}
	if f := srv.cfg.OnMessage; f != nil {
		f(ev.Name)
	}
	if !k.allowEvent() {
		k.replyError(p.ID, "rate_limited", "rate limit exceeded")
		return
	}
	if ev.Name == evAuth {
		k.refresh(ev.Token, p.ID)
		return
	}
	if k.inflight.Add(1) > int32(srv.cfg.MaxInflight) {
		k.inflight.Add(-1)
		srv.log.Warn("too many requests in flight", "event", "rate_limited", "conn", k.connID)
		k.replyError(p.ID, "rate_limited", "too many requests")
		return
	}
	id := p.ID
	go func() {
		defer k.inflight.Add(-1)
		k.handleRequest(ev, id)
	}()
}

// allowEvent applies the per-user event rate limit shared with the other
// transports; sustained abuse closes the socket (rate_limited).
func (k *socket) allowEvent() bool {
	lim := &k.sess.srv.cfg.Limits
	if lim.Events == nil {
		return true
	}
	ok, strikes := lim.Events.Allow(k.userKey)
	if ok {
		return true
	}
	if strikes == 1 || strikes%10 == 0 {
		k.sess.srv.log.Warn("rate limited", "event", "rate_limited", "scope", "events", "conn", k.connID, "strikes", strikes)
	}
	if strikes >= lim.AbuseStrikes {
		k.closeWith(hub.ReasonRateLimited)
	}
	return false
}

// refresh replaces the socket's token in band (same tenant and user only).
func (k *socket) refresh(tok string, ackID int64) {
	srv := k.sess.srv
	cl := k.hubClient()
	if cl == nil {
		return
	}
	p, err := srv.verifier.Verify(tok)
	if err != nil {
		srv.log.Warn("token rejected", "event", "token_invalid", "reason", auth.ReasonOf(err), "conn", k.connID, "transport", "socketio")
		cl.Close(hub.ReasonUnauthorized)
		return
	}
	if ws.UserKey(p.Tenant, p.User) != k.userKey {
		r := cl.Recipient()
		srv.log.Warn("refresh with another identity", "event", "forbidden", "conn", k.connID, "tenant", r.Tenant, "user", r.User)
		cl.Close(hub.ReasonUnauthorized)
		return
	}
	cl.Refresh(p.Role, p.TokenID, p.Expires.Add(srv.verifier.Leeway()))
	k.reply(ackID, "", []byte(`{"ok":true}`))
}

func (k *socket) handleRequest(ev clientEvent, ackID int64) {
	srv := k.sess.srv
	cl := k.hubClient()
	if cl == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), srv.cfg.RequestTimeout)
	defer cancel()
	r := cl.Recipient()
	var err error
	switch ev.Name {
	case evMarkRead:
		_, err = srv.inbox.MarkRead(ctx, r, ev.IDs)
	case evMarkAllRead:
		_, err = srv.inbox.MarkAllRead(ctx, r)
	case evDelete:
		_, err = srv.inbox.Delete(ctx, r, ev.ID)
	case evList:
		var page store.Page
		page, err = srv.inbox.List(ctx, r, store.ListQuery{Before: ev.Before, Limit: ev.Limit, UnreadOnly: ev.Unread})
		if err == nil {
			obj := []byte(`{"ok":true`)
			if ackID < 0 { // the notification:list event carries the page alone
				obj = []byte(`{`)
			}
			k.reply(ackID, evList, append(appendList(obj, page), '}'))
			return
		}
	}
	switch {
	case err == nil:
		k.reply(ackID, "", []byte(`{"ok":true}`))
	case errors.Is(err, store.ErrNotFound):
		k.replyError(ackID, "not_found", "not found")
	default:
		cid := k.replyError(ackID, "internal", "unable to process request")
		srv.log.Error("request failed", "conn", k.connID, "correlation_id", cid, "event", ev.Name, "tenant", r.Tenant, "user", r.User, "err", err)
	}
}

// reply answers a request: an ACK when the client asked for one, else the
// event name (if any) with the same object. A full buffer closes the socket.
func (k *socket) reply(ackID int64, event string, obj []byte) {
	var b []byte
	switch {
	case ackID >= 0:
		b = appendAck(nil, k.nsp(), ackID, obj)
	case event != "":
		b = appendEvent(nil, k.nsp(), event, obj)
	default:
		return
	}
	if err := k.sess.write(b, false); errors.Is(err, errBufferFull) {
		k.closeWith(hub.ReasonSlowConsumer)
	}
}

// replyError sends a generic error (in the ack, or as notification:error)
// and returns its correlation id, which the caller logs with the details.
func (k *socket) replyError(ackID int64, code, msg string) string {
	var raw [8]byte
	_, _ = rand.Read(raw[:])
	cid := hex.EncodeToString(raw[:])
	b := make([]byte, 0, 128)
	if ackID >= 0 {
		b = append(b, `{"ok":false,`...)
	} else {
		b = append(b, '{')
	}
	b = append(b, `"code":"`...)
	b = append(b, code...)
	b = append(b, `","message":"`...)
	b = append(b, msg...)
	b = append(b, `","correlation_id":"`...)
	b = append(b, cid...)
	b = append(b, `"}`...)
	k.reply(ackID, "notification:error", b)
	return cid
}

// appendList appends the page's fields: `,"notifications":[…],"next":…`
// (after `{"ok":true`) or without the leading comma after `{`.
func appendList(b []byte, p store.Page) []byte {
	if b[len(b)-1] != '{' {
		b = append(b, ',')
	}
	b = append(b, `"notifications":[`...)
	for i := range p.Items {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, hub.EncodeNotification(&p.Items[i].Notification, p.Items[i].Read)...)
		b = append(b, '}')
	}
	b = append(b, `],"next":`...)
	if p.Next == "" {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = append(b, p.Next...)
	return append(b, '"')
}
