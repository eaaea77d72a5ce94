package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald/internal/audit"
	"github.com/heraldhq/herald/internal/notification"
	"github.com/heraldhq/herald/internal/store"
)

// attempt sends one claimed row to ep and records the outcome in the
// outbox: delivered rows are deleted, failed ones put back with a backoff,
// those past the retry window dropped.
func (s *Service) attempt(ev store.WebhookEvent, ep *endpoint) {
	if ev.Payload == nil {
		var ok bool
		if ev, ok = s.buildPayload(ev); !ok {
			return
		}
	}
	start := time.Now()
	status, err := s.post(ev, ep)
	s.m.duration.Observe(time.Since(start).Seconds())
	if err == nil {
		s.m.attempts.WithLabelValues("ok").Inc()
		s.finish(ev)
		return
	}
	if s.ctx.Err() != nil { // closing: the attempt was cut short
		s.release(ev, time.Now(), false, "sender stopped")
		return
	}
	s.m.attempts.WithLabelValues("failed").Inc()
	s.m.failures.WithLabelValues(status).Inc()
	now := time.Now()
	due := now.Add(backoff(ev.Attempts+1, s.cfg.RetryBase, s.cfg.RetryMax))
	if due.Sub(ev.CreatedAt) > s.cfg.RetryWindow {
		s.finish(ev)
		s.m.dropped.WithLabelValues("expired").Inc()
		s.audit.Warn(audit.WebhookDropped, "webhook dropped: retry window over", "id", ev.ID, "tenant", ev.Tenant,
			"type", ev.Type, "attempts", ev.Attempts+1, "reason", "expired", "err", err)
		return
	}
	s.release(ev, due, true, err.Error())
	s.audit.Info(audit.WebhookFailed, "webhook attempt failed", "id", ev.ID, "tenant", ev.Tenant, "type", ev.Type,
		"attempts", ev.Attempts+1, "reason", status, "retry_at", due.UTC(), "err", err)
}

// buildPayload decides a notification.unseen row at its first attempt:
// still unseen, its body is built and stored (every retry sends the same);
// otherwise the row is deleted. ok is false when there is nothing to send.
func (s *Service) buildPayload(ev store.WebhookEvent) (store.WebhookEvent, bool) {
	ctx, cancel := storeCtx()
	defer cancel()
	if ev.Type != store.WebhookNotificationUnseen {
		s.log.Error("webhook: row without a body dropped", "id", ev.ID, "type", ev.Type)
		s.finish(ev)
		return ev, false
	}
	it, unseen, err := s.out.Unseen(ctx, notification.Recipient{Tenant: ev.Tenant, User: ev.User}, ev.NotificationID)
	if err != nil {
		s.log.Warn("webhook: unseen check failed", "id", ev.ID, "err", err)
		s.release(ev, time.Now().Add(s.cfg.RetryBase), false, err.Error())
		return ev, false
	}
	if !unseen {
		s.m.unseen.WithLabelValues("seen").Inc()
		s.finish(ev)
		return ev, false
	}
	s.m.unseen.WithLabelValues("unseen").Inc()
	b := Body{ID: ev.ID, Type: ev.Type, CreatedAt: ev.CreatedAt, Tenant: ev.Tenant, User: ev.User,
		Notification: notificationJSON(&it.Notification, it.Read)}
	ev.Payload = b.Encode()
	if err := s.out.SaveWebhookPayload(ctx, ev.ID, s.cfg.Owner, ev.Payload); err != nil {
		s.log.Warn("webhook: payload not saved", "id", ev.ID, "err", err)
		if !errors.Is(err, store.ErrLeaseLost) {
			s.release(ev, time.Now().Add(s.cfg.RetryBase), false, err.Error())
		}
		return ev, false
	}
	return ev, true
}

