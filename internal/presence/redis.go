package presence

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is the Directory of a cluster. Each user has a hash,
//
//	<prefix>:presence:<len(tenant)>:<tenant>:<user>
//
// with one field per node that holds an entry ("<node id>/<run>": each
// start of a node is a new run), valued "<expiry ms> <transport>=<n> ...".
// A field whose expiry has passed is ignored by every reader; nodes renew
// theirs every TTL/3. Each node also lists the users it holds in the set
// <prefix>:presence:node:<id> and its own expiry in the sorted set
// <prefix>:presence:nodes, so that other nodes find the entries of a node
// that died (Reap). Every command touches one key, or runs a script on one
// key: Redis Cluster needs no hash tags.
type Redis struct {
	rdb    redis.UniversalClient // static
	prefix string                // "<prefix>:presence:"
	node   string                // static: the node id and a random run id
	ttl    time.Duration
}

var (
	_ Directory  = (*Redis)(nil)
	_ Reaper     = (*Redis)(nil)
	_ PutBatcher = (*Redis)(nil)
)

// RedisConfig configures a Redis directory.
type RedisConfig struct {
	Client redis.UniversalClient
	Prefix string // the node's Redis prefix; default "herald"
	NodeID string // required
	TTL    time.Duration
}

// NewRedis returns a Redis directory.
func NewRedis(cfg RedisConfig) (*Redis, error) {
	if cfg.Client == nil || cfg.NodeID == "" {
		return nil, errors.New("presence: a Redis client and a node id are required")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "herald"
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	// Entries are written under this run of the node: a node restarted
	// with the same id finds its previous run's entries like those of any
	// dead node, and they are reaped the same way.
	var run [4]byte
	_, _ = rand.Read(run[:])
	return &Redis{rdb: cfg.Client, prefix: cfg.Prefix + ":presence:", node: cfg.NodeID + "/" + hex.EncodeToString(run[:]),
		ttl: cfg.TTL}, nil
}

// putScript: KEYS[1] user hash; ARGV node, value, now ms, ttl ms. Returns
// 1 when no field (this node's included) was live before.
var putScript = redis.NewScript(`
local now = tonumber(ARGV[3])
local live = 0
local vals = redis.call('HGETALL', KEYS[1])
for i = 1, #vals, 2 do
  local dl = tonumber(string.match(vals[i+1], '^%d+'))
  if dl and dl > now then live = 1 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
if live == 1 then return 0 end
return 1`)

// removeScript: KEYS[1] user hash; ARGV node, now ms. Returns 0 when a
// live field remains, 1 when the node's field was removed and none
// remains, 2 when the node had no field and none remains.
var removeScript = redis.NewScript(`
local now = tonumber(ARGV[2])
local had = redis.call('HDEL', KEYS[1], ARGV[1])
local vals = redis.call('HGETALL', KEYS[1])
for i = 1, #vals, 2 do
  local dl = tonumber(string.match(vals[i+1], '^%d+'))
  if dl and dl > now then return 0 end
end
if had == 1 then return 1 end
return 2`)

func (r *Redis) userKey(k Key) string {
	return r.prefix + strconv.Itoa(len(k.Tenant)) + ":" + k.Tenant + ":" + k.User
}

// parseUserKey is userKey's inverse.
func (r *Redis) parseUserKey(s string) (Key, bool) {
	rest, ok := strings.CutPrefix(s, r.prefix)
	if !ok {
		return Key{}, false
	}
	ns, rest, ok := strings.Cut(rest, ":")
	n, err := strconv.Atoi(ns)
	if !ok || err != nil || n < 0 || len(rest) < n+1 || rest[n] != ':' {
		return Key{}, false
	}
	return Key{Tenant: rest[:n], User: rest[n+1:]}, true
}

// keyTTL is how long keys outlive their last write: longer than a
// field's expiry, so that a dead node's fields are still there, expired,
// when another node reaps them (and emits user.offline).
func (r *Redis) keyTTL() time.Duration { return 3 * r.ttl }

func (r *Redis) nodeSet(node string) string { return r.prefix + "node:" + node }
func (r *Redis) nodesKey() string           { return r.prefix + "nodes" }

// value encodes a field: expiry, then the counts.
func value(expiry time.Time, c Counts) string {
	var b strings.Builder
	b.WriteString(strconv.FormatInt(expiry.UnixMilli(), 10))
	for t, n := range c {
		if n > 0 {
			fmt.Fprintf(&b, " %s=%d", t, n)
		}
	}
	return b.String()
}

// parseValue decodes a field; ok is false when it is malformed.
func parseValue(v string) (expiry int64, c Counts, ok bool) {
	parts := strings.Fields(v)
	if len(parts) == 0 {
		return 0, nil, false
	}
	expiry, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil {
		return 0, nil, false
	}
	c = Counts{}
	for _, p := range parts[1:] {
		t, ns, found := strings.Cut(p, "=")
		n, err := strconv.Atoi(ns)
		if found && err == nil && n > 0 {
			c[t] += n
		}
	}
	return expiry, c, true
}

// Put implements Directory.
func (r *Redis) Put(ctx context.Context, k Key, c Counts) (bool, error) {
	now := time.Now()
	key := r.userKey(k)
	first, err := putScript.Run(ctx, r.rdb, []string{key}, r.node, value(now.Add(r.ttl), c), now.UnixMilli(), r.keyTTL().Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("presence: put: %w", err)
	}
	// Index the entry under this node, and the node itself, at once: a
	// node that dies before its first refresh is reaped too.
	pipe := r.rdb.Pipeline()
	pipe.SAdd(ctx, r.nodeSet(r.node), key)
	pipe.PExpire(ctx, r.nodeSet(r.node), r.keyTTL())
	pipe.ZAdd(ctx, r.nodesKey(), redis.Z{Score: float64(now.Add(r.ttl).UnixMilli()), Member: r.node})
	if _, err := pipe.Exec(ctx); err != nil {
		return false, fmt.Errorf("presence: put: %w", err)
	}
	return first == 1, nil
}

// PutMany implements PutBatcher: Put of every user in one pipeline. The
// entries are indexed under this node first, so that the results of the
// scripts that ran are a prefix of puts.
func (r *Redis) PutMany(ctx context.Context, puts []Put) ([]bool, error) {
	if len(puts) == 0 {
		return nil, nil
	}
	first, err := r.putMany(ctx, puts, false)
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") { // a restarted or flushed Redis
		first, err = r.putMany(ctx, puts, true)
	}
	if err != nil {
		return first, fmt.Errorf("presence: put: %w", err)
	}
	return first, nil
}

