package ws

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	mrand "math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/lesismal/nbio/nbhttp/websocket"

	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/hub"
	"github.com/heraldhq/herald/internal/notification"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/wspoll"
)

// conn is one WebSocket connection. It implements hub.Sender.
//
// nbio runs its callbacks in the poller, so they never block: onMessage and
// onClose push onto inq, and a drain goroutine, started when inq becomes
// non-empty and gone when it is empty again, handles the messages and then
// the end of the socket in arrival order (inbound.go). An idle socket has no
// goroutine. mu is never held across a call that may block.
type conn struct {
	srv   *Server         // static
	ws    *websocket.Conn // static: set by ServeHTTP before the socket is bound
	shard uint8           // static: registry shard

	// Static: set by ServeHTTP before the socket is bound.
	id         uint64
	ip         string
	querySince *notification.Position // ?since= of the upgrade request

	mu           sync.Mutex
	client       *hub.Client // guarded by mu; nil until authenticated
	tenant, user string      // guarded by mu: the attached identity
	authTimer    *time.Timer // guarded by mu
	inq          []inbound   // guarded by mu: work not yet handled, in arrival order
	inqBytes     int         // guarded by mu: message bytes in inq
	draining     bool        // guarded by mu: a drain goroutine owns inq
	ended        bool        // guarded by mu: the end of the socket is queued
	// Admission slots held, released once on close; guarded by mu.
	ipHeld     bool
	unauthHeld bool
	cleaned    bool   // cleanupLocked ran
	userHeld   string // ConnsPerUser key, "" when none

	invalid  int          // invalid messages; owned by the drain goroutine
	queued   atomic.Int64 // bytes handed to nbio and not yet written to the kernel
	inflight atomic.Int32 // requests running
	// closedWith is 1 + the hub.CloseReason we closed the socket with, 0
	// while we have not (see closing).
	closedWith atomic.Uint32
	lastRead   atomic.Int64 // unix ns of the last frame received (keepalive)
}

// closing reports whether we have closed the socket (sent the close frame,
// or dropped it).
func (c *conn) closing() bool { return c.closedWith.Load() != 0 }

// heard records that the client sent a frame (any: data, ping, pong).
func (c *conn) heard() { c.lastRead.Store(time.Now().UnixNano()) }

var _ hub.Sender = (*conn)(nil)

var errBufferFull = errors.New("ws: outbound buffer full")

// frameLen is the size of a server frame (unmasked) carrying n bytes.
func frameLen(n int) int64 {
	switch {
	case n < 126:
		return int64(n) + 2
	case n <= 65535:
		return int64(n) + 4
	}
	return int64(n) + 10
}

