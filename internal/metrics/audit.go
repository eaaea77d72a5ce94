package metrics

import "github.com/heraldhq/herald/internal/audit"

var _ audit.Counter = (*Metrics)(nil)

// Count implements audit.Counter: every recorded audit event, plus the
// credential and origin refusals broken down by reason and transport. Only
// explicit audit.Recorder calls reach it, never plain log records.
func (m *Metrics) Count(ev audit.Event, reason, transport string) {
	m.AuditEvents.WithLabelValues(string(ev)).Inc()
	switch ev {
	case audit.TokenInvalid:
		if reason == "" {
			reason = "unknown"
		}
		m.AuthFailures.WithLabelValues(reason).Inc()
	case audit.APIKeyInvalid:
		m.AuthFailures.WithLabelValues("api_key").Inc()
	case audit.AuthTimeout:
		m.AuthFailures.WithLabelValues("auth_timeout").Inc()
	case audit.OriginRejected:
		if transport == "" {
			transport = "unknown"
		}
		m.OriginRejected.WithLabelValues(transport).Inc()
	}
}