// putMany runs one PutMany pipeline; eval sends the script's source
// (after NOSCRIPT) instead of its hash.
func (r *Redis) putMany(ctx context.Context, puts []Put, eval bool) ([]bool, error) {
	now := time.Now()
	keys := make([]any, len(puts))
	for i, p := range puts {
		keys[i] = r.userKey(p.Key)
	}
	pipe := r.rdb.Pipeline()
	pipe.SAdd(ctx, r.nodeSet(r.node), keys...)
	pipe.PExpire(ctx, r.nodeSet(r.node), r.keyTTL())
	pipe.ZAdd(ctx, r.nodesKey(), redis.Z{Score: float64(now.Add(r.ttl).UnixMilli()), Member: r.node})
	const index = 3 // the commands above
	run := putScript.EvalSha
	if eval {
		run = putScript.Eval
	}
	for i, p := range puts {
		run(ctx, pipe, []string{keys[i].(string)}, r.node, value(now.Add(r.ttl), p.Counts), now.UnixMilli(), r.keyTTL().Milliseconds())
	}
	cmds, err := pipe.Exec(ctx)
	first := make([]bool, 0, len(puts))
	for i, cmd := range cmds {
		if cmd.Err() != nil {
			return first, cmd.Err()
		}
		if i >= index {
			n, err := cmd.(*redis.Cmd).Int()
			if err != nil {
				return first, err
			}
			first = append(first, n == 1)
		}
	}
	return first, err
}

// Remove implements Directory.
func (r *Redis) Remove(ctx context.Context, k Key) (bool, error) {
	key := r.userKey(k)
	res, err := removeScript.Run(ctx, r.rdb, []string{key}, r.node, time.Now().UnixMilli()).Int()
	if err != nil {
		return false, fmt.Errorf("presence: remove: %w", err)
	}
	if err := r.rdb.SRem(ctx, r.nodeSet(r.node), key).Err(); err != nil {
		return false, fmt.Errorf("presence: remove: %w", err)
	}
	return res != 0, nil
}