// write sends one message, counting its bytes against the soft buffer cap.
// Control frames (force) bypass the cap: they are tiny and a close frame must
// be able to follow a full buffer.
func (c *conn) write(mt websocket.MessageType, data []byte, force bool) error {
	n := frameLen(len(data))
	if !force && c.queued.Load()+n > int64(c.srv.cfg.WriteBufferBytes) {
		return errBufferFull
	}
	c.queued.Add(n)
	if err := c.ws.WriteMessage(mt, data); err != nil {
		c.queued.Add(-n)
		return err
	}
	return nil
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// Send implements hub.Sender.
func (c *conn) Send(f hub.Frame) error {
	if c.closing() {
		return errBufferFull
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

// frameTypes maps hub frames to the "type" of the JSON message.
var frameTypes = [...]string{
	hub.FrameReady:        `{"type":"ready",`,
	hub.FrameNotification: `{"type":"notification","notification":`,
	hub.FrameRead:         `{"type":"notification:read",`,
	hub.FrameDeleted:      `{"type":"notification:deleted",`,
	hub.FrameUnread:       `{"type":"unread",`,
	hub.FrameResync:       `{"type":"resync",`,
}

func appendFrame(b []byte, f hub.Frame) []byte {
	b = append(b, frameTypes[f.Kind]...)
	if f.Kind == hub.FrameNotification {
		b = f.AppendNotification(b)
		return append(b, '}')
	}
	return append(b, f.Payload[1:]...) // the payload's fields and closing brace
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

func (c *conn) authTimeout() {
	c.mu.Lock()
	if c.client != nil || c.authTimer == nil {
		c.mu.Unlock()
		return
	}
	c.authTimer = nil
	c.mu.Unlock()
	c.srv.log.Warn("auth timeout", "event", "auth_timeout", "conn", c.id, "ip", c.ip, "transport", "ws")
	c.Close(hub.ReasonAuthTimeout) // no hub client yet
}

// slots are the admission slots a socket holds.
type slots struct {
	ip, user string // "" when not held
	unauth   bool
}

// takeSlots hands over the slots still held, once.
func (c *conn) takeSlots() slots {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.takeSlotsLocked()
}

func (c *conn) takeSlotsLocked() slots {
	var sl slots
	if c.ipHeld {
		sl.ip, c.ipHeld = c.ip, false
	}
	sl.user, c.userHeld = c.userHeld, ""
	sl.unauth, c.unauthHeld = c.unauthHeld, false
	return sl
}

// releaseSlots returns slots. It may wait on Redis (limit.RedisCounter):
// never call it in the poller.
func (c *conn) releaseSlots(sl slots) {
	lim := &c.srv.cfg.Limits
	if sl.unauth {
		c.srv.unauth.Add(-1)
	}
	if sl.ip != "" {
		lim.ConnsPerIP.Release(sl.ip)
	}
	if sl.user != "" {
		lim.ConnsPerUser.Release(sl.user)
	}
}

// attach registers the authenticated socket with the hub. With first-frame
// auth it first takes the per-user slot, which may wait on Redis: it runs in
// the drain goroutine then. With header auth the slot is already held and
// attach does not block (bind runs it in nbio's job queue).
func (c *conn) attach(p auth.Principal, since *notification.Position) {
	s := c.srv
	c.mu.Lock()
	if c.authTimer != nil {
		c.authTimer.Stop()
		c.authTimer = nil
	}
	unauth := c.unauthHeld
	c.unauthHeld = false
	needSlot := s.cfg.Limits.ConnsPerUser != nil && c.userHeld == ""
	c.mu.Unlock()
	if unauth {
		s.unauth.Add(-1)
	}
	key := ""
	if needSlot {
		key = UserKey(p.Tenant, p.User)
		if !s.cfg.Limits.ConnsPerUser.Acquire(key) {
			s.log.Warn("per-user connection cap reached", "event", "limit_exceeded", "scope", "user", "conn", c.id, "tenant", p.Tenant, "user", p.User)
			c.Close(hub.ReasonLimitExceeded)
			return
		}
	}
	c.mu.Lock()
	if c.cleaned || c.closing() {
		// Timed out (4001) or closed while the token was checked.
		c.mu.Unlock()
		if key != "" {
			s.cfg.Limits.ConnsPerUser.Release(key)
		}
		return
	}
	if key != "" {
		c.userHeld = key
	}
	cl, err := s.hub.Attach(c, hub.AttachOptions{
		ConnID:    c.id,
		Transport: "ws",
		Recipient: notification.Recipient{Tenant: p.Tenant, User: p.User, Role: p.Role},
		Since:     since,
		Expires:   p.Expires.Add(s.verifier.Leeway()),
		TokenID:   p.TokenID,
	})
	if err == nil {
		c.client, c.tenant, c.user = cl, p.Tenant, p.User
	}
	c.mu.Unlock()
	if err != nil {
		c.Close(hub.ReasonShutdown)
		return
	}
	s.log.Info("authenticated", "event", "token_validated", "conn", c.id, "tenant", p.Tenant, "user", p.User, "transport", "ws")
}

// handle runs one client message, in the drain goroutine: it may block on
// the verifier (auth) and the event limiter (Redis), never in the poller.
// Requests to the inbox get a goroutine each, so that a slow store does not
// hold up the messages behind them.
func (c *conn) handle(mt websocket.MessageType, data []byte) {
	s := c.srv
	if c.closing() {
		return
	}
	if mt != websocket.TextMessage {
		c.closeWith(hub.ReasonUnsupported)
		return
	}
	if !utf8.Valid(data) {
		c.closeWith(hub.ReasonInvalidUTF8)
		return
	}
	m, err := decodeMessage(data)
	c.mu.Lock()
	authed := c.client != nil
	c.mu.Unlock()
	if err != nil {
		if !authed {
			s.log.Warn("invalid message before auth", "event", "invalid_message", "conn", c.id, "ip", c.ip, "err", err)
			c.closeWith(hub.ReasonUnauthorized)
			return
		}
		var ref []byte
		if m != nil {
			ref = m.Ref
		}
		cid := c.replyError(ref, "invalid_message", "invalid message")
		s.log.Info("invalid message", "event", "invalid_message", "conn", c.id, "correlation_id", cid, "err", err)
		c.invalid++
		if c.invalid > s.cfg.MaxInvalid {
			c.closeWith(hub.ReasonPolicyViolation)
		}
		return
	}
	if f := s.cfg.OnMessage; f != nil {
		f(m.Type)
	}
	if m.Type == msgAuth {
		c.handleAuth(m)
		return
	}
	if !authed {
		s.log.Warn("message before auth", "event", "unauthenticated_message", "conn", c.id, "ip", c.ip)
		c.closeWith(hub.ReasonUnauthorized)
		return
	}
	if !c.allowEvent() {
		c.replyError(m.Ref, "rate_limited", "rate limit exceeded")
		return
	}
	if m.Type == msgPing {
		c.reply(appendRef([]byte(`{"type":"pong"`), m.Ref))
		return
	}
	if c.inflight.Add(1) > int32(s.cfg.MaxInflight) {
		c.inflight.Add(-1)
		s.log.Warn("too many requests in flight", "event", "rate_limited", "conn", c.id)
		c.replyError(m.Ref, "rate_limited", "too many requests")
		return
	}
	go func() {
		defer c.inflight.Add(-1)
		c.handleRequest(m)
	}()
}

// allowEvent applies the per-user event rate limit; sustained abuse closes
// the socket (4029).
func (c *conn) allowEvent() bool {
	lim := &c.srv.cfg.Limits
	if lim.Events == nil {
		return true
	}
	c.mu.Lock()
	tenant, user := c.tenant, c.user
	c.mu.Unlock()
	ok, strikes := lim.Events.Allow(UserKey(tenant, user)) // may wait on Redis
	if ok {
		return true
	}
	if strikes == 1 || strikes%10 == 0 {
		c.srv.log.Warn("rate limited", "event", "rate_limited", "scope", "events", "conn", c.id, "tenant", tenant, "user", user, "strikes", strikes)
	}
	if strikes >= lim.AbuseStrikes {
		c.closeWith(hub.ReasonRateLimited)
	}
	return false
}

// closeWith closes the socket with reason, through the hub when attached.
func (c *conn) closeWith(reason hub.CloseReason) {
	c.mu.Lock()
	cl := c.client
	c.mu.Unlock()
	if cl != nil {
		cl.Close(reason)
		return
	}
	c.Close(reason)
}

// handleAuth runs an auth message: the first one attaches the socket, later
// ones refresh its token. The verifier may block (a JWKS fetch): this runs in
// the drain goroutine, and the messages behind it wait in the queue.
func (c *conn) handleAuth(m *inMessage) {
	s := c.srv
	p, err := s.verifier.Verify(m.Token)
	if err != nil {
		s.log.Warn("token rejected", "event", "token_invalid", "reason", auth.ReasonOf(err), "conn", c.id, "ip", c.ip, "transport", "ws")
		c.closeWith(hub.ReasonUnauthorized)
		return
	}
	c.mu.Lock()
	cl, tenant, user := c.client, c.tenant, c.user
	c.mu.Unlock()
	if cl == nil {
		since := c.querySince
		if m.Since != nil {
			since = &m.since
		}
		c.attach(p, since)
		return
	}
	// In-band refresh: same user and tenant only.
	if p.User != user || p.Tenant != tenant {
		s.log.Warn("refresh with another identity", "event", "forbidden", "conn", c.id, "tenant", tenant, "user", user)
		cl.Close(hub.ReasonUnauthorized)
		return
	}
	cl.Refresh(p.Role, p.TokenID, p.Expires.Add(s.verifier.Leeway()))
	c.reply(appendRef([]byte(`{"type":"ack"`), m.Ref))
}

func (c *conn) handleRequest(m *inMessage) {
	s := c.srv
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
	defer cancel()
	c.mu.Lock()
	r := c.client.Recipient()
	c.mu.Unlock()
	var err error
	switch m.Type {
	case msgMarkRead:
		_, err = s.inbox.MarkRead(ctx, r, m.IDs)
	case msgMarkAllRead:
		_, err = s.inbox.MarkAllRead(ctx, r)
	case msgDelete:
		_, err = s.inbox.Delete(ctx, r, m.ID)
	case msgList:
		var page store.Page
		page, err = s.inbox.List(ctx, r, store.ListQuery{Before: m.Before, Limit: m.Limit, UnreadOnly: m.Unread})
		if err == nil {
			c.reply(appendList(appendRef([]byte(`{"type":"notification:list"`), m.Ref), page))
			return
		}
	}
	switch {
	case err == nil:
		c.reply(appendRef([]byte(`{"type":"ack"`), m.Ref))
	case errors.Is(err, store.ErrNotFound):
		c.replyError(m.Ref, "not_found", "not found")
	default:
		cid := c.replyError(m.Ref, "internal", "unable to process request")
		s.log.Error("request failed", "conn", c.id, "correlation_id", cid, "type", m.Type, "tenant", r.Tenant, "user", r.User, "err", err)
	}
}

// reply sends a complete message that is missing only its closing brace.
func (c *conn) reply(b []byte) {
	b = append(b, '}')
	if err := c.write(websocket.TextMessage, b, false); errors.Is(err, errBufferFull) {
		c.closeWith(hub.ReasonSlowConsumer)
	}
}

// replyError sends a generic error and returns its correlation id, which the
// caller logs with the details.
func (c *conn) replyError(ref []byte, code, msg string) string {
	var raw [8]byte
	_, _ = rand.Read(raw[:])
	cid := hex.EncodeToString(raw[:])
	b := appendRef([]byte(`{"type":"notification:error"`), ref)
	b = append(b, `,"code":"`...)
	b = append(b, code...)
	b = append(b, `","message":"`...)
	b = append(b, msg...)
	b = append(b, `","correlation_id":"`...)
	b = append(b, cid...)
	b = append(b, '"')
	c.reply(b)
	return cid
}

func appendRef(b []byte, ref []byte) []byte {
	if len(ref) == 0 {
		return b
	}
	b = append(b, `,"ref":`...)
	return append(b, ref...)
}

func appendList(b []byte, p store.Page) []byte {
	b = append(b, `,"notifications":[`...)
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
