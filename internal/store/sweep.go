package store

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"time"

	"github.com/heraldhq/herald/internal/notification"
	"github.com/heraldhq/herald/internal/periodic"
)

// The expiry sweep, as both engines run it: a background goroutine that
// every SweepInterval removes expired notifications (fixing the counters
// that include them) and stale idempotency records, in transactions of at
// most sweepBatch notifications. The engines differ only in how one such
// transaction runs (sqlite_sweep.go, postgres_sweep.go).

// sweeper returns an engine's sweeper goroutine: every interval it calls
// sweep (the engine's sweepNow) and logs what it did. It returns when ctx
// (cancelled by Close) ends.
func sweeper(interval time.Duration, log *slog.Logger, sweep func(context.Context) (int, error)) func(ctx context.Context) {
	return func(ctx context.Context) {
		periodic.Every(ctx, interval, func() {
			n, err := sweep(ctx)
			switch {
			case err != nil && ctx.Err() == nil && !errors.Is(err, ErrClosed):
				log.Warn("store: sweep failed", "swept", n, "err", err)
			case n > 0:
				log.Debug("store: swept expired notifications", "swept", n)
			}
		})
	}
}

// sweepBatches runs batch, one sweep transaction that removes up to
// sweepBatch notifications, until one removes fewer or fails. It returns the
// number removed in all.
func sweepBatches(batch func() (int, error)) (int, error) {
	total := 0
	for {
		n, err := batch()
		total += n
		if err != nil || n < sweepBatch {
			return total, err
		}
	}
}

// sweepResult is one sweep transaction's outcome: how many notifications
// it removed, and the EventExpired events that tell the hubs.
type sweepResult struct {
	n      int
	events []*notification.Event
}

// expired is an expired notification a sweep removes.
type expired struct {
	id       string
	tenant   string
	audience notification.Audience
	category string
	typ      string
}

// expiredEvents builds the events of a sweep: one per broadcast, one per
// user of the explicit ones (users: tenant and user → that user's expired
// ids, in sweep order).
func expiredEvents(broadcasts []expired, users map[[2]string][]string) []*notification.Event {
	evs := make([]*notification.Event, 0, len(broadcasts)+len(users))
	for _, e := range broadcasts {
		evs = append(evs, &notification.Event{Kind: notification.EventExpired, Tenant: e.tenant, IDs: []string{e.id},
			Notification: &notification.Notification{ID: e.id, Tenant: e.tenant, Audience: e.audience}})
	}
	keys := make([][2]string, 0, len(users))
	for k := range users {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, comparePair)
	for _, k := range keys {
		evs = append(evs, &notification.Event{Kind: notification.EventExpired, Tenant: k[0], User: k[1], IDs: users[k]})
	}
	return evs
}
