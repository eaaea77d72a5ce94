package node

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/internal/api"
	"github.com/heraldhq/herald/internal/limit"
	"github.com/heraldhq/herald/internal/metrics"
	"github.com/heraldhq/herald/internal/ws"
)

// Limits configure admission control. Zero values mean the defaults; a
// negative rate or cap disables that limit.
type Limits struct {
	// EventRate: client requests per user (WebSocket events and user API
	// calls together). Default 10/s, burst 30.
	EventRate limit.Rate
	// PublishRate: publish calls per API key. Default 20000/s, burst 40000.
	PublishRate limit.Rate
	// HandshakeRate: unauthenticated WebSocket handshakes per IP. Default 20/s, burst 50.
	HandshakeRate limit.Rate
	// MaxConnsPerIP default 2000; MaxConnsPerUser default 32.
	MaxConnsPerIP   int
	MaxConnsPerUser int
	// MaxUnauthenticated: sockets not yet authenticated. Default MaxConnections/10.
	MaxUnauthenticated int
}

func rateWithDefault(r, def limit.Rate) (limit.Rate, bool) {
	switch {
	case r.Per < 0:
		return r, false
	case r.Per == 0:
		r = def
	}
	if r.Burst <= 0 {
		r.Burst = max(1, int(r.Per))
	}
	return r, true
}

func capWithDefault(n, def int) (int, bool) {
	switch {
	case n < 0:
		return 0, false
	case n == 0:
		n = def
	}
	return n, true
}

// limiters builds the node's admission controls. With a Redis client, the
// per-user event rate, the per-key publish rate and the per-user connection
// cap hold across the cluster (falling back to local limits, with a warning,
// while Redis is unreachable); per-IP limits stay per node. Disabled limits
// are nil interfaces, never typed nils.
func (n *Node) limiters(rdb *redis.Client) (ws.Limits, api.RateLimiter) {
	cfg := &n.cfg
	reg := cfg.Registry
	var out ws.Limits
	var publish api.RateLimiter

	keyed := func(scope string, r limit.Rate, cluster bool) ws.RateLimiter {
		if rdb != nil && cluster {
			k := limit.NewRedisKeyed(limit.RedisKeyedConfig{Client: rdb, Prefix: cfg.RedisPrefix + ":rl:" + scope,
				Rate: r, Logger: cfg.Logger})
			metrics.RegisterLimiter(reg, scope, k)
			return k
		}
		k := limit.NewKeyed(r, 10*time.Minute, nil)
		metrics.RegisterLimiter(reg, scope, k)
		return k
	}
	if r, ok := rateWithDefault(cfg.Limits.EventRate, limit.Rate{Per: 10, Burst: 30}); ok {
		out.Events = keyed("events", r, true)
	}
	if r, ok := rateWithDefault(cfg.Limits.HandshakeRate, limit.Rate{Per: 20, Burst: 50}); ok {
		out.Handshakes = keyed("handshake", r, false)
	}
	if r, ok := rateWithDefault(cfg.Limits.PublishRate, limit.Rate{Per: 20000, Burst: 40000}); ok {
		publish = keyed("publish", r, true)
	}
	if c, ok := capWithDefault(cfg.Limits.MaxConnsPerIP, 2000); ok {
		k := limit.NewCounter(c)
		metrics.RegisterLimiter(reg, "conns_per_ip", k)
		out.ConnsPerIP = k
	}
	if c, ok := capWithDefault(cfg.Limits.MaxConnsPerUser, 32); ok {
		if rdb != nil {
			rc := limit.NewRedisCounter(limit.RedisCounterConfig{Client: rdb, Prefix: cfg.RedisPrefix + ":conns:user",
				Max: c, NodeID: cfg.NodeID, Logger: cfg.Logger})
			n.closers = append(n.closers, rc.Close)
			metrics.RegisterLimiter(reg, "conns_per_user", rc)
			out.ConnsPerUser = rc
		} else {
			k := limit.NewCounter(c)
			metrics.RegisterLimiter(reg, "conns_per_user", k)
			out.ConnsPerUser = k
		}
	}
	maxUnauth := int64(cfg.Limits.MaxUnauthenticated)
	if maxUnauth == 0 {
		maxUnauth = int64(max(1, cfg.MaxConnections/10))
	}
	out.MaxUnauthenticated = max(0, maxUnauth)
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "herald_connections_max",
		Help: "The node's connection limit (MaxConnections)."}, func() float64 { return float64(cfg.MaxConnections) }))
	return out, publish
}
