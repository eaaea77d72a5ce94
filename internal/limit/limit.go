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

// bucket is one key's token bucket (see gcra.go), kept in the map by
// value. Guarded by the shard's mu.
type bucket struct {
	tat  int64 // theoretical arrival time, Unix nanoseconds
	seen int64 // last use, Unix nanoseconds
	// strikes counts consecutive rejections, for "sustained abuse" decisions.
	strikes int
}

// Keyed is a set of token buckets, one per key, created on first use and
// dropped after IdleTTL without use.
type Keyed struct {
	rejected atomic.Int64 // refusals, for metrics
	rate     Rate
	iv       int64 // nanoseconds per token (see gcra.go)
	burst    int
	idleTTL  time.Duration
	now      func() time.Time
	seed     maphash.Seed
	sh       [shards]struct {
		mu sync.Mutex
		m  map[string]bucket
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
	k := &Keyed{rate: r, burst: max(1, r.Burst), idleTTL: idleTTL, now: now, seed: maphash.MakeSeed()}
	if r.Enabled() {
		k.iv = interval(r.Per)
	}
	for i := range k.sh {
		k.sh[i].m = make(map[string]bucket)
	}
	return k
}

// Allow takes one token for key. It returns false when the bucket is empty,
// with the number of consecutive rejections for that key (0 when allowed).
func (k *Keyed) Allow(key string) (ok bool, strikes int) {
	return k.use(key, func(b *bucket, now int64) bool {
		if !gcraHas(b.tat, now, k.iv, k.burst) {
			return false
		}
		b.tat = gcraNext(b.tat, now, k.iv)
		return true
	})
}

// use runs take on key's bucket (created on first use) under its shard's
// lock, and keeps the strike count: reset when take reports true,
// incremented (with Rejected) when false.
func (k *Keyed) use(key string, take func(b *bucket, now int64) bool) (ok bool, strikes int) {
	if !k.rate.Enabled() {
		return true, 0
	}
	sh := &k.sh[maphash.String(k.seed, key)%shards]
	t := k.now()
	now := t.UnixNano()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if t.Sub(sh.sweptAt) > k.idleTTL {
		k.sweepLocked(sh.m, now)
		sh.sweptAt = t
	}
	b := sh.m[key] // the zero bucket is full
	b.seen = now
	ok = take(&b, now)
	if ok {
		b.strikes = 0
	} else {
		b.strikes++
		k.rejected.Add(1)
	}
	sh.m[key] = b
	return ok, b.strikes
}

// Check reports whether key has a token, without taking it. A refusal
// counts as Allow's does (strikes, Rejected).
func (k *Keyed) Check(key string) (ok bool, strikes int) {
	return k.use(key, func(b *bucket, now int64) bool { return gcraHas(b.tat, now, k.iv, k.burst) })
}

// Charge takes one token for key, into debt when the bucket is empty: the
// debt is paid off before Check or Allow pass again.
func (k *Keyed) Charge(key string) {
	if k.rate.Enabled() {
		k.use(key, func(b *bucket, now int64) bool { b.tat = gcraNext(b.tat, now, k.iv); return true })
	}
}

// Rejected is the number of refusals since creation.
func (k *Keyed) Rejected() int64 { return k.rejected.Load() }

func (k *Keyed) sweepLocked(m map[string]bucket, now int64) {
	for key, b := range m {
		if now-b.seen > int64(k.idleTTL) {
			delete(m, key)
		}
	}
}

// sweep drops idle buckets in every shard.
func (k *Keyed) sweep() {
	t := k.now()
	for i := range k.sh {
		k.sh[i].mu.Lock()
		k.sweepLocked(k.sh[i].m, t.UnixNano())
		k.sh[i].sweptAt = t
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
