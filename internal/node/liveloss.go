package node

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldhq/herald/internal/audit"
)

// liveLossPoll is how often a node waiting to catch its clients up pings the
// store.
const liveLossPoll = 250 * time.Millisecond

// liveLoss catches every client up from the store after a committed event
// may have missed the live path. A client's stream is checked for gaps only
// when its next live event arrives, so without this a lost event would wait
// for the user's next notification (seconds to forever) or a reconnect.
// Two paths lose events without the broker knowing:
//   - a PostgreSQL publish that ends in store.ErrUnavailable may have
//     committed (the COMMIT's answer was lost): the publisher got 503, and
//     the commit hook never ran;
//   - the memory broker did not take an event within the fan-out deadline
//     (the Redis broker recovers its own failures: a kick to every node).
//
// After a loss it waits until the store answers a ping, then catches every
// client up once, however many losses came meanwhile: on every node through
// the broker (a Redis kick), or on this node (hub.CatchUpAll). Safe for
// concurrent use.
type liveLoss struct {
	ping    func(context.Context) error // static: the store's
	catchUp func()                      // static
	audit   *audit.Recorder             // static
	ctx     context.Context             // static: the node's, ends the wait on Shutdown
	wg      *sync.WaitGroup             // static: the node's background loops

	armed atomic.Bool // a catch-up is scheduled
}

// lost records that a committed event may have missed live delivery.
func (l *liveLoss) lost(reason string) {
	if !l.armed.CompareAndSwap(false, true) {
		return
	}
	l.audit.Warn(audit.LiveEventsLost, "a committed event may have missed live delivery; clients catch up from the store once it answers",
		"reason", reason)
	l.wg.Add(1)
	go l.wait(time.Now())
}

// wait pings the store until it answers, then catches every client up.
func (l *liveLoss) wait(since time.Time) {
	defer l.wg.Done()
	t := time.NewTicker(liveLossPoll)
	defer t.Stop()
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(l.ctx, 2*time.Second)
		err := l.ping(ctx)
		cancel()
		if err == nil {
			break
		}
	}
	// Disarm before the catch-up: a loss during it schedules another.
	l.armed.Store(false)
	l.audit.Info(audit.LiveCatchUp, "the store answers: every client catches up from it",
		"waited", time.Since(since).Round(time.Millisecond).String())
	l.catchUp()
}
