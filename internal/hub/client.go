package hub

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/heraldhq/herald/internal/notification"
)

type clientState uint8

const (
	stateReplaying clientState = iota // live events go to pending
	stateLive                         // live events are written at once
	stateClosed
)

type pendingEvent struct {
	out *outbound
	d   *notification.Delivery // explicit-user notifications: this client's delivery
}

// Client is one authenticated connection of a user on this node, whatever its
// transport. Its cursor is the position of the last notification written to
// it; every live event is checked against it, so a duplicate is dropped and a
// gap (an event lost between store and hub) triggers a catch-up from the store.
type Client struct {
	hub     *Hub   // static
	sender  Sender // static
	id      uint64 // static
	started int64  // static: Unix nanoseconds

	mu     sync.Mutex
	r      notification.Recipient // guarded by mu (Role may change on refresh)
	cursor notification.Position  // guarded by mu
	unread int64                  // guarded by mu: last count sent
	unseen int64                  // guarded by mu: last unseen count sent
	// prefs are the user's preferences, nil when they mute nothing (most
	// users; the struct in place cost 48 bytes per idle connection): live
	// broadcasts they mute are not sent. Guarded by mu; read at connect,
	// then kept by preference events. Never modified in place.
	prefs *notification.Preferences
	// unreadVer counts changes of unread; guarded by mu. A recount applies
	// its store read only if no change came in while it ran (recount.go).
	unreadVer uint64
	// pending are the live events buffered while replaying; nil when
	// none (most replays see none: the slice in place cost every idle
	// connection 16 bytes). Guarded by mu.
	pending *[]pendingEvent
	expires int64  // guarded by mu: Unix nanoseconds; 0: never
	tokenID string // guarded by mu: jti of the current token
	// topics are the client's topic subscriptions, without duplicates;
	// guarded by mu, nil once closed (live.go). A slice: a connection holds
	// a few (at most session.Config.MaxTopics), and a map cost ~0.3 KiB more
	// per subscribed connection.
	topics []string

	// The one-byte fields together (the struct is 208 bytes, a size class
	// of its own, for every idle connection), all guarded by mu but
	// transport, which is static.
	transport     uint8 // index in the hub's transportNames
	state         clientState
	reason        CloseReason // set once on close
	recountQueued bool        // waiting in the hub's recount queue
	again         bool        // a catch-up was requested during a replay
	// ready is set once the ready frame is written. Live events go only to
	// ready clients (live.go).
	ready bool
}

// TokenID is the jti of the client's current token.
func (c *Client) TokenID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tokenID
}

// ID is the connection id.
func (c *Client) ID() uint64 { return c.id }

// Recipient is the user this client belongs to.
func (c *Client) Recipient() notification.Recipient {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.r
}

// Position is the client's cursor: the position of the last notification
// written to it.
func (c *Client) Position() notification.Position {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cursor
}

// Closed reports whether the client has been closed, and why.
func (c *Client) Closed() (bool, CloseReason) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state == stateClosed, c.reason
}

// Refresh extends the client's life after an in-band token refresh. The role
// may change with the new token; tenant and user may not (the transport checks).
func (c *Client) Refresh(role, tokenID string, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == stateClosed {
		return
	}
	c.r.Role = role
	c.tokenID = tokenID
	c.setExpiryLocked(expires)
}

// setExpiryLocked records when the client's token expires; the hub's expiry
// sweep closes it then (one loop per hub instead of a timer per client), and
// applyLocked refuses to deliver after it in the meantime.
func (c *Client) setExpiryLocked(expires time.Time) {
	c.expires = 0
	if !expires.IsZero() {
		c.expires = expires.UnixNano()
	}
}

// setPrefsLocked keeps p, allocating only when it mutes something.
func (c *Client) setPrefsLocked(p notification.Preferences) {
	c.prefs = nil
	if !p.Empty() {
		c.prefs = &p
	}
}

// mutesLocked reports whether the user's preferences mute a notification
// of category and typ.
func (c *Client) mutesLocked(category, typ string) bool {
	return c.prefs != nil && c.prefs.Mutes(category, typ)
}

// expiredLocked reports whether the token has expired at now.
func (c *Client) expiredLocked(now time.Time) bool {
	return c.state != stateClosed && c.expires != 0 && now.UnixNano() > c.expires
}

