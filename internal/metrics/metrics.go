// Package metrics defines Herald's Prometheus metrics and the small adapters
// that feed them: hub and API observers, store and broker decorators, and
// the audit.Counter that counts audit events recorded through an
// audit.Recorder. Every collector is
// registered into an injected prometheus.Registerer (tests pass a fresh
// registry). Labels are low-cardinality by construction: transport, close
// reason, event, scope, operation and frame kind come from fixed sets in the
// code; user and tenant ids are never labels.
//
// A Metrics value is safe for concurrent use and immutable after New.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/heraldhq/herald/internal/hub"
)

// Metrics holds every collector.
type Metrics struct {
	ConnsActive    *prometheus.GaugeVec     // transport
	ConnsOpened    *prometheus.CounterVec   // transport
	ConnsClosed    *prometheus.CounterVec   // transport, reason
	ConnDuration   *prometheus.HistogramVec // transport
	Attempts       *prometheus.CounterVec   // transport
	Refused        *prometheus.CounterVec   // transport, reason: admission refusals
	Failed         *prometheus.CounterVec   // transport: admitted, closed before authenticating
	AuditEvents    *prometheus.CounterVec   // event
	AuthFailures   *prometheus.CounterVec   // reason
	OriginRejected *prometheus.CounterVec   // transport
	MessagesIn     *prometheus.CounterVec   // transport, type
	MessagesOut    *prometheus.CounterVec   // kind
	Publish        *prometheus.HistogramVec // outcome: publish request → commit
	Published      prometheus.Counter       // notifications committed
	Deliver        prometheus.Histogram     // commit → written to every local recipient
	StoreOp        *prometheus.HistogramVec // op
	StoreErrors    *prometheus.CounterVec   // op
	BrokerOp       *prometheus.HistogramVec // op
	BrokerErrors   *prometheus.CounterVec   // op
	ReplayItems    prometheus.Histogram
	Resyncs        prometheus.Counter
	ProbeFailures  *prometheus.CounterVec // reason
}

// latencyBuckets cover 100 µs to ~15 s.
var latencyBuckets = prometheus.ExponentialBuckets(0.0001, 2.5, 14)

