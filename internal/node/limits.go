package node

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald/internal/admission"
	"github.com/heraldhq/herald/internal/limit"
	"github.com/heraldhq/herald/internal/metrics"
)

// Limits configure admission control. Zero values mean the defaults; a
// negative rate or cap disables that limit.
type Limits struct {
	// EventRate: client requests per user (live-transport requests and
	// user API calls together). Default DefaultEventRate.
	EventRate limit.Rate
	// PublishRate: publish calls per API key. Default DefaultPublishRate.
	PublishRate limit.Rate
	// HandshakeRate: unauthenticated handshakes per client address (every
	// transport). Default DefaultHandshakeRate.
	HandshakeRate limit.Rate
	// MaxConnsPerIP and MaxConnsPerUser cap connections of every transport
	// together. Defaults DefaultMaxConnsPerIP and DefaultMaxConnsPerUser.
	MaxConnsPerIP   int
	MaxConnsPerUser int
	// MaxUnauthenticated: connections not yet authenticated. Default MaxConnections/10.
	MaxUnauthenticated int
	// AbuseStrikes: consecutive refused requests after which a live
	// connection is closed (rate_limited). Default admission.DefaultAbuseStrikes.
	AbuseStrikes int
}

// Defaults of Limits.
var (
	DefaultEventRate     = limit.Rate{Per: 10, Burst: 30}
	DefaultPublishRate   = limit.Rate{Per: 20000, Burst: 40000}
	DefaultHandshakeRate = limit.Rate{Per: 20, Burst: 50}
)

// Default connection caps of Limits.
const (
	DefaultMaxConnsPerIP   = 2000
	DefaultMaxConnsPerUser = 32
)

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

// admissionConfig builds the node's admission policy. With a Redis client,
// the per-user request rate, the per-key publish rate and the per-user
// connection cap hold across the cluster (falling back to local limits, with
// a warning, while Redis is unreachable); per-IP limits stay per node.
// Disabled limits are nil interfaces, never typed nils.
func (n *Node) admissionConfig() admission.Config {
	cfg := &n.cfg
	reg := cfg.Registry
	rdb := n.redis
	trusted, _ := admission.ParseTrustedProxies(cfg.TrustedProxies) // checked by Validate
	out := admission.Config{
		MaxConnections: int64(cfg.MaxConnections),
		AbuseStrikes:   cfg.Limits.AbuseStrikes,
		TrustedProxies: admission.IPRule{Trusted: trusted},
		Draining:       n.draining.Load,
		Audit:          n.audit,
		Observer: admission.Observer{
			Attempt: func(t admission.Transport) { n.metrics.Attempts.WithLabelValues(t.String()).Inc() },
			Refused: func(t admission.Transport, r admission.Refusal) {
				n.metrics.Refused.WithLabelValues(t.String(), r.Label()).Inc()
			},
			Failed: func(t admission.Transport) { n.metrics.Failed.WithLabelValues(t.String()).Inc() },
		},
	}
	keyed := func(scope string, r limit.Rate, cluster bool) admission.RateLimiter {
		if rdb != nil && cluster {
			k := limit.NewRedisKeyed(limit.RedisKeyedConfig{Client: rdb, Prefix: cfg.RedisPrefix + ":rl:" + scope,
				Rate: r, Logger: cfg.Logger, Audit: n.audit})
			metrics.RegisterLimiter(reg, scope, k)
			return k
		}
		k := limit.NewKeyed(r, 10*time.Minute, nil)
		metrics.RegisterLimiter(reg, scope, k)
		return k
	}
	if r, ok := rateWithDefault(cfg.Limits.EventRate, DefaultEventRate); ok {
		out.Requests = keyed("events", r, true)
	}
	if r, ok := rateWithDefault(cfg.Limits.HandshakeRate, DefaultHandshakeRate); ok {
		out.Handshakes = keyed("handshake", r, false)
	}
	if r, ok := rateWithDefault(cfg.Limits.PublishRate, DefaultPublishRate); ok {
		out.Publishes = keyed("publish", r, true)
	}
	if c, ok := capWithDefault(cfg.Limits.MaxConnsPerIP, DefaultMaxConnsPerIP); ok {
		k := limit.NewCounter(c)
		metrics.RegisterLimiter(reg, "conns_per_ip", k)
		out.ConnsPerIP = k
	}
	if c, ok := capWithDefault(cfg.Limits.MaxConnsPerUser, DefaultMaxConnsPerUser); ok {
		if rdb != nil {
			rc := limit.NewRedisCounter(limit.RedisCounterConfig{Client: rdb, Prefix: cfg.RedisPrefix + ":conns:user",
				Max: c, NodeID: cfg.NodeID, Logger: cfg.Logger, Audit: n.audit})
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
	return out
}
