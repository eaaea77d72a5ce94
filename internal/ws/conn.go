package ws

import (
	"encoding/binary"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/lesismal/nbio/nbhttp/websocket"

	"github.com/heraldhq/herald/internal/admission"
	"github.com/heraldhq/herald/internal/audit"
	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/hub"
	"github.com/heraldhq/herald/internal/notification"
	"github.com/heraldhq/herald/internal/session"
	"github.com/heraldhq/herald/internal/wspoll"
)

// conn is one WebSocket connection: the wire of its session.Session. It
// implements session.Transport (and so hub.Sender).
//
// nbio runs its callbacks in the poller, so they never block: onMessage and
// onClose push onto inq, and a drain goroutine, started when inq becomes
// non-empty and gone when it is empty again, handles the messages and then
// the end of the socket in arrival order (inbound.go). An idle socket has no
// goroutine. mu is never held across a call that may block.
type conn struct {
	srv *Server         // static
	ws  *websocket.Conn // static: set by ServeHTTP before the socket is bound
	// sess is the protocol session, set up by ServeHTTP before the upgrade
	// and kept in the same allocation (session.Core.InitSession).
	sess session.Session

	mu       sync.Mutex
	pre      *preAuth  // guarded by mu: nil when there is nothing to keep until auth
	inq      []inbound // guarded by mu: work not yet handled, in arrival order
	inqBytes int32     // guarded by mu: message bytes in inq (at most maxQueuedBytes)
	draining bool      // guarded by mu: a drain goroutine owns inq
	ended    bool      // guarded by mu: the end of the socket is queued
	cleaned  bool      // guarded by mu: finish ran

	wspoll.Outbound // bytes handed to nbio and not yet written to the kernel
	// closedWith is 1 + the hub.CloseReason we closed the socket with, 0
	// while we have not (see closing).
	closedWith atomic.Uint32
	lastRead   atomic.Int64 // unix ns of the last frame received (keepalive)
}

var _ session.Transport = (*conn)(nil)

// preAuth is what a connection keeps only until it authenticates: the
// ?since= of the upgrade request and the auth deadline. Out of conn, so a
// connection authenticated by its upgrade header without ?since= keeps
// neither (conn stays in the 208-byte size class; TestConnFitsItsSizeClass).
type preAuth struct {
	since *notification.Position
	timer *time.Timer
}

// querySince is the ?since= of the upgrade request, nil without one.
func (c *conn) querySince() *notification.Position {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pre == nil {
		return nil
	}
	return c.pre.since
}

// closing reports whether we have closed the socket (sent the close frame,
// or dropped it).
func (c *conn) closing() bool { return c.closedWith.Load() != 0 }

// heard records that the client sent a frame (any: data, ping, pong).
func (c *conn) heard() { c.lastRead.Store(time.Now().UnixNano()) }

// write sends one message, counting its bytes against the soft buffer cap.
// Control frames (force) bypass the cap: they are tiny and a close frame must
// be able to follow a full buffer.
func (c *conn) write(mt websocket.MessageType, data []byte, force bool) error {
	return c.Push(wspoll.FrameLen(len(data)), c.srv.cfg.WriteBufferBytes, force,
		func() error { return c.ws.WriteMessage(mt, data) })
}

// errClosing is Send's answer once the connection is closing.
var errClosing = fmt.Errorf("ws: connection closing: %w", hub.ErrSenderClosed)

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// Send implements hub.Sender.
func (c *conn) Send(f hub.Frame) error {
	if c.closing() {
		return errClosing
	}
	bp := bufPool.Get().(*[]byte)
	b := appendWire((*bp)[:0], f)
	err := c.writeWire(b)
	*bp = b
	if cap(b) <= 64<<10 {
		bufPool.Put(bp)
	}
	return err
}

