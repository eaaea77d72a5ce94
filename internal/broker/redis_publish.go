package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/internal/notification"
)

// message is one channel's payload of a published event.
type message struct {
	part    int // partition: channel = channels[part]
	payload []byte
}

// route returns the messages that carry ev: one per partition it concerns.
// A user's explicit notifications, reads and deletions go through the user's
// partition, so one stream's events keep their order on one channel; a
// broadcast goes through the tenant's partition. An explicit-user event for
// several users is split by partition, each part listing only the
// deliveries of that partition's users; the rest of the message is encoded
// once.
func (r *Redis) route(ev *notification.Event) []message {
	n := r.cfg.Partitions
	switch ev.Kind {
	case notification.EventLive:
		if ev.Live == nil {
			return nil
		}
		return []message{{partitionOf(n, ev.Tenant, "", false), encodeLive(ev.Live)}}
	case notification.EventNotification:
		if ev.Notification != nil && !ev.Notification.Audience.Broadcast() && len(ev.Deliveries) > 0 {
			return r.routeDeliveries(ev)
		}
		return []message{{partitionOf(n, ev.Tenant, "", false), encodeEvent(ev)}}
	case notification.EventExpired:
		if ev.User == "" { // a broadcast: through the tenant's partition, like its notification
			return []message{{partitionOf(n, ev.Tenant, "", false), encodeEvent(ev)}}
		}
	case notification.EventRevoke:
		if ev.User == "" && ev.Tenant == "" {
			return []message{{partitionOf(n, ev.TokenID, "", false), encodeEvent(ev)}}
		}
	}
	return []message{{partitionOf(n, ev.Tenant, ev.User, true), encodeEvent(ev)}}
}

func (r *Redis) routeDeliveries(ev *notification.Event) []message {
	n := r.cfg.Partitions
	first := partitionOf(n, ev.Tenant, ev.Deliveries[0].User, true)
	parts := make([]int, len(ev.Deliveries))
	single := true
	for i := range ev.Deliveries {
		parts[i] = partitionOf(n, ev.Tenant, ev.Deliveries[i].User, true)
		single = single && parts[i] == first
	}
	if single {
		return []message{{first, encodeEvent(ev)}}
	}
	head := appendEventHead(make([]byte, 0, 256), ev)
	groups := make(map[int][]notification.Delivery)
	var order []int // partitions in first-appearance order
	for i, p := range parts {
		if _, ok := groups[p]; !ok {
			order = append(order, p)
		}
		groups[p] = append(groups[p], ev.Deliveries[i])
	}
	out := make([]message, 0, len(order))
	for _, p := range order {
		ds := groups[p]
		b := make([]byte, len(head), len(head)+1+len(ds)*24)
		copy(b, head)
		out = append(out, message{p, appendDeliveries(b, ds)})
	}
	return out
}

// Publish hands ev to every node, including this one: it queues ev's
// messages for Redis and returns at once, like the memory broker. It never
// waits on Redis, so the store's writer can call it in commit order: each
// partition's messages are sent by one flusher, in the order they were
// queued, so a stream published in order by one caller arrives in order.
// It fails at once with ErrUnavailable while Redis is known to be down (the
// subscription is lost or a probe overdue, and a publish failed within the
// last second), and with ErrQueueFull when Redis cannot keep up.
//
// A publish that fails (here, or later in its flusher) is not retried: it
// was committed, and the broker makes every node catch its clients up from
// the store once Redis answers again (OnResubscribe: on resubscription, and
// through a "kick" message this node sends when its publishes failed), so a
// failure only delays live delivery.
func (r *Redis) Publish(ctx context.Context, ev *notification.Event) error {
	return r.enqueue(ctx, ev, nil)
}

// PublishSync is Publish that also waits until Redis accepted every message
// of ev, for at most PublishTimeout (or until ctx ends).
func (r *Redis) PublishSync(ctx context.Context, ev *notification.Event) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.PublishTimeout)
	defer cancel()
	return r.enqueue(ctx, ev, make(chan error, pubFlushers))
}

// ErrQueueFull is returned by Publish when the queue of a flusher is full
// (Redis is slow or unreachable and the failure is not yet detected).
var ErrQueueFull = errors.New("broker: redis publish queue full")

