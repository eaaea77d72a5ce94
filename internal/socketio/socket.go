package socketio

import (
	"encoding/json"
	"errors"
	mrand "math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/heraldhq/herald/internal/admission"
	"github.com/heraldhq/herald/internal/audit"
	"github.com/heraldhq/herald/internal/hub"
	"github.com/heraldhq/herald/internal/notification"
	proto "github.com/heraldhq/herald/internal/session"
)

// socket is one Socket.IO socket: a namespace connected on a session with a
// valid token, and the wire of its session.Session. It implements
// session.Transport: hub frames become EVENT packets in its namespace,
// replies become ACKs (or events when no ack was asked for).
type socket struct {
	sess   *session      // static: the Engine.IO session
	ps     proto.Session // the protocol session, embedded: one allocation per socket
	ns     uint8         // static: index in cfg.Namespaces
	closed atomic.Bool   // (ns and closed share a word: 128 bytes in all)
}

var _ proto.Transport = (*socket)(nil)

func (k *socket) nsp() string { return k.sess.srv.cfg.Namespaces[k.ns] }

// eventNames maps hub frames to Socket.IO event names.
var eventNames = [...]string{
	hub.FrameReady:        "ready",
	hub.FrameNotification: "notification",
	hub.FrameRead:         "notification:read",
	hub.FrameDeleted:      "notification:deleted",
	hub.FrameUnread:       "unread",
	hub.FrameResync:       "resync",
	hub.FrameArchived:     "notification:archived",
	hub.FrameUnarchived:   "notification:unarchived",
	hub.FramePreferences:  "preferences",
	hub.FrameEvent:        "event", // never written under this name: see appendFrameEvent
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

// appendFrameEvent appends hub frame f as one EVENT packet. A live event
// is emitted under its own type, with its data as the first argument and
// the rest of the event object as the second: `["order:updated",{…},{…}]`,
// so handlers written for a Socket.IO gateway (socket.on("order:updated",
// data => …)) keep working. The publish API refuses types that collide
// with reserved or Herald event names.
func appendFrameEvent(b []byte, nsp string, f hub.Frame) []byte {
	if f.Kind == hub.FrameEvent && f.Live != nil {
		b = appendEventStart(b, nsp, f.Live.Type)
		b = append(b, f.Live.Data...)
		b = append(b, ',')
		b = append(b, f.Live.Meta...)
		return append(b, ']')
	}
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
	s.sockets.remove(k)
	if s.state != stateClosed && notifies(reason) {
		_ = s.writeLocked(appendEvent(nil, nsp, "notification:error", k.errorPayload(reason)), true)
	}
	if s.state == stateOpen {
		switch {
		case reason == hub.ReasonClientClosed:
			if s.emptyLocked() { // connect again within the auth deadline, or go
				s.deadline = s.srv.now() + int64(s.srv.core.AuthTimeout())
			}
		case disconnects(reason):
			_ = s.writeLocked(appendDisconnect(nil, nsp), true)
			closeSession = s.emptyLocked()
		default:
			closeSession = true
		}
	}
	s.mu.Unlock()
	k.ps.End(reason) // the per-user slot; the hub client is already closing
	if closeSession {
		s.close(reason)
	}
}

func (s *session) emptyLocked() bool { return s.sockets.empty() }

// connect handles a CONNECT to namespace ns: authenticate with auth.token
// (or the handshake's bearer token), attach to the hub, resume after
// auth.since. The caller holds s.in.
func (s *session) connect(ns int, data json.RawMessage) {
	srv := s.srv
	nsp := srv.cfg.Namespaces[ns]
	var a connectAuth
	if len(data) > 0 && (notification.JSONDepth(data, maxJSONDepth) > maxJSONDepth || hasDuplicateKey(data) || json.Unmarshal(data, &a) != nil) {
		srv.audit.Warn(audit.TokenInvalid, "token rejected", "reason", "malformed_auth", "conn", s.connID, "ip", s.ip(), "transport", "socketio")
		s.reject(nsp, proto.CodeUnauthorized.String())
		return
	}
	tok := a.Token
	if tok == "" {
		s.mu.Lock()
		packed := s.headerToken
		s.mu.Unlock()
		tok = srv.tokens.unpackToken(packed)
	}
	p, err := srv.core.Verify(tok, admission.SocketIO, s.ip())
	if err != nil {
		s.reject(nsp, proto.CodeUnauthorized.String())
		return
	}
	var since *notification.Position
	if a.Since != nil {
		pos, err := notification.ParsePosition(*a.Since)
		if err != nil {
			srv.audit.Info(audit.InvalidMessage, "invalid since", "conn", s.connID, "ip", s.ip(), "transport", "socketio")
			s.reject(nsp, "invalid since")
			return
		}
		since = &pos
	}
	k := &socket{sess: s, ns: uint8(ns)}
	srv.core.InitSession(&k.ps, k, s.slot)
	if err := k.ps.Reserve(p); err != nil {
		k.closed.Store(true)
		if errors.Is(err, proto.ErrUserLimit) {
			_ = s.write(appendConnectError(nil, nsp, "too many connections"), false)
		}
		return
	}
	s.mu.Lock()
	if s.state != stateOpen {
		s.mu.Unlock()
		k.closed.Store(true)
		k.ps.End(hub.ReasonClientClosed)
		return
	}
	s.sockets.put(k)
	s.deadline = 0 // no auth deadline

	// The CONNECT reply goes out before the hub's first frame (ready).
	_ = s.writeLocked(appendConnect(nil, nsp, newID()), true)
	s.mu.Unlock()
	if err := k.ps.Attach(p, since); err != nil {
		k.Close(hub.ReasonShutdown) // the hub is closed (draining), or the session went away
	}
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
	if k.closed.Load() {
		return
	}
	req, err := decodeEvent(p.Data, p.ID)
	if err != nil {
		k.ps.Invalid(req.Ref, err)
		return
	}
	k.ps.Handle(req)
}

// Reply implements session.Transport: an ACK when the client asked for
// one ({"ok":true,…} or {"ok":false,"code":…}); otherwise errors become a
// notification:error event, pages and counts an event named like the
// request, and plain acknowledgements nothing.
func (k *socket) Reply(r *proto.Reply) error {
	var b []byte
	switch {
	case r.Ref.Ack >= 0:
		obj := []byte(`{"ok":true`)
		if r.Err != nil {
			obj = []byte(`{"ok":false`)
		}
		b = appendAck(nil, k.nsp(), r.Ref.Ack, append(r.AppendFields(obj), '}'))
	case r.Err != nil:
		b = appendEvent(nil, k.nsp(), "notification:error", r.AppendObject(nil))
	case r.HasResult():
		b = appendEvent(nil, k.nsp(), r.Name.String(), r.AppendObject(nil))
	default:
		return nil
	}
	if err := k.sess.write(b, false); errors.Is(err, errBufferFull) {
		return proto.ErrBufferFull
	} else if err != nil {
		return err
	}
	return nil
}