// Close implements hub.Sender: send the close frame, then drop the TCP
// connection after CloseGrace if the client has not completed the handshake.
// A 1006 reason has no close frame: the connection is dropped at once.
func (c *conn) Close(reason hub.CloseReason) {
	if !c.closedWith.CompareAndSwap(0, uint32(reason)+1) {
		return
	}
	code := reason.Code()
	if code == 1006 {
		wspoll.Drop(c.ws.Conn)
		return
	}
	label := reason.Label()
	if reason == hub.ReasonShutdown {
		label += ";reconnect_after_ms=" + strconv.FormatInt(mrand.Int64N(c.srv.cfg.ReconnectSpread.Milliseconds()+1), 10)
	}
	buf := make([]byte, 2+len(label))
	binary.BigEndian.PutUint16(buf, uint16(code))
	copy(buf[2:], label)
	_ = c.write(websocket.CloseMessage, buf, true)
	time.AfterFunc(c.srv.cfg.CloseGrace, func() { wspoll.Drop(c.ws.Conn) })
}

// startAuthTimer arms the authentication deadline.
func (c *conn) startAuthTimer() {
	c.mu.Lock()
	if c.pre == nil {
		c.pre = &preAuth{}
	}
	c.pre.timer = time.AfterFunc(c.srv.core.AuthTimeout(), c.sess.AuthTimedOut)
	c.mu.Unlock()
}

// stopAuthTimer disarms the auth deadline and drops what was kept until
// auth.
func (c *conn) stopAuthTimer() {
	c.mu.Lock()
	if c.pre != nil && c.pre.timer != nil {
		c.pre.timer.Stop()
	}
	c.pre = nil
	c.mu.Unlock()
}

// attach attaches an authenticated socket and closes it with the reason
// its failure calls for. With a header token the per-user slot is already
// held, so it does not block (bind runs it in nbio's job queue); with the
// auth message it may wait on Redis and runs in the drain goroutine.
func (c *conn) attach(p auth.Principal, since *notification.Position) {
	c.stopAuthTimer()
	if c.closing() { // timed out while the token was checked
		return
	}
	c.closeFor(c.sess.Attach(p, since))
}

// closeFor closes the socket after a failed Attach or Authenticate.
func (c *conn) closeFor(err error) {
	switch {
	case err == nil, errors.Is(err, session.ErrGone):
	case errors.Is(err, session.ErrUnauthorized):
		c.sess.Close(hub.ReasonUnauthorized)
	case errors.Is(err, session.ErrUserLimit):
		c.sess.Close(hub.ReasonLimitExceeded)
	default:
		c.sess.Close(hub.ReasonShutdown) // the hub is closed: the node is draining
	}
}

// handle runs one client message, in the drain goroutine: it may block on
// the verifier (auth) and the request limiter (Redis), never in the poller.
func (c *conn) handle(mt websocket.MessageType, data []byte) {
	if c.closing() {
		return
	}
	if mt != websocket.TextMessage {
		c.sess.Close(hub.ReasonUnsupported)
		return
	}
	if !utf8.Valid(data) {
		c.sess.Close(hub.ReasonInvalidUTF8)
		return
	}
	req, err := decodeMessage(data)
	authed := c.sess.Authenticated()
	switch {
	case err != nil && !authed:
		c.srv.audit.Warn(audit.InvalidMessage, "invalid message before auth", "conn", c.sess.ID(), "ip", c.sess.IP(),
			"transport", "ws", "err", err)
		c.sess.Close(hub.ReasonUnauthorized)
	case err != nil:
		c.sess.Invalid(req.Ref, err)
	case req.Name == session.NameAuth && !authed:
		since := c.querySince()
		if req.Since != nil {
			since = req.Since
		}
		p, err := c.srv.core.Verify(req.Token, admission.WebSocket, c.sess.IP())
		if err != nil {
			c.sess.Close(hub.ReasonUnauthorized)
			return
		}
		c.attach(p, since)
	default:
		c.sess.Handle(req)
	}
}
