package node

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/internal/api"
	"github.com/heraldhq/herald/internal/broker"
)

// openBroker starts the configured broker: Redis when RedisURL is set (many
// nodes), else the in-process memory broker. It also returns the readiness
// check proving the delivery path and, for Redis, the client the cluster-wide
// limits share.
func (n *Node) openBroker(ctx context.Context) (api.Check, *redis.Client, error) {
	cfg := &n.cfg
	if cfg.RedisURL == "" {
		n.broker = broker.NewMemory(broker.MemoryConfig{}, n.deliver)
		cfg.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "herald_broker_probe_rtt_seconds",
			Help: "Round trip of the last broker probe (publish to own channel and back); 0 with the memory broker."},
			func() float64 { return 0 }))
		return api.Check{Name: "broker", Fn: func(context.Context) error { return nil }}, nil, nil
	}
	rb, err := broker.NewRedis(ctx, broker.RedisConfig{
		URL:     cfg.RedisURL,
		Prefix:  cfg.RedisPrefix,
		Sharded: cfg.RedisSharded,
		Handler: n.deliver,
		// After every (re)subscription live events may have been missed:
		// every client re-reads its stream from its cursor.
		OnResubscribe: n.hub.CatchUpAll,
		NodeID:        cfg.NodeID,
		Logger:        cfg.Logger,
		Audit:         n.audit,
	})
	if err != nil {
		return api.Check{}, nil, fmt.Errorf("redis broker: %w", err)
	}
	n.broker = rb
	reg := cfg.Registry
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "herald_broker_probe_rtt_seconds",
			Help: "Round trip of the last broker probe (publish to own channel and back)."},
			func() float64 { return rb.LastProbeRTT().Seconds() }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "herald_broker_resubscribes_total",
			Help: "Broker (re)subscriptions after the first; each triggers a catch-up of every client."},
			func() float64 { return float64(rb.Stats().Resubscribes) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "herald_broker_publish_failures_total",
			Help: "Events the broker could not publish (clients catch up from the store)."},
			func() float64 { return float64(rb.Stats().PublishErrors) }),
	)
	probe := func(ctx context.Context) error {
		err := rb.Healthy(ctx)
		if err != nil {
			n.metrics.ProbeFailures.WithLabelValues("timeout").Inc()
		}
		return err
	}
	return api.Check{Name: "broker", Fn: probe}, rb.Client(), nil
}
