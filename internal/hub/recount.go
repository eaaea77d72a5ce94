package hub

import (
	"context"
	"sync"
	"time"

	"github.com/heraldhq/herald/internal/notification"
)

// Expired notifications leave the inbox without a new position, and the
// event that says so carries no unread count: the store that swept them
// does not know each user's count of unread broadcasts. So every client
// the event concerns gets a deleted frame per expired id (with
// "expired":true), then its count is read again from the store, by one
// worker per hub that exists only while clients wait for it.
//
// A recount applies its read only if it is exact for the client: the
// client is live, its cursor is the head the read returned (every event
// the count includes has been applied, none is in flight), and its count
// did not change while the read ran. Otherwise it tries again a little
// later, a few times; after that the next notification, read or delete
// corrects the count as usual.

// recountAttempts bounds the reads of one recount.
const recountAttempts = 4

// recounts is the hub's queue of clients whose unread count must be read
// again.
type recounts struct {
	mu      sync.Mutex
	queue   []*Client // guarded by mu
	running bool      // guarded by mu: the worker runs
}

// deliverExpired offers an EventExpired to the clients it concerns: the
// user's (explicit notifications) or the tenant's (a broadcast; applyLocked
// skips other roles).
func (h *Hub) deliverExpired(ev *notification.Event) {
	out := &outbound{ev: ev, expired: make([][]byte, len(ev.IDs))}
	for i, id := range ev.IDs {
		out.expired[i] = encodeExpired(id)
	}
	var targets []*Client
	if ev.User != "" {
		h.forUser(ev.Tenant, ev.User, func(c *Client) { targets = append(targets, c) })
	} else if ev.Notification != nil {
		h.tmu.RLock()
		for c := range h.tenants[ev.Tenant] {
			targets = append(targets, c)
		}
		h.tmu.RUnlock()
	}
	sent := 0
	for _, c := range targets {
		if c.offer(out, nil) {
			sent++
		}
	}
	if f := h.cfg.Observer.Delivered; f != nil {
		f(FrameDeleted, sent, time.Time{})
	}
}

// requestRecountLocked queues c for a recount (once) and starts the worker
// if it is not running. c.mu is held; it never blocks.
func (h *Hub) requestRecountLocked(c *Client) {
	if c.recountQueued || h.ctx.Err() != nil {
		return
	}
	c.recountQueued = true
	h.rc.mu.Lock()
	h.rc.queue = append(h.rc.queue, c)
	start := !h.rc.running
	h.rc.running = true
	h.rc.mu.Unlock()
	if start {
		h.wg.Add(1)
		go h.runRecounts()
	}
}

// runRecounts is the worker: it recounts queued clients until none is left.
func (h *Hub) runRecounts() {
	defer h.wg.Done()
	for {
		h.rc.mu.Lock()
		if len(h.rc.queue) == 0 || h.ctx.Err() != nil {
			h.rc.queue, h.rc.running = nil, false
			h.rc.mu.Unlock()
			return
		}
		c := h.rc.queue[0]
		h.rc.queue[0] = nil
		h.rc.queue = h.rc.queue[1:]
		h.rc.mu.Unlock()
		c.recount()
	}
}

// recount reads c's unread count again and sends it when it is exact (see
// the top of this file).
func (c *Client) recount() {
	h := c.hub
	for attempt := range recountAttempts {
		if attempt > 0 {
			select {
			case <-h.ctx.Done():
				return
			case <-time.After(time.Duration(attempt) * 25 * time.Millisecond):
			}
		}
		c.mu.Lock()
		// A request from now on queues another recount: this read may
		// start before the sweep that made it.
		c.recountQueued = false
		if c.state == stateClosed {
			c.mu.Unlock()
			return
		}
		r, ver := c.r, c.unreadVer
		c.mu.Unlock()
		ctx, cancel := context.WithTimeout(h.ctx, h.cfg.ReplayTimeout)
		head, n, err := h.store.HeadCounts(ctx, r)
		cancel()
		if err != nil {
			h.log.Debug("unread recount failed", "conn", c.id, "err", err)
			return
		}
		c.mu.Lock()
		if c.state == stateLive && c.cursor == head && c.unreadVer == ver {
			c.unread, c.unseen = n.Unread, n.Unseen
			c.unreadVer++
			c.sendLocked(Frame{Kind: FrameUnread, Payload: encodeUnread(n.Unread, n.Unseen, n.ByCategory)})
			c.mu.Unlock()
			return
		}
		closed := c.state == stateClosed
		c.mu.Unlock()
		if closed {
			return
		}
	}
	h.log.Debug("unread recount gave up: the next change corrects the count", "conn", c.id)
}
