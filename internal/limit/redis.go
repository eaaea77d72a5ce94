package limit

// Cluster-wide limits: the same shapes as Keyed and Counter, held in Redis so
// that they apply across every node, and falling back to this node's local
// limits (with a warning) while Redis does not answer.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"hash/maphash"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/internal/audit"
	"github.com/heraldhq/herald/internal/defaults"
)

// RedisClient is what the Redis limits need from a go-redis client
// (*redis.Client, *redis.ClusterClient and redis.UniversalClient fit).
type RedisClient = redis.Cmdable

// breaker sends calls to Redis until one fails, then to the local fallback
// for Cooldown; after it, one call at a time tries Redis again.
type breaker struct {
	cooldown time.Duration
	audit    *audit.Recorder
	what     string
	until    atomic.Int64 // unix ns: local until then
	probing  atomic.Bool  // one call is trying Redis after the cooldown
	degraded atomic.Bool
}

// useRedis reports whether this call should go to Redis; when it returns
// true the caller must report the outcome with done.
func (b *breaker) useRedis() bool {
	if !b.degraded.Load() {
		return true
	}
	if time.Now().UnixNano() < b.until.Load() {
		return false
	}
	return b.probing.CompareAndSwap(false, true)
}

func (b *breaker) done(err error) {
	if err == nil {
		b.probing.Store(false)
		if b.degraded.CompareAndSwap(true, false) {
			b.audit.Info(audit.LimitRestored, "redis is back: cluster-wide limits restored", "limit", b.what)
		}
		return
	}
	b.until.Store(time.Now().Add(b.cooldown).UnixNano())
	b.probing.Store(false)
	if b.degraded.CompareAndSwap(false, true) {
		b.audit.Warn(audit.LimitDegraded, "redis unavailable: falling back to this node's local limits", "limit", b.what, "err", err)
	}
}

func randomID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// RedisKeyedConfig configures a RedisKeyed. Zero values mean the defaults.
type RedisKeyedConfig struct {
	Client RedisClient // required
	// Prefix of the Redis keys (redis_rate adds "rate:" before it). Default
	// "herald:rl". Give each limit its own prefix.
	Prefix string
	Rate   Rate
	// IdleTTL drops strike counts and local buckets unused for it. Default 10 min.
	IdleTTL time.Duration
	// Timeout bounds one Redis check. Default 100 ms.
	Timeout time.Duration
	// Cooldown: after a Redis error, local limits are used for this long
	// before Redis is tried again. Default 1 s.
	Cooldown time.Duration
	Logger   *slog.Logger
	// Audit records audit events; nil: logged through Logger, not counted.
	Audit *audit.Recorder
}

// RedisKeyed is Keyed across the cluster: a GCRA bucket per key in Redis
// (go-redis/redis_rate), with the same rate and burst as the local Keyed it
// falls back to while Redis fails. Strikes (consecutive rejections) are
// counted on this node.
type RedisKeyed struct {
	rejected atomic.Int64 // refusals (Redis or local), for metrics
	rate     Rate
	limit    redis_rate.Limit
	prefix   string
	timeout  time.Duration
	rl       *redis_rate.Limiter
	local    *Keyed // fallback; static
	br       breaker
	strikes  strikeMap
}

// NewRedisKeyed returns a cluster-wide keyed limiter.
func NewRedisKeyed(cfg RedisKeyedConfig) *RedisKeyed {
	if cfg.Prefix == "" {
		cfg.Prefix = "herald:rl"
	}
	if cfg.IdleTTL <= 0 {
		cfg.IdleTTL = 10 * time.Minute
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 100 * time.Millisecond
	}
	if cfg.Cooldown <= 0 {
		cfg.Cooldown = time.Second
	}
	defaults.Logger(&cfg.Logger)
	if cfg.Audit == nil {
		cfg.Audit = audit.New(cfg.Logger, nil)
	}
	k := &RedisKeyed{
		rate:    cfg.Rate,
		prefix:  cfg.Prefix + ":",
		timeout: cfg.Timeout,
		rl:      redis_rate.NewLimiter(cfg.Client),
		local:   NewKeyed(cfg.Rate, cfg.IdleTTL, nil),
		br:      breaker{cooldown: cfg.Cooldown, audit: cfg.Audit, what: cfg.Prefix},
	}
	k.strikes.init(cfg.IdleTTL)
	if cfg.Rate.Enabled() {
		// One token every 1/Per seconds: Rate 1 per Period keeps
		// fractional rates exact.
		k.limit = redis_rate.Limit{Rate: 1, Burst: max(1, cfg.Rate.Burst),
			Period: time.Duration(math.Max(1, float64(time.Second)/cfg.Rate.Per))}
	}
	return k
}

