package metrics

import (
	"context"
	"log/slog"
)

// AuditHandler is a slog.Handler that counts security audit events (records
// with an "event" attribute) into Prometheus before passing records on. All
// audit events become metrics without the code that emits them knowing.
type AuditHandler struct {
	next slog.Handler
	m    *Metrics
}

// NewAuditHandler wraps next.
func NewAuditHandler(next slog.Handler, m *Metrics) *AuditHandler {
	return &AuditHandler{next: next, m: m}
}

// Enabled lets Warn and Info records through to Handle even when next would
// drop them, so that audit events are counted at every log level.
func (h *AuditHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelInfo || h.next.Enabled(ctx, l)
}

// Handle counts the record's event, then logs it if next wants it.
func (h *AuditHandler) Handle(ctx context.Context, r slog.Record) error {
	var event, reason, transport string
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "event":
			event = a.Value.String()
		case "reason":
			reason = a.Value.String()
		case "transport":
			transport = a.Value.String()
		}
		return true
	})
	if event != "" {
		h.m.AuditEvents.WithLabelValues(event).Inc()
		switch event {
		case "token_invalid":
			if reason == "" {
				reason = "unknown"
			}
			h.m.AuthFailures.WithLabelValues(reason).Inc()
		case "api_key_invalid":
			h.m.AuthFailures.WithLabelValues("api_key").Inc()
		case "auth_timeout":
			h.m.AuthFailures.WithLabelValues("auth_timeout").Inc()
		case "origin_rejected":
			if transport == "" {
				transport = "unknown"
			}
			h.m.OriginRejected.WithLabelValues(transport).Inc()
		}
	}
	if !h.next.Enabled(ctx, r.Level) {
		return nil
	}
	return h.next.Handle(ctx, r)
}

// WithAttrs implements slog.Handler. Audit events carry "event" on the
// record itself, so pre-bound attributes need no counting.
func (h *AuditHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &AuditHandler{next: h.next.WithAttrs(as), m: h.m}
}

// WithGroup implements slog.Handler.
func (h *AuditHandler) WithGroup(name string) slog.Handler {
	return &AuditHandler{next: h.next.WithGroup(name), m: h.m}
}
