package limit

import (
	"sync/atomic"
	"time"
)

// A token bucket in one int64: the generic cell rate algorithm (GCRA)
// keeps only the theoretical arrival time (tat) of the next request, in
// Unix nanoseconds. A bucket of burst tokens refilled at one per interval
// has a token at now when max(tat, now)+interval-now ≤ burst×interval;
// taking it moves tat to max(tat, now)+interval. A zero tat is a full
// bucket. It decides exactly as x/time/rate's Limiter (starting full) for
// one token at a time, in 8 bytes instead of a 96-byte Limiter: these
// buckets are kept per connection and per user (docs/benchmarks.md).

// interval is the time one token takes to come back at per tokens per
// second.
func interval(per float64) int64 { return max(1, int64(float64(time.Second)/per)) }

// gcraNext is tat once a token is taken at now.
func gcraNext(tat, now, iv int64) int64 { return max(tat, now) + iv }

// gcraHas reports whether a token is there at now.
func gcraHas(tat, now, iv int64, burst int) bool {
	return gcraNext(tat, now, iv)-now <= int64(burst)*iv
}

// Bucket is a token bucket for one holder (a connection), safe for
// concurrent use. The zero value is full.
type Bucket struct{ tat atomic.Int64 }

// Allow takes a token of a bucket of burst tokens refilled at per tokens
// per second, at now; it reports false when there is none.
func (b *Bucket) Allow(now time.Time, per float64, burst int) bool {
	n, iv := now.UnixNano(), interval(per)
	for {
		tat := b.tat.Load()
		if !gcraHas(tat, n, iv, burst) {
			return false
		}
		if b.tat.CompareAndSwap(tat, gcraNext(tat, n, iv)) {
			return true
		}
	}
}