// Allow takes one token for key from the cluster-wide bucket (or the local
// one while Redis fails). It returns false when the bucket is empty, with the
// number of consecutive rejections for that key on this node.
func (k *RedisKeyed) Allow(key string) (ok bool, strikes int) {
	if !k.rate.Enabled() {
		return true, 0
	}
	if !k.br.useRedis() {
		return k.allowLocal(key)
	}
	ctx, cancel := context.WithTimeout(context.Background(), k.timeout)
	res, err := k.rl.Allow(ctx, k.prefix+key, k.limit)
	cancel()
	k.br.done(err)
	if err != nil {
		return k.allowLocal(key)
	}
	if res.Allowed > 0 {
		k.strikes.reset(key)
		return true, 0
	}
	k.rejected.Add(1)
	return false, k.strikes.add(key)
}

// Check reports whether key has a token in the cluster-wide bucket (or
// the local one while Redis fails), without taking it.
func (k *RedisKeyed) Check(key string) (ok bool, strikes int) {
	if !k.rate.Enabled() {
		return true, 0
	}
	if !k.br.useRedis() {
		return k.checkLocal(key)
	}
	ctx, cancel := context.WithTimeout(context.Background(), k.timeout)
	res, err := k.rl.AllowN(ctx, k.prefix+key, k.limit, 0) // cost 0: reads what is left
	cancel()
	k.br.done(err)
	if err != nil {
		return k.checkLocal(key)
	}
	if res.Remaining >= 1 {
		k.strikes.reset(key)
		return true, 0
	}
	k.rejected.Add(1)
	return false, k.strikes.add(key)
}

// Charge takes one token for key. GCRA in Redis has no debt: an empty
// bucket stays empty (the local fallback records the debt).
func (k *RedisKeyed) Charge(key string) {
	if !k.rate.Enabled() {
		return
	}
	if !k.br.useRedis() {
		k.local.Charge(key)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), k.timeout)
	_, err := k.rl.Allow(ctx, k.prefix+key, k.limit)
	cancel()
	k.br.done(err)
	if err != nil {
		k.local.Charge(key)
	}
}

func (k *RedisKeyed) checkLocal(key string) (bool, int) {
	ok, strikes := k.local.Check(key)
	if !ok {
		k.rejected.Add(1)
	}
	return ok, strikes
}

func (k *RedisKeyed) allowLocal(key string) (bool, int) {
	ok, strikes := k.local.Allow(key)
	if !ok {
		k.rejected.Add(1)
	}
	return ok, strikes
}

// Rejected is the number of refusals since creation (metrics.RateLimiter).
func (k *RedisKeyed) Rejected() int64 { return k.rejected.Load() }

// Degraded reports whether the limiter is using local limits (for metrics).
func (k *RedisKeyed) Degraded() bool { return k.br.degraded.Load() }

// strikeMap counts consecutive rejections per key, dropping idle keys.
type strikeMap struct {
	idleTTL time.Duration
	seed    maphash.Seed
	sh      [shards]struct {
		mu      sync.Mutex
		m       map[string]*strikeEntry
		sweptAt time.Time
	}
}

type strikeEntry struct {
	n    int
	seen time.Time
}

func (s *strikeMap) init(idleTTL time.Duration) {
	s.idleTTL = idleTTL
	s.seed = maphash.MakeSeed()
	for i := range s.sh {
		s.sh[i].m = make(map[string]*strikeEntry)
	}
}

func (s *strikeMap) add(key string) int {
	sh := &s.sh[maphash.String(s.seed, key)%shards]
	now := time.Now()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if now.Sub(sh.sweptAt) > s.idleTTL {
		for k, e := range sh.m {
			if now.Sub(e.seen) > s.idleTTL {
				delete(sh.m, k)
			}
		}
		sh.sweptAt = now
	}
	e := sh.m[key]
	if e == nil {
		e = &strikeEntry{}
		sh.m[key] = e
	}
	e.n++
	e.seen = now
	return e.n
}

func (s *strikeMap) reset(key string) {
	sh := &s.sh[maphash.String(s.seed, key)%shards]
	sh.mu.Lock()
	delete(sh.m, key)
	sh.mu.Unlock()
}