// New creates and registers every collector, plus the Go runtime and
// process collectors.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		ConnsActive: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "herald_connections_active",
			Help: "Authenticated connections on this node."}, []string{"transport"}),
		ConnsOpened: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "herald_connections_opened_total",
			Help: "Authenticated connections opened."}, []string{"transport"}),
		ConnsClosed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "herald_connections_closed_total",
			Help: "Authenticated connections closed, by close reason."}, []string{"transport", "reason"}),
		ConnDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "herald_connection_duration_seconds",
			Help: "Lifetime of authenticated connections.", Buckets: prometheus.ExponentialBuckets(1, 4, 10)}, []string{"transport"}),
		Attempts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "herald_connection_attempts_total",
			Help: "New connection requests, counted by admission control per transport."}, []string{"transport"}),
		Refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "herald_connection_refusals_total",
			Help: "Connection attempts refused by admission control, by reason."}, []string{"transport", "reason"}),
		Failed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "herald_connection_failures_total",
			Help: "Admitted connections that closed before authenticating."}, []string{"transport"}),
		AuditEvents: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "herald_security_events_total",
			Help: "Security audit events, by event key."}, []string{"event"}),
		AuthFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "herald_auth_failures_total",
			Help: "Rejected tokens and API keys, by reason class."}, []string{"reason"}),
		OriginRejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "herald_origin_rejected_total",
			Help: "Requests refused for their Origin."}, []string{"transport"}),
		MessagesIn: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "herald_messages_received_total",
			Help: "Client messages received, by type."}, []string{"transport", "type"}),
		MessagesOut: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "herald_messages_sent_total",
			Help: "Live frames handed to clients' outbound buffers (notifications, read and deleted events), by kind."}, []string{"kind"}),
		Publish: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "herald_publish_duration_seconds",
			Help:    "Publish API requests from arrival to commit or failure; outcome is ok, client_error (4xx) or server_error (5xx).",
			Buckets: latencyBuckets}, []string{"outcome"}),
		Published: prometheus.NewCounter(prometheus.CounterOpts{Name: "herald_notifications_published_total",
			Help: "Notifications committed."}),
		Deliver: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "herald_delivery_latency_seconds",
			Help: "From a notification's commit to its write to every recipient on this node.", Buckets: latencyBuckets}),
		StoreOp: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "herald_store_operation_duration_seconds",
			Help: "Store operations.", Buckets: latencyBuckets}, []string{"op"}),
		StoreErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "herald_store_errors_total",
			Help: "Store operations that failed for a reason other than not-found or invalid input."}, []string{"op"}),
		BrokerOp: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "herald_broker_operation_duration_seconds",
			Help: "Broker operations.", Buckets: latencyBuckets}, []string{"op"}),
		BrokerErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "herald_broker_errors_total",
			Help: "Broker operations that failed."}, []string{"op"}),
		ReplayItems: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "herald_resume_replayed_items",
			Help: "Notifications replayed per resume or catch-up.", Buckets: prometheus.ExponentialBuckets(1, 4, 8)}),
		Resyncs: prometheus.NewCounter(prometheus.CounterOpts{Name: "herald_resume_resyncs_total",
			Help: "Resumes answered with a resync (gap over the replay limit)."}),
		ProbeFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "herald_broker_probe_failures_total",
			Help: "Readiness checks that found the broker's delivery path down (probe late or subscription lost)."}, []string{"reason"}),
	}
	reg.MustRegister(m.ConnsActive, m.ConnsOpened, m.ConnsClosed, m.ConnDuration, m.Attempts, m.Refused, m.Failed, m.AuditEvents,
		m.AuthFailures, m.OriginRejected, m.MessagesIn, m.MessagesOut, m.Publish, m.Published,
		m.Deliver, m.StoreOp, m.StoreErrors, m.BrokerOp, m.BrokerErrors, m.ReplayItems, m.Resyncs,
		m.ProbeFailures,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Pre-create the series dashboards and alerts rely on, so they read 0
	// rather than "no data" before the first event.
	for _, t := range []string{"ws", "sse", "socketio"} {
		m.ConnsActive.WithLabelValues(t)
		m.ConnsOpened.WithLabelValues(t)
		m.Attempts.WithLabelValues(t)
		m.Failed.WithLabelValues(t)
		for _, r := range []hub.CloseReason{hub.ReasonSlowConsumer, hub.ReasonShutdown, hub.ReasonTokenExpired} {
			m.ConnsClosed.WithLabelValues(t, r.Label())
		}
	}
	for _, o := range []string{"ok", "client_error", "server_error"} {
		m.Publish.WithLabelValues(o)
	}
	m.ProbeFailures.WithLabelValues("timeout")
	return m
}

// HubObserver feeds connection and delivery metrics from the hub.
func (m *Metrics) HubObserver() hub.Observer {
	return hub.Observer{
		Opened: func(transport string) {
			m.ConnsOpened.WithLabelValues(transport).Inc()
			m.ConnsActive.WithLabelValues(transport).Inc()
		},
		Closed: func(transport string, reason hub.CloseReason, lifetime time.Duration) {
			m.ConnsActive.WithLabelValues(transport).Dec()
			m.ConnsClosed.WithLabelValues(transport, reason.Label()).Inc()
			m.ConnDuration.WithLabelValues(transport).Observe(lifetime.Seconds())
		},
		Replayed: func(items int, resync bool) {
			m.ReplayItems.Observe(float64(items))
			if resync {
				m.Resyncs.Inc()
			}
		},
		Delivered: func(kind hub.FrameKind, frames int, committed time.Time) {
			m.MessagesOut.WithLabelValues(kind.String()).Add(float64(frames))
			if !committed.IsZero() {
				m.Deliver.Observe(time.Since(committed).Seconds())
			}
		},
	}
}

// RateLimiter is a limiter whose refusals are counted.
type RateLimiter interface{ Rejected() int64 }

// RegisterLimiter exposes a limiter's refusals as
// herald_rate_limited_total{scope}. Nil limiters (disabled) are skipped.
func RegisterLimiter(reg prometheus.Registerer, scope string, l RateLimiter) {
	if l == nil {
		return
	}
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "herald_rate_limited_total",
		Help: "Requests refused by a rate limit or connection cap, by scope.", ConstLabels: prometheus.Labels{"scope": scope}},
		func() float64 { return float64(l.Rejected()) }))
}