// post makes one attempt. status is the failure's label: the HTTP status
// code, "timeout", "refused" (a forbidden address) or "network".
func (s *Service) post(ev store.WebhookEvent, ep *endpoint) (status string, err error) {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.AttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.url, bytes.NewReader(ev.Payload))
	if err != nil {
		return "network", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Herald-Webhooks/1")
	if err := ep.signer.SignRequest(req, ev.ID, time.Now(), ev.Payload); err != nil {
		return "network", err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		var ne net.Error
		switch {
		case errors.Is(err, ErrForbiddenAddress):
			s.audit.Warn(audit.WebhookURLRefused, "webhook address refused", "id", ev.ID, "tenant", ev.Tenant, "reason", "forbidden_address")
			return "refused", err
		case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
			return "timeout", err
		}
		return "network", err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, MaxResponseBody))
	_ = resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return "", nil
	}
	return strconv.Itoa(resp.StatusCode), fmt.Errorf("webhook: status %d", resp.StatusCode)
}

// backoff is the delay after the n-th failed attempt: base*2^(n-1), at
// most ceiling, then jittered to between half and all of it.
func backoff(n int, base, ceiling time.Duration) time.Duration {
	d := base
	for i := 1; i < n && d < ceiling; i++ {
		d *= 2
	}
	d = min(d, ceiling)
	half := d / 2
	return half + rand.N(d-half+1)
}

// serviceMetrics are the sender's collectors.
type serviceMetrics struct {
	attempts *prometheus.CounterVec // result
	failures *prometheus.CounterVec // status
	dropped  *prometheus.CounterVec // reason
	unseen   *prometheus.CounterVec // outcome
	deferred prometheus.Counter
	duration prometheus.Histogram
	depth    prometheus.Gauge
	oldest   prometheus.Gauge
}

func newServiceMetrics(reg prometheus.Registerer) *serviceMetrics {
	m := &serviceMetrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "herald_webhook_attempts_total",
			Help: "Webhook delivery attempts by result (ok, failed)."}, []string{"result"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "herald_webhook_failures_total",
			Help: "Failed webhook attempts by status: the HTTP status code, timeout, refused (forbidden address) or network."}, []string{"status"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "herald_webhook_dropped_total",
			Help: "Webhooks given up on, by reason (expired: retry window over; no_endpoint; queue_full: a best-effort event not queued)."}, []string{"reason"}),
		unseen: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "herald_webhook_fallback_checks_total",
			Help: "notification.unseen fallbacks at due time, by outcome (unseen: sent; seen: dropped)."}, []string{"outcome"}),
		deferred: prometheus.NewCounter(prometheus.CounterOpts{Name: "herald_webhook_deferred_total",
			Help: "Claimed webhooks put back because their endpoint was at its concurrency bound."}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "herald_webhook_attempt_duration_seconds",
			Help: "Duration of webhook attempts.", Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10}}),
		depth: prometheus.NewGauge(prometheus.GaugeOpts{Name: "herald_webhook_queue_depth",
			Help: "Webhooks due in the outbox (cluster-wide: every node reports the same table)."}),
		oldest: prometheus.NewGauge(prometheus.GaugeOpts{Name: "herald_webhook_oldest_pending_seconds",
			Help: "Age of the oldest due webhook in the outbox; 0 when none."}),
	}
	for _, r := range []string{"ok", "failed"} {
		m.attempts.WithLabelValues(r)
	}
	for _, r := range []string{"expired", "no_endpoint", "queue_full"} {
		m.dropped.WithLabelValues(r)
	}
	for _, st := range []string{"timeout", "refused", "network"} { // HTTP codes appear when they happen
		m.failures.WithLabelValues(st)
	}
	for _, o := range []string{"unseen", "seen"} {
		m.unseen.WithLabelValues(o)
	}
	if reg != nil {
		reg.MustRegister(m.attempts, m.failures, m.dropped, m.unseen, m.deferred, m.duration, m.depth, m.oldest)
	}
	return m
}

// stats refreshes the backlog gauges.
func (s *Service) stats() {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.StatsInterval)
	defer cancel()
	b, err := s.out.WebhookBacklog(ctx)
	if err != nil {
		return
	}
	s.m.depth.Set(float64(b.Depth))
	age := 0.0
	if !b.Oldest.IsZero() {
		age = max(0, time.Since(b.Oldest).Seconds())
	}
	s.m.oldest.Set(age)
}