// RedisCounterConfig configures a RedisCounter. Zero values mean the defaults.
type RedisCounterConfig struct {
	Client RedisClient // required
	// Prefix of the Redis keys. Default "herald:conns". One per cap.
	Prefix string
	// Max concurrent uses per key across the cluster; <= 0 means no cap
	// (uses are then only counted locally).
	Max int
	// NodeID prefixes this node's members. Default random.
	NodeID string
	// TTL: a use not refreshed for this long expires (a crashed node's uses
	// free up after it). This node refreshes its uses every TTL/3.
	// Default 30 s.
	TTL time.Duration
	// Timeout bounds one Redis call. Default 100 ms.
	Timeout time.Duration
	// Cooldown: after a Redis error, local caps are used for this long.
	// Default 1 s.
	Cooldown time.Duration
	Logger   *slog.Logger
	// Audit records audit events; nil: logged through Logger, not counted.
	Audit *audit.Recorder
}

// RedisCounter is Counter across the cluster: each key is a sorted set of
// uses (members "<node>:<n>", scored by expiry in Redis time), so that a cap
// holds over every node and the uses of a node that died expire by
// themselves. While Redis fails it caps with a local Counter of the same Max
// (per node), and releases each use where it was taken. Close stops the
// refresher.
type RedisCounter struct {
	rejected atomic.Int64
	client   RedisClient
	max      int
	prefix   string
	node     string
	ttl      time.Duration
	timeout  time.Duration
	local    *Counter // fallback and uncapped counting; static
	br       breaker
	seq      atomic.Uint64
	seed     maphash.Seed
	sh       [shards]struct {
		mu   sync.Mutex
		held map[string][]*use // uses taken by this node, by key
	}
	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

type use struct {
	member   string
	local    bool // taken from the local fallback
	released bool // guarded by the shard's mu
}

// acquireScript drops expired uses, then adds one unless the key is at Max.
// KEYS[1] the set; ARGV: member, max, ttl ms.
var acquireScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1`)

// refreshScript extends this node's uses of one key. KEYS[1] the set; ARGV:
// ttl ms, members...
var refreshScript = redis.NewScript(`
local t = redis.call('TIME')
local exp = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], exp, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 0`)

// countScript is the number of live uses of a key.
var countScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')`)

// NewRedisCounter returns a cluster-wide counter and starts its refresher.
func NewRedisCounter(cfg RedisCounterConfig) *RedisCounter {
	if cfg.Prefix == "" {
		cfg.Prefix = "herald:conns"
	}
	if cfg.NodeID == "" {
		cfg.NodeID = randomID()
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 30 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 100 * time.Millisecond
	}
	if cfg.Cooldown <= 0 {
		cfg.Cooldown = time.Second
	}
	defaults.Logger(&cfg.Logger)
	if cfg.Audit == nil {
		cfg.Audit = audit.New(cfg.Logger, nil)
	}
	c := &RedisCounter{
		client: cfg.Client, max: cfg.Max, prefix: cfg.Prefix + ":", node: cfg.NodeID + ":",
		ttl: cfg.TTL, timeout: cfg.Timeout, local: NewCounter(cfg.Max),
		br:   breaker{cooldown: cfg.Cooldown, audit: cfg.Audit, what: cfg.Prefix},
		seed: maphash.MakeSeed(), stop: make(chan struct{}),
	}
	for i := range c.sh {
		c.sh[i].held = make(map[string][]*use)
	}
	if c.max > 0 {
		c.wg.Add(1)
		go c.refresher()
	}
	return c
}

func (c *RedisCounter) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), c.timeout)
}

// Acquire takes one use of key, or reports false when key is at its cap
// (across the cluster; on this node alone while Redis fails).
func (c *RedisCounter) Acquire(key string) bool {
	if c.max <= 0 || !c.br.useRedis() {
		return c.acquireLocal(key)
	}
	u := &use{member: c.node + strconv.FormatUint(c.seq.Add(1), 36)}
	ctx, cancel := c.ctx()
	n, err := acquireScript.Run(ctx, c.client, []string{c.prefix + key}, u.member, c.max, c.ttl.Milliseconds()).Int()
	cancel()
	c.br.done(err)
	if err != nil {
		return c.acquireLocal(key)
	}
	if n == 0 {
		c.rejected.Add(1)
		return false
	}
	c.hold(key, u)
	return true
}

// Rejected is the number of refused acquisitions since creation
// (metrics.RateLimiter).
func (c *RedisCounter) Rejected() int64 { return c.rejected.Load() }

func (c *RedisCounter) acquireLocal(key string) bool {
	if !c.local.Acquire(key) {
		c.rejected.Add(1)
		return false
	}
	c.hold(key, &use{local: true})
	return true
}

