// Package periodic runs a node's background work at a fixed interval.
package periodic

import (
	"context"
	"time"
)

// Every calls fn every interval, the first time one interval in, until ctx
// ends. A call that outlasts the interval delays the next (time.Ticker
// drops the ticks it missed).
func Every(ctx context.Context, interval time.Duration, fn func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}
