package sse

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisTickets keeps stream tickets in Redis, so that any node redeems a
// ticket any other issued. Each ticket is one key named after its SHA-256,
// expiring with the ticket, and taken with GETDEL: redeemed once, on one
// node, even when two nodes race for it. For the per-user cap, each user
// has a sorted set of its unspent tickets' hashes scored by their expiry:
// expired ones are dropped before counting, a redeem removes its own. The
// set and the ticket key are written by one script (one Redis, not a
// cluster: Herald has no cluster client).
type RedisTickets struct {
	Client redis.Cmdable // required
	// Prefix of the keys. Default "herald".
	Prefix string
}

// redisTicket is a ticket's value in Redis.
type redisTicket struct {
	User     string   `json:"u"`
	Tenant   string   `json:"t"`
	Role     string   `json:"r,omitempty"`
	Topics   []string `json:"tp,omitempty"` // the token's topic patterns
	TokenID  string   `json:"j,omitempty"`
	IssuedAt int64    `json:"iat,omitempty"` // unix ms; 0: none
	TokenExp int64    `json:"exp,omitempty"` // unix ms; 0: none
	Expires  int64    `json:"x"`             // unix ms
}

func (r *RedisTickets) prefix() string {
	if r.Prefix == "" {
		return "herald"
	}
	return r.Prefix
}

func (r *RedisTickets) ticketKey(key [sha256.Size]byte) string {
	return r.prefix() + ":sse:ticket:" + hex.EncodeToString(key[:])
}

// userKey names a user's counter; the tenant's length keeps "a:b"/"c"
// apart from "a"/"b:c".
func (r *RedisTickets) userKey(tenant, user string) string {
	return r.prefix() + ":sse:tickets:" + strconv.Itoa(len(tenant)) + ":" + tenant + ":" + user
}

// putScript counts the user's unspent tickets and, under the cap, adds the
// new one. KEYS: the user's set, the ticket key. ARGV: now (ms), the
// ticket's expiry (ms), the cap (0: none), the ticket's hash, its value,
// its TTL (ms).
var putScript = redis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local max = tonumber(ARGV[3])
if max > 0 and redis.call('ZCARD', KEYS[1]) >= max then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[6]) then redis.call('PEXPIRE', KEYS[1], ARGV[6]) end
redis.call('SET', KEYS[2], ARGV[5], 'PX', ARGV[6])
return 1`)

// Put implements TicketStore.
func (r *RedisTickets) Put(ctx context.Context, key [sha256.Size]byte, t Ticket, ttl time.Duration, maxPerUser int) error {
	if ttl <= 0 {
		return ErrTicketExpired
	}
	v, err := json.Marshal(redisTicket{User: t.User, Tenant: t.Tenant, Role: t.Role, Topics: t.Topics, TokenID: t.TokenID,
		IssuedAt: unixMilli(t.IssuedAt), TokenExp: unixMilli(t.TokenExp), Expires: t.Expires.UnixMilli()})
	if err != nil {
		return fmt.Errorf("sse: encode ticket: %w", err)
	}
	now := t.Expires.Add(-ttl) // the issuing clock's now: ttl is Expires - now
	ok, err := putScript.Run(ctx, r.Client, []string{r.userKey(t.Tenant, t.User), r.ticketKey(key)},
		now.UnixMilli(), t.Expires.UnixMilli(), maxPerUser, hex.EncodeToString(key[:]), v, ttl.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("sse: ticket store: %w", err)
	}
	if ok == 0 {
		return ErrTooManyUserTickets
	}
	return nil
}

// Take implements TicketStore.
func (r *RedisTickets) Take(ctx context.Context, key [sha256.Size]byte) (Ticket, bool, error) {
	v, err := r.Client.GetDel(ctx, r.ticketKey(key)).Bytes()
	if errors.Is(err, redis.Nil) {
		return Ticket{}, false, nil
	}
	if err != nil {
		return Ticket{}, false, fmt.Errorf("sse: ticket store: %w", err)
	}
	var rt redisTicket
	if err := json.Unmarshal(v, &rt); err != nil {
		return Ticket{}, false, fmt.Errorf("sse: ticket store: decode: %w", err)
	}
	// The ticket is consumed; failing to take it off the user's set only
	// counts it against the cap until it would have expired.
	_ = r.Client.ZRem(ctx, r.userKey(rt.Tenant, rt.User), hex.EncodeToString(key[:])).Err()
	return Ticket{User: rt.User, Tenant: rt.Tenant, Role: rt.Role, Topics: rt.Topics, TokenID: rt.TokenID,
		IssuedAt: fromMilli(rt.IssuedAt), TokenExp: fromMilli(rt.TokenExp), Expires: time.UnixMilli(rt.Expires)}, true, nil
}

func unixMilli(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMilli(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}