func (c *RedisCounter) hold(key string, u *use) {
	sh := &c.sh[maphash.String(c.seed, key)%shards]
	sh.mu.Lock()
	sh.held[key] = append(sh.held[key], u)
	sh.mu.Unlock()
}

// Release returns one use of key taken by this node. A use taken while Redis
// failed is returned locally; one taken in Redis is removed from it (or,
// while Redis fails, left to expire after TTL).
func (c *RedisCounter) Release(key string) {
	sh := &c.sh[maphash.String(c.seed, key)%shards]
	sh.mu.Lock()
	list := sh.held[key]
	if len(list) == 0 {
		sh.mu.Unlock()
		return
	}
	// Prefer returning a local use: those cap this node only while Redis
	// is away, and the Redis ones expire by themselves anyway.
	i := len(list) - 1
	for j := len(list) - 1; j >= 0; j-- {
		if list[j].local {
			i = j
			break
		}
	}
	u := list[i]
	list[i] = list[len(list)-1]
	list[len(list)-1] = nil
	list = list[:len(list)-1]
	if len(list) == 0 {
		delete(sh.held, key)
	} else {
		sh.held[key] = list
	}
	u.released = true
	sh.mu.Unlock()
	if u.local {
		c.local.Release(key)
		return
	}
	if c.br.degraded.Load() {
		return // do not wait on a Redis that fails: the use expires after TTL
	}
	ctx, cancel := c.ctx()
	err := c.client.ZRem(ctx, c.prefix+key, u.member).Err()
	cancel()
	if err != nil {
		c.br.done(err)
	}
}

// Count is the number of live uses of key across the cluster (this node's
// local count while Redis fails).
func (c *RedisCounter) Count(key string) int {
	if c.max <= 0 || !c.br.useRedis() {
		return c.local.Count(key)
	}
	ctx, cancel := c.ctx()
	n, err := countScript.Run(ctx, c.client, []string{c.prefix + key}).Int()
	cancel()
	c.br.done(err)
	if err != nil {
		return c.local.Count(key)
	}
	return n + c.local.Count(key)
}

// Degraded reports whether the counter is using local caps (for metrics).
func (c *RedisCounter) Degraded() bool { return c.br.degraded.Load() }

// Close stops the refresher. Uses still held expire from Redis after TTL.
func (c *RedisCounter) Close() error {
	c.once.Do(func() { close(c.stop) })
	c.wg.Wait()
	return nil
}

func (c *RedisCounter) refresher() {
	defer c.wg.Done()
	t := time.NewTicker(c.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.refresh()
		}
	}
}

// refresh extends every Redis use this node holds. A use released while the
// refresh was in flight could have been re-added by it: it is removed again.
func (c *RedisCounter) refresh() {
	type keyUses struct {
		key  string
		uses []*use
	}
	var all []keyUses
	for i := range c.sh {
		sh := &c.sh[i]
		sh.mu.Lock()
		for key, list := range sh.held {
			var us []*use
			for _, u := range list {
				if !u.local {
					us = append(us, u)
				}
			}
			if len(us) > 0 {
				all = append(all, keyUses{key, us})
			}
		}
		sh.mu.Unlock()
	}
	if len(all) == 0 {
		return
	}
	ttl := strconv.FormatInt(c.ttl.Milliseconds(), 10)
	const batch = 500
	for start := 0; start < len(all); start += batch {
		part := all[start:min(start+batch, len(all))]
		ctx, cancel := context.WithTimeout(context.Background(), max(c.timeout, time.Second))
		_, err := c.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, ku := range part {
				args := make([]any, 0, 1+len(ku.uses))
				args = append(args, ttl)
				for _, u := range ku.uses {
					args = append(args, u.member)
				}
				refreshScript.Eval(ctx, p, []string{c.prefix + ku.key}, args...)
			}
			return nil
		})
		cancel()
		if err != nil {
			c.br.done(err)
		}
		// Uses released meanwhile: make sure they are gone.
		var stale []struct{ key, member string }
		for _, ku := range part {
			sh := &c.sh[maphash.String(c.seed, ku.key)%shards]
			sh.mu.Lock()
			for _, u := range ku.uses {
				if u.released {
					stale = append(stale, struct{ key, member string }{ku.key, u.member})
				}
			}
			sh.mu.Unlock()
		}
		if len(stale) > 0 {
			ctx, cancel := c.ctx()
			_, _ = c.client.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, s := range stale {
					p.ZRem(ctx, c.prefix+s.key, s.member)
				}
				return nil
			})
			cancel()
		}
	}
}