// Close ends the client: it is unregistered and the
// transport closed with reason. Idempotent; the first reason wins.
func (c *Client) Close(reason CloseReason) {
	c.mu.Lock()
	if !c.closeLocked(reason) {
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	c.teardown(reason)
}

// closeLocked marks the client closed; the caller must then call teardown
// (outside of any hub lock) when it returns true.
func (c *Client) closeLocked(reason CloseReason) bool {
	if c.state == stateClosed {
		return false
	}
	c.state = stateClosed
	c.reason = reason
	c.pending = nil
	return true
}

func (c *Client) teardown(reason CloseReason) {
	c.hub.unregister(c)
	c.sender.Close(reason)
	lifetime := time.Duration(time.Now().UnixNano() - c.started)
	if f := c.hub.cfg.Observer.Closed; f != nil {
		f(c.hub.transports.name(c.transport), reason, lifetime)
	}
	c.hub.log.Info("disconnect", "event", "disconnect", "conn", c.id, "transport", c.hub.transports.name(c.transport),
		"tenant", c.r.Tenant, "user", c.r.User, "reason", reason.Label(), "lifetime", lifetime.Round(time.Millisecond).String())
}

// offer takes a live event. It runs under a hub index lock: it must not block
// and must not take hub locks, so a close it decides on is finished in a new
// goroutine.
//
// It reports whether a frame was written now (buffered or dropped events
// report false).
func (c *Client) offer(out *outbound, d *notification.Delivery) (sent bool) {
	c.mu.Lock()
	switch c.state {
	case stateClosed:
	case stateReplaying:
		if c.pendingLen() >= c.hub.cfg.PendingLimit {
			c.closeAsyncLocked(ReasonSlowConsumer)
			break
		}
		c.pushPending(pendingEvent{out, d})
	case stateLive:
		var gap bool
		gap, sent = c.applyLocked(out, d)
		if gap {
			c.state = stateReplaying
			c.pushPending(pendingEvent{out, d})
			c.hub.wg.Add(1)
			go c.catchUp(false, false)
		}
	}
	c.mu.Unlock()
	return sent
}

func (c *Client) closeAsyncLocked(reason CloseReason) {
	if c.closeLocked(reason) {
		go c.teardown(reason)
	}
}

// requestCatchUp re-reads the stream from the cursor (after a broker outage).
func (c *Client) requestCatchUp() {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch c.state {
	case stateClosed:
		return
	case stateReplaying:
		// The running replay may have read its head before the events
		// that were lost: make it read once more before going live.
		c.again = true
		return
	}
	c.state = stateReplaying
	c.hub.wg.Add(1)
	go c.catchUp(false, false)
}

// applyLocked writes a live event if it is next in the client's stream. It
// returns gap when the event is ahead of the cursor by more than one: the
// caller must then catch up from the store before applying it. sent reports
// whether a frame was written.
func (c *Client) applyLocked(out *outbound, d *notification.Delivery) (gap, sent bool) {
	if c.expires != 0 && time.Now().UnixNano() > c.expires {
		c.closeAsyncLocked(ReasonTokenExpired)
		return false, false
	}
	ev := out.ev
	switch ev.Kind {
	case notification.EventNotification:
		if d != nil { // explicit-user notification
			switch {
			case d.Seq <= c.cursor.User:
				return false, false // already sent (replay overlap or duplicate)
			case d.Seq > c.cursor.User+1:
				return true, false
			}
			c.cursor.User = d.Seq
			// d.Unread counts only the user's named notifications; the
			// client's count also includes unread broadcasts, so count up
			// (a replaced notification leaves the counts it was in).
			c.unread += 1 - b2i(d.ReplacedUnread)
			c.unseen += 1 - b2i(d.ReplacedUnseen)
			c.unreadVer++
		} else { // broadcast: advance past it even when the role does not match
			switch {
			case ev.TenantSeq <= c.cursor.Tenant:
				return false, false
			case ev.TenantSeq > c.cursor.Tenant+1:
				return true, false
			}
			c.cursor.Tenant = ev.TenantSeq
			n := ev.Notification
			if !n.Audience.Matches(c.r.Role) || c.mutesLocked(n.Category, n.Type) {
				return false, false
			}
			c.unread++
			c.unseen++
			c.unreadVer++
		}
		f := Frame{Kind: FrameNotification, Payload: out.payload, Position: c.cursor,
			Unread: encodeUnread(c.unread, c.unseen, nil)}
		if d != nil {
			f.Replaces = d.Replaces
		}
		sent = c.sendLocked(f)
	case notification.EventPreferences:
		if ev.Prefs != nil {
			c.setPrefsLocked(*ev.Prefs)
		}
		sent = c.sendLocked(Frame{Kind: FramePreferences, Payload: out.payload})
	case notification.EventSeen:
		c.unread, c.unseen = ev.Unread, ev.Unseen
		c.unreadVer++
		sent = c.sendLocked(Frame{Kind: FrameUnread, Payload: out.unread})
	case notification.EventRead, notification.EventDeleted, notification.EventArchived, notification.EventUnarchived:
		c.unread, c.unseen = ev.Unread, ev.Unseen
		c.unreadVer++
		sent = c.sendLocked(Frame{Kind: userFrames[ev.Kind], Payload: out.payload, Unread: out.unread})
	case notification.EventExpired:
		if n := ev.Notification; n != nil && !n.Audience.Matches(c.r.Role) {
			return false, false // another role's broadcast
		}
		for _, p := range out.expired {
			if !c.sendLocked(Frame{Kind: FrameDeleted, Payload: p}) {
				return false, false
			}
		}
		// The count may have dropped (an unread one expired); only the
		// store knows by how much.
		c.hub.requestRecountLocked(c)
		sent = true
	}
	return false, sent
}

// sendLocked writes f and reports whether it did. A full buffer closes the
// client as a slow consumer; a transport that is already closing is left
// to its session, which ends the client with the real reason (counting
// those as slow consumers made the metric count clients that had left).
func (c *Client) sendLocked(f Frame) bool {
	if c.state == stateClosed {
		return false
	}
	if err := c.sender.Send(f); err != nil {
		if !errors.Is(err, ErrSenderClosed) {
			c.closeAsyncLocked(ReasonSlowConsumer)
		}
		return false
	}
	return true
}

// advanceLocked moves the cursor past a replayed item and reports whether the
// item is new (not yet sent).
func (c *Client) advanceLocked(it *notification.Item) bool {
	if it.Audience.Broadcast() {
		if it.Seq <= c.cursor.Tenant {
			return false
		}
		c.cursor.Tenant = it.Seq
		return true
	}
	if it.Seq <= c.cursor.User {
		return false
	}
	c.cursor.User = it.Seq
	return true
}

// catchUp replays the stream from the cursor (or starts at the head), then
// drains the events buffered meanwhile and goes live. first also sends the
// ready frame. Runs in its own goroutine; counted in hub.wg.
func (c *Client) catchUp(fromHead, first bool) {
	defer c.hub.wg.Done()
	h := c.hub
	select {
	case h.replaySem <- struct{}{}:
	case <-h.ctx.Done():
		return
	}
	defer func() { <-h.replaySem }()
	ctx, cancel := context.WithTimeout(h.ctx, h.cfg.ReplayTimeout)
	defer cancel()

	c.mu.Lock()
	r := c.r
	c.mu.Unlock()

	if first {
		var (
			head   notification.Position
			counts Counts
			err    error
		)
		if fromHead {
			head, counts, err = h.store.HeadCounts(ctx, r)
		} else {
			counts, err = h.store.Counts(ctx, r)
		}
		if err != nil {
			c.fail(err)
			return
		}
		c.mu.Lock()
		if fromHead {
			c.cursor = head
		}
		c.unread, c.unseen = counts.Unread, counts.Unseen
		c.setPrefsLocked(counts.Prefs)
		c.unreadVer++
		ok := c.sendLocked(Frame{Kind: FrameReady, Payload: encodeReady(r, counts, c.cursor)})
		c.ready = ok
		c.mu.Unlock()
		if !ok {
			return
		}
	}

	replayed, resync := 0, false
	for round := 0; ; round++ {
		// A fresh client starts at the head it just read: it was registered
		// before that read, so every event committed later is in its
		// pending buffer, and the first round needs no store read.
		if round > 0 || !fromHead {
			if !c.replay(ctx, r, &replayed, &resync) {
				return
			}
		}
		if c.goLive(round >= maxCatchUpRounds) {
			break
		}
	}
	if replayed > 0 || resync {
		// Replayed frames carry no unread count: send the store's.
		if counts, err := h.store.Counts(ctx, r); err == nil {
			c.mu.Lock()
			c.unread, c.unseen = counts.Unread, counts.Unseen
			c.unreadVer++
			c.sendLocked(Frame{Kind: FrameUnread, Payload: encodeUnread(counts.Unread, counts.Unseen, counts.ByCategory)})
			c.mu.Unlock()
		}
	}
	if f := h.cfg.Observer.Replayed; f != nil && (replayed > 0 || resync) {
		f(replayed, resync)
	}
}

// replay sends everything after the cursor, page by page, or a resync frame
// when there is more than ReplayLimit. It returns false when the client is gone.
func (c *Client) replay(ctx context.Context, r notification.Recipient, replayed *int, resync *bool) bool {
	h := c.hub
	for {
		c.mu.Lock()
		pos, closed := c.cursor, c.state == stateClosed
		c.mu.Unlock()
		if closed {
			return false
		}
		if *replayed >= h.cfg.ReplayLimit {
			head, err := h.store.Head(ctx, r)
			if err != nil {
				c.fail(err)
				return false
			}
			*resync = true
			c.mu.Lock()
			if head.After(c.cursor) {
				c.cursor = head
			}
			ok := c.sendLocked(Frame{Kind: FrameResync, Payload: encodeResync(c.cursor)})
			c.mu.Unlock()
			return ok
		}
		// The head is read before the page: everything up to it is committed
		// and so visible to Since. After the last page the cursor can move to
		// it, past items this client does not see (deleted, expired, another
		// role's broadcasts) that would otherwise look like a gap.
		head, err := h.store.Head(ctx, r)
		if err != nil {
			c.fail(err)
			return false
		}
		if pos.User > head.User || pos.Tenant > head.Tenant {
			// A position from the future (another database, a forged or
			// corrupted cursor): live events would all look like
			// duplicates. Start over at the head and tell the client.
			*resync = true
			c.mu.Lock()
			c.cursor = head
			ok := c.sendLocked(Frame{Kind: FrameResync, Payload: encodeResync(head)})
			c.mu.Unlock()
			return ok
		}
		items, more, err := h.store.Since(ctx, r, pos, h.cfg.ReplayPage)
		if err != nil {
			c.fail(err)
			return false
		}
		c.mu.Lock()
		for i := range items {
			it := &items[i]
			if !c.advanceLocked(it) {
				continue
			}
			if !c.sendLocked(Frame{Kind: FrameNotification, Payload: EncodeNotification(&it.Notification, it.Read), Position: c.cursor}) {
				c.mu.Unlock()
				return false
			}
		}
		if !more {
			c.cursor.User = max(c.cursor.User, head.User)
			c.cursor.Tenant = max(c.cursor.Tenant, head.Tenant)
		}
		c.mu.Unlock()
		*replayed += len(items)
		if !more {
			return true
		}
	}
}

// maxCatchUpRounds bounds replay rounds for one catch-up. A gap that a fresh
// read of the store cannot fill (it should not happen: events are published
// after commit) is then skipped rather than retried forever.
const maxCatchUpRounds = 3

// goLive drains the buffered live events. It returns false when one of them
// shows a gap (the caller replays again) and true once the client is live.
// With force, a gap is skipped over instead.
func (c *Client) goLive(force bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	var pending []pendingEvent
	if c.pending != nil {
		pending = *c.pending
	}
	for i, p := range pending {
		if c.state == stateClosed {
			return true
		}
		if force {
			c.skipGapLocked(p)
		}
		if gap, _ := c.applyLocked(p.out, p.d); gap {
			n := copy(pending, pending[i:])
			clear(pending[n:])
			*c.pending = pending[:n]
			return false
		}
	}
	if c.state == stateClosed {
		return true
	}
	if c.again {
		c.again = false
		if c.pending != nil {
			clear(pending)
			*c.pending = pending[:0]
		}
		return false
	}
	c.pending = nil
	c.state = stateLive
	return true
}

// pendingLen is the number of buffered live events. The caller holds mu.
func (c *Client) pendingLen() int {
	if c.pending == nil {
		return 0
	}
	return len(*c.pending)
}

// pushPending buffers a live event during a replay. The caller holds mu.
func (c *Client) pushPending(p pendingEvent) {
	if c.pending == nil {
		c.pending = new([]pendingEvent)
	}
	*c.pending = append(*c.pending, p)
}

func (c *Client) skipGapLocked(p pendingEvent) {
	ev := p.out.ev
	if ev.Kind != notification.EventNotification {
		return
	}
	if p.d != nil && p.d.Seq > c.cursor.User+1 {
		c.hub.log.Warn("skipping unfillable gap", "conn", c.id, "stream", "user", "from", c.cursor.User, "to", p.d.Seq)
		c.cursor.User = p.d.Seq - 1
	} else if p.d == nil && ev.TenantSeq > c.cursor.Tenant+1 {
		c.hub.log.Warn("skipping unfillable gap", "conn", c.id, "stream", "tenant", "from", c.cursor.Tenant, "to", ev.TenantSeq)
		c.cursor.Tenant = ev.TenantSeq - 1
	}
}

func (c *Client) fail(err error) {
	if c.hub.ctx.Err() != nil {
		return // shutting down: the hub closes clients itself
	}
	c.hub.log.Warn("replay failed", "conn", c.id, "err", err)
	c.Close(ReasonInternalError)
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