func (r *Redis) enqueue(ctx context.Context, ev *notification.Event, done chan error) error {
	queued, err := r.queue(ev, done)
	if err != nil || done == nil {
		return err
	}
	for ; queued > 0; queued-- {
		select {
		case err := <-done:
			if err != nil {
				return fmt.Errorf("broker: redis publish: %w", err)
			}
		case <-ctx.Done():
			return fmt.Errorf("broker: redis publish: %w", ctx.Err())
		case <-r.ctx.Done():
			return ErrClosed
		}
	}
	return nil
}

// queue hands ev's messages to their flushers and returns how many requests
// it queued. It holds qmu's read lock so that Close, which takes the write
// lock, knows that nothing is queued after the flushers' final drain.
func (r *Redis) queue(ev *notification.Event, done chan error) (int, error) {
	r.qmu.RLock()
	defer r.qmu.RUnlock()
	if r.closed.Load() {
		return 0, ErrClosed
	}
	if ev == nil {
		return 0, nil
	}
	if (!r.subscribed.Load() || r.probeLate.Load()) && time.Now().UnixNano()-r.lastFailAt.Load() < int64(time.Second) {
		// Not a new attempt: lastFailAt stays, so one real attempt a second
		// finds out when Redis is back.
		r.publishErrs.Add(1)
		r.failSeq.Add(1)
		return 0, ErrUnavailable
	}
	msgs := r.route(ev)
	var parts [pubFlushers][]message
	if len(msgs) == 1 {
		parts[msgs[0].part%pubFlushers] = msgs
	} else {
		for _, m := range msgs {
			f := m.part % pubFlushers
			parts[f] = append(parts[f], m)
		}
	}
	queued := 0
	for f := range parts {
		if len(parts[f]) == 0 {
			continue
		}
		select {
		case r.pubq[f] <- &pubReq{msgs: parts[f], done: done}:
			queued++
		default:
			r.failed()
			return queued, fmt.Errorf("%w (%d queued)", ErrQueueFull, pubQueue)
		}
	}
	return queued, nil
}

// pubReq is one event's messages for one flusher.
type pubReq struct {
	msgs []message
	done chan error // PublishSync only: buffered for every part
}

// Batching bounds.
const (
	pubFlushers = 4    // flushers; partition p is sent by flusher p%pubFlushers
	pubBatchMax = 256  // messages per pipeline (soft: a request is never split)
	pubQueue    = 8192 // queued requests per flusher
)

// flusher sends its partitions' queued messages, in order, one pipeline at
// a time. At Close it sends what is queued (within PublishTimeout) and stops.
func (r *Redis) flusher(q chan *pubReq) {
	defer r.fwg.Done()
	batch := make([]*pubReq, 0, pubBatchMax)
	cmds := make([]*redis.IntCmd, 0, pubBatchMax)
	for {
		stopping := false
		select {
		case <-r.stopFlush:
			stopping = true
			select {
			case req := <-q:
				batch = append(batch[:0], req)
			default:
				return
			}
		case req := <-q:
			batch = append(batch[:0], req)
		}
		n := len(batch[0].msgs)
	drain:
		for n < pubBatchMax || stopping {
			select {
			case req := <-q:
				batch = append(batch, req)
				n += len(req.msgs)
			default:
				break drain
			}
		}
		r.flush(batch, cmds)
		clear(batch)
		if stopping {
			return
		}
	}
}

func (r *Redis) flush(batch []*pubReq, cmds []*redis.IntCmd) {
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.PublishTimeout)
	defer cancel()
	pipe := r.client.Pipeline()
	cmds = cmds[:0]
	for _, req := range batch {
		for _, m := range req.msgs {
			cmds = append(cmds, r.publish(ctx, pipe, r.channels[m.part], m.payload))
		}
	}
	_, _ = pipe.Exec(ctx) // errors are per command
	i := 0
	for _, req := range batch {
		var err error
		for range req.msgs {
			if e := cmds[i].Err(); e != nil && err == nil {
				err = e
			}
			i++
		}
		if err != nil {
			r.failed()
		} else {
			r.published.Add(uint64(len(req.msgs)))
		}
		if req.done != nil {
			req.done <- err
		}
	}
	clear(cmds)
}

func (r *Redis) failed() {
	r.publishErrs.Add(1)
	r.failSeq.Add(1)
	r.lastFailAt.Store(time.Now().UnixNano())
}

func (r *Redis) publish(ctx context.Context, c redis.Cmdable, channel string, payload []byte) *redis.IntCmd {
	if r.cfg.Sharded {
		return c.SPublish(ctx, channel, payload)
	}
	return c.Publish(ctx, channel, payload)
}
