package broker

import (
	"sync"
	"time"

	"github.com/heraldhq/herald/internal/notification"
)

// DefaultDeliveryQueue is RedisConfig.DeliveryQueue's default, the depth of
// the memory broker's queue.
const DefaultDeliveryQueue = 8192

// The subscriber reads Redis and the delivery goroutine runs the handler
// (the hub's fan-out), with a bounded queue between them. When they were one
// goroutine, a broadcast to 10k connections (~100 ms of writes) held up every
// message behind it, this node's probes too: under broadcast load the probe
// round trip measured the fan-out's backlog, not Redis, and once it passed
// ProbeTimeout the node declared Redis down, dropped its subscription and
// made every client catch up from the store (a storm of reads on top of the
// overload; seen in herald-bench's broadcast runs as "no redis probe back
// within 3s"). Now the subscriber keeps reading while the handler works, so
// probes come back at Redis's pace.
//
// A full queue makes the subscriber wait (back-pressure: Redis buffers for
// a slow subscriber, up to its client-output-buffer-limit), and the time it
// waits does not count against the probes, which it cannot read meanwhile.

// deliverLoop runs the handler for every queued event, in order, until
// Close closes the queue; events still queued then are dropped, as are
// those still in Redis.
func (r *Redis) deliverLoop() {
	defer r.dwg.Done()
	for ev := range r.deliver {
		if r.ctx.Err() == nil {
			r.cfg.Handler(ev)
		}
	}
}

// queueDelivery hands ev to the delivery goroutine, waiting for room.
func (r *Redis) queueDelivery(ev *notification.Event) {
	select {
	case r.deliver <- ev:
		return
	default:
	}
	r.stall.begin()
	defer r.stall.end()
	select {
	case r.deliver <- ev:
	case <-r.ctx.Done():
	}
}

// stallClock records when the subscriber last waited for room in the
// delivery queue, so that probe deadlines skip that time.
type stallClock struct {
	mu    sync.Mutex
	start time.Time // zero when not waiting
	ended time.Time // when the last wait ended
}

func (s *stallClock) begin() {
	s.mu.Lock()
	s.start = time.Now()
	s.mu.Unlock()
}

func (s *stallClock) end() {
	s.mu.Lock()
	s.start, s.ended = time.Time{}, time.Now()
	s.mu.Unlock()
}

// stalled reports whether the subscriber is waiting now.
func (s *stallClock) stalled() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.start.IsZero()
}

// since is how long a probe sent at sent has waited, not counting the time
// before the last stall ended (the probe may have been readable, unread).
func (s *stallClock) since(sent time.Time) time.Duration {
	s.mu.Lock()
	ended := s.ended
	s.mu.Unlock()
	if ended.After(sent) {
		sent = ended
	}
	return time.Since(sent)
}
