// Package limit holds Herald's admission controls: token-bucket rate limits
// keyed by user, IP or API key, and concurrent-use caps keyed the same way.
// Both are sharded maps whose idle entries are evicted, so a flood of distinct
// keys costs bounded memory. All types are safe for concurrent use.
package limit

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

const shards = 32

// Rate is a token bucket: Per events per second with bursts of Burst. A zero
// Per disables the limit.
type Rate struct {
	Per   float64
	Burst int
}

// Enabled reports whether the rate limits anything.
func (r Rate) Enabled() bool { return r.Per > 0 }

type bucket struct {
	lim  *rate.Limiter
	seen time.Time // last use; guarded by the shard's mu
	// strikes counts consecutive rejections, for "sustained abuse" decisions.
	strikes int
}

// Keyed is a set of token buckets, one per key, created on first use and
// dropped after IdleTTL without use.
type Keyed struct {
	rejected atomic.Int64 // refusals, for metrics
	rate     Rate
	idleTTL  time.Duration
	now      func() time.Time
	seed     maphash.Seed
	sh       [shards]struct {
		mu sync.Mutex
		m  map[string]*bucket
		// sweptAt is when idle buckets were last removed.
		sweptAt time.Time
	}
}

// NewKeyed returns a keyed limiter. now may be nil (time.Now).
func NewKeyed(r Rate, idleTTL time.Duration, now func() time.Time) *Keyed {
	if now == nil {
		now = time.Now
	}
	if idleTTL <= 0 {
		idleTTL = 10 * time.Minute
	}
	k := &Keyed{rate: r, idleTTL: idleTTL, now: now, seed: maphash.MakeSeed()}
	for i := range k.sh {
		k.sh[i].m = make(map[string]*bucket)
	}
	return k
}

// Allow takes one token for key. It returns false when the bucket is empty,
// with the number of consecutive rejections for that key (0 when allowed).
func (k *Keyed) Allow(key string) (ok bool, strikes int) {
	return k.use(key, func(b *bucket, now time.Time) bool { return b.lim.AllowN(now, 1) })
}

// use runs take on key's bucket (created on first use) under its shard's
// lock, and keeps the strike count: reset when take reports true,
// incremented (with Rejected) when false.
func (k *Keyed) use(key string, take func(b *bucket, now time.Time) bool) (ok bool, strikes int) {
	if !k.rate.Enabled() {
		return true, 0
	}
	sh := &k.sh[maphash.String(k.seed, key)%shards]
	now := k.now()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if now.Sub(sh.sweptAt) > k.idleTTL {
		k.sweepLocked(sh.m, now)
		sh.sweptAt = now
	}
	b := sh.m[key]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(rate.Limit(k.rate.Per), max(1, k.rate.Burst))}
		sh.m[key] = b
	}
	b.seen = now
	if take(b, now) {
		b.strikes = 0
		return true, 0
	}
	b.strikes++
	k.rejected.Add(1)
	return false, b.strikes
}

// Check reports whether key has a token, without taking it. A refusal
// counts as Allow's does (strikes, Rejected).
func (k *Keyed) Check(key string) (ok bool, strikes int) {
	return k.use(key, func(b *bucket, now time.Time) bool { return b.lim.TokensAt(now) >= 1 })
}

// Charge takes one token for key, into debt when the bucket is empty: the
// debt is paid off before Check or Allow pass again.
func (k *Keyed) Charge(key string) {
	if k.rate.Enabled() {
		k.use(key, func(b *bucket, now time.Time) bool { b.lim.ReserveN(now, 1); return true })
	}
}

// Rejected is the number of refusals since creation.
func (k *Keyed) Rejected() int64 { return k.rejected.Load() }

func (k *Keyed) sweepLocked(m map[string]*bucket, now time.Time) {
	for key, b := range m {
		if now.Sub(b.seen) > k.idleTTL {
			delete(m, key)
		}
	}
}

// sweep drops idle buckets in every shard.
func (k *Keyed) sweep() {
	now := k.now()
	for i := range k.sh {
		k.sh[i].mu.Lock()
		k.sweepLocked(k.sh[i].m, now)
		k.sh[i].sweptAt = now
		k.sh[i].mu.Unlock()
	}
}

// Len is the number of tracked keys (for tests and stats).
func (k *Keyed) Len() int {
	n := 0
	for i := range k.sh {
		k.sh[i].mu.Lock()
		n += len(k.sh[i].m)
		k.sh[i].mu.Unlock()
	}
	return n
}

// Counter caps concurrent uses per key (connections per IP, per user).
type Counter struct {
	rejected atomic.Int64
	max      int
	seed     maphash.Seed
	sh       [shards]struct {
		mu sync.Mutex
		m  map[string]int
	}
}

// NewCounter returns a counter allowing max concurrent uses per key; max <= 0
// means no cap.
func NewCounter(max int) *Counter {
	c := &Counter{max: max, seed: maphash.MakeSeed()}
	for i := range c.sh {
		c.sh[i].m = make(map[string]int)
	}
	return c
}

// Acquire takes one use of key, or reports false when key is at its cap.
func (c *Counter) Acquire(key string) bool {
	sh := &c.sh[maphash.String(c.seed, key)%shards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if c.max > 0 && sh.m[key] >= c.max {
		c.rejected.Add(1)
		return false
	}
	sh.m[key]++
	return true
}

// Release returns one use of key.
func (c *Counter) Release(key string) {
	sh := &c.sh[maphash.String(c.seed, key)%shards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if n := sh.m[key]; n <= 1 {
		delete(sh.m, key)
	} else {
		sh.m[key] = n - 1
	}
}

// Count is the current number of uses of key.
func (c *Counter) Count(key string) int {
	sh := &c.sh[maphash.String(c.seed, key)%shards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.m[key]
}

// Rejected is the number of refused acquisitions since creation.
func (c *Counter) Rejected() int64 { return c.rejected.Load() }
