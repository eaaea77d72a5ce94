package ws

import (
	"bytes"

	"github.com/lesismal/nbio/nbhttp/websocket"

	"github.com/heraldhq/herald/internal/audit"
	"github.com/heraldhq/herald/internal/hub"
	"github.com/heraldhq/herald/internal/session"
	"github.com/heraldhq/herald/internal/wspoll"
)

// The engine runs nbio's callbacks inline in the poller (see New), so they
// must not block. What a message or the end of a socket leads to may block:
// the token check of an auth message (a JWKS fetch), the event limiter and
// the connection counters (Redis). So the callbacks only push work onto the
// connection's queue, and a drain goroutine handles it in arrival order. The
// goroutine exists while the queue is not empty: an idle socket has none.
//
// Order is kept per connection: the messages that follow an auth message
// wait until the token is checked and the socket attached, then run as
// authenticated ones (or, if the auth failed, find the socket closing).

// maxQueued bounds the messages waiting to be handled on one socket; with
// Server.maxQueuedBytes it bounds what a client can make us hold while its
// earlier messages wait on the verifier or a limiter.
const maxQueued = 64

// inbound is one piece of work for the drain goroutine.
type inbound struct {
	data []byte // the message: a copy, nbio reuses its buffer
	mt   websocket.MessageType
	end  bool  // the socket closed (err says why); nothing follows
	err  error // with end
}

// enqueue copies a message onto the queue. It runs in the poller.
func (c *conn) enqueue(mt websocket.MessageType, data []byte) {
	if c.closing() {
		return // we sent our close frame: nothing more is handled
	}
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return
	}
	if len(c.inq) >= maxQueued || int(c.inqBytes)+len(data) > c.srv.maxQueuedBytes() {
		authed := c.sess.Authenticated()
		c.mu.Unlock()
		c.overflow(authed, data)
		return
	}
	start := c.pushLocked(inbound{mt: mt, data: bytes.Clone(data)})
	c.mu.Unlock()
	if start {
		go c.drain()
	}
}

// push appends in to the queue and starts the drain goroutine if none runs.
// It does not block.
func (c *conn) push(in inbound) {
	c.mu.Lock()
	start := !c.ended && c.pushLocked(in)
	c.mu.Unlock()
	if start {
		go c.drain()
	}
}

// pushLocked appends in and reports whether the caller must start the drain
// goroutine.
func (c *conn) pushLocked(in inbound) (start bool) {
	c.ended = in.end
	c.inq = append(c.inq, in)
	c.inqBytes += int32(len(in.data))
	start = !c.draining
	c.draining = true
	return start
}

// drain handles the queue until it is empty, then exits.
func (c *conn) drain() {
	for {
		c.mu.Lock()
		if len(c.inq) == 0 {
			c.inq, c.inqBytes, c.draining = nil, 0, false
			c.mu.Unlock()
			return
		}
		in := c.inq[0]
		c.inq[0] = inbound{}
		c.inq = c.inq[1:]
		c.inqBytes -= int32(len(in.data))
		c.mu.Unlock()
		if in.end {
			c.finish(in.err)
		} else {
			c.handle(in.mt, in.data)
		}
	}
}

// overflow answers a message that found the queue full. It does not block.
// Before authentication it closes the socket (4001: only auth is accepted
// until then, and a client has no reason to send much before ready); after,
// the message is refused like one over the concurrency limit.
func (c *conn) overflow(authed bool, data []byte) {
	s := c.srv
	if !authed {
		s.audit.Warn(audit.UnauthenticatedMessage, "too many messages before auth", "conn", c.sess.ID(), "ip", c.sess.IP(),
			"transport", "ws")
		c.sess.Close(hub.ReasonUnauthorized)
		return
	}
	req, _ := decodeMessage(data)
	s.audit.Warn(audit.RateLimited, "too many messages queued", "scope", "messages", "conn", c.sess.ID(), "transport", "ws")
	_ = c.Reply(&session.Reply{Name: req.Name, Ref: req.Ref, Err: session.NewError(session.CodeRateLimited, "too many requests")})
}

// finish frees what an ended socket holds. It runs in the drain goroutine,
// after every message received before the end: releasing a connection slot
// may wait on Redis. The socket leaves the registry last, so that once Active
// no longer counts it, its slots are free again.
func (c *conn) finish(err error) {
	reason := wspoll.CloseReason(err)
	if v := c.closedWith.Load(); v != 0 {
		reason = hub.CloseReason(v - 1) // we closed it: the poller saw our shutdown as EOF
	}
	c.mu.Lock()
	c.cleaned = true
	c.mu.Unlock()
	c.stopAuthTimer()
	c.sess.End(reason) // no-op on the hub client when the hub closed it first
	c.sess.Slot().Release()
	c.srv.reg.Remove(c, nil)
	c.srv.log.Debug("disconnect", "conn", c.sess.ID(), "reason", reason.Label(), "err", err)
}