// refreshChunk bounds the commands of one pipeline.
const refreshChunk = 500

// Refresh implements Directory: it renews every entry given and this
// node's own expiry.
func (r *Redis) Refresh(ctx context.Context, entries map[Key]Counts) error {
	now := time.Now()
	expiry := now.Add(r.ttl)
	pipe := r.rdb.Pipeline()
	n := 0
	flush := func() error {
		if n == 0 {
			return nil
		}
		_, err := pipe.Exec(ctx)
		n = 0
		return err
	}
	for k, c := range entries {
		key := r.userKey(k)
		pipe.HSet(ctx, key, r.node, value(expiry, c))
		pipe.PExpire(ctx, key, r.keyTTL())
		pipe.SAdd(ctx, r.nodeSet(r.node), key)
		if n++; n >= refreshChunk {
			if err := flush(); err != nil {
				return fmt.Errorf("presence: refresh: %w", err)
			}
		}
	}
	pipe.ZAdd(ctx, r.nodesKey(), redis.Z{Score: float64(expiry.UnixMilli()), Member: r.node})
	pipe.PExpire(ctx, r.nodeSet(r.node), r.keyTTL())
	n++
	if err := flush(); err != nil {
		return fmt.Errorf("presence: refresh: %w", err)
	}
	return nil
}

// Lookup implements Directory.
func (r *Redis) Lookup(ctx context.Context, tenant string, users []string) ([]Status, error) {
	pipe := r.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(users))
	for i, u := range users {
		cmds[i] = pipe.HGetAll(ctx, r.userKey(Key{tenant, u}))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("presence: lookup: %w", err)
	}
	now := time.Now().UnixMilli()
	out := make([]Status, len(users))
	for i, u := range users {
		sum := Counts{}
		for _, v := range cmds[i].Val() {
			expiry, c, ok := parseValue(v)
			if !ok || expiry <= now {
				continue
			}
			for t, n := range c {
				sum[t] += n
			}
		}
		out[i] = statusOf(u, sum)
	}
	return out, nil
}

// Reap implements Reaper: it removes the entries of every node (run) whose
// expiry has passed, under a lock per dead node so that one node reaps each.
func (r *Redis) Reap(ctx context.Context) ([]Key, error) {
	now := time.Now().UnixMilli()
	dead, err := r.rdb.ZRangeByScore(ctx, r.nodesKey(), &redis.ZRangeBy{Min: "-inf", Max: strconv.FormatInt(now, 10)}).Result()
	if err != nil {
		return nil, fmt.Errorf("presence: reap: %w", err)
	}
	// Never this node while it runs: a late refresh must not reap live entries.
	dead = slices.DeleteFunc(dead, func(n string) bool { return n == r.node })
	var gone []Key
	var errs []error
	for _, node := range dead {
		g, err := r.reapNode(ctx, node, now)
		gone = append(gone, g...)
		errs = append(errs, err)
	}
	return gone, errors.Join(errs...)
}

// reapNode removes one dead node's entries.
func (r *Redis) reapNode(ctx context.Context, node string, now int64) ([]Key, error) {
	ok, err := r.rdb.SetNX(ctx, r.prefix+"reap:"+node, r.node, r.ttl).Result()
	if err != nil || !ok {
		return nil, err
	}
	keys, err := r.rdb.SMembers(ctx, r.nodeSet(node)).Result()
	if err != nil {
		return nil, fmt.Errorf("presence: reap %s: %w", node, err)
	}
	var gone []Key
	for _, key := range keys {
		res, err := removeScript.Run(ctx, r.rdb, []string{key}, node, now).Int()
		if err != nil {
			return gone, fmt.Errorf("presence: reap %s: %w", node, err)
		}
		if k, ok := r.parseUserKey(key); ok && res == 1 {
			gone = append(gone, k)
		}
	}
	if err := r.rdb.Del(ctx, r.nodeSet(node)).Err(); err != nil {
		return gone, err
	}
	return gone, r.rdb.ZRem(ctx, r.nodesKey(), node).Err()
}
