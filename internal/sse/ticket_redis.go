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
// node, even when two nodes race for it. Each user has a counter of
// outstanding tickets for the per-user cap; it expires a TTL after the
// user's last ticket, and a redeem takes one off.
type RedisTickets struct {
	Client redis.Cmdable // required
	// Prefix of the keys. Default "herald".
	Prefix string
}

// redisTicket is a ticket's value in Redis.
type redisTicket struct {
	User     string `json:"u"`
	Tenant   string `json:"t"`
	Role     string `json:"r,omitempty"`
	TokenID  string `json:"j,omitempty"`
	IssuedAt int64  `json:"iat,omitempty"` // unix ms; 0: none
	TokenExp int64  `json:"exp,omitempty"` // unix ms; 0: none
	Expires  int64  `json:"x"`             // unix ms
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

// decrPositive takes one off a counter that exists and is positive.
var decrPositive = redis.NewScript(`
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then return redis.call('DECR', KEYS[1]) end
return 0`)

// Put implements TicketStore.
func (r *RedisTickets) Put(ctx context.Context, key [sha256.Size]byte, t Ticket, ttl time.Duration, maxPerUser int) error {
	if ttl <= 0 {
		return ErrTicketExpired
	}
	v, err := json.Marshal(redisTicket{User: t.User, Tenant: t.Tenant, Role: t.Role, TokenID: t.TokenID,
		IssuedAt: unixMilli(t.IssuedAt), TokenExp: unixMilli(t.TokenExp), Expires: t.Expires.UnixMilli()})
	if err != nil {
		return fmt.Errorf("sse: encode ticket: %w", err)
	}
	uk := r.userKey(t.Tenant, t.User)
	var n *redis.IntCmd
	if _, err := r.Client.Pipelined(ctx, func(p redis.Pipeliner) error {
		n = p.Incr(ctx, uk)
		p.PExpire(ctx, uk, ttl)
		return nil
	}); err != nil {
		return fmt.Errorf("sse: ticket store: %w", err)
	}
	if maxPerUser > 0 && n.Val() > int64(maxPerUser) {
		if err := decrPositive.Run(ctx, r.Client, []string{uk}).Err(); err != nil {
			return fmt.Errorf("sse: ticket store: %w", err)
		}
		return ErrTooManyUserTickets
	}
	if err := r.Client.Set(ctx, r.ticketKey(key), v, ttl).Err(); err != nil {
		return fmt.Errorf("sse: ticket store: %w", err)
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
	// The ticket is consumed; a failure to count it off only delays the
	// user's next ticket until the counter expires.
	_ = decrPositive.Run(ctx, r.Client, []string{r.userKey(rt.Tenant, rt.User)}).Err()
	return Ticket{User: rt.User, Tenant: rt.Tenant, Role: rt.Role, TokenID: rt.TokenID,
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
