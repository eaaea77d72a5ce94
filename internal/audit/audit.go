// Package audit names Herald's audit events and records them. An audit event
// is a slog record with a fixed "event" key whose value is one of the typed
// constants below; Record writes that record and counts the event through
// the injected Counter (Prometheus, wired by the node). Nothing else counts
// events: a log line that happens to carry an "event" attribute is just a
// log line.
//
// A Recorder is immutable after New and safe for concurrent use. A nil
// *Recorder records nothing.
package audit

import (
	"context"
	"log/slog"
	"reflect"

	"github.com/heraldhq/herald/internal/defaults"
)

// Event is an audit event name. Keep the set in sync with the table in
// docs/operations.md.
type Event string

// Security events: every decision about a client's credentials, origin or
// limits.
const (
	Connect                Event = "connect"                 // a connection was admitted (before auth)
	TokenValidated         Event = "token_validated"         // a connection authenticated
	TokenInvalid           Event = "token_invalid"           // a JWT was refused; "reason" says why
	AuthTimeout            Event = "auth_timeout"            // no valid auth within the deadline
	OriginRejected         Event = "origin_rejected"         // a browser origin is not allowlisted
	RateLimited            Event = "rate_limited"            // a rate limit refused a request
	LimitExceeded          Event = "limit_exceeded"          // a connection cap refused a connection
	InvalidMessage         Event = "invalid_message"         // a malformed client message
	UnauthenticatedMessage Event = "unauthenticated_message" // a request before authentication
	Forbidden              Event = "forbidden"               // an authenticated client asked for what it may not
	ProtocolError          Event = "protocol_error"          // a transport-level protocol violation
	TicketIssued           Event = "ticket_issued"           // an SSE stream ticket was issued
	TicketInvalid          Event = "ticket_invalid"          // an SSE stream ticket was refused
	APIKeyInvalid          Event = "api_key_invalid"         // an API key was refused
	Revoked                Event = "revoked"                 // a user or token was revoked
	RevocationLifted       Event = "revocation_lifted"       // a user revocation was lifted
	DevTokenIssued         Event = "dev_token_issued"        // the --dev page minted a token
	PreferencesSet         Event = "preferences_set"         // an API key replaced a user's preferences
	SubscribeForbidden     Event = "subscribe_forbidden"     // a topic subscription was refused (claim and hook)
)

// Operational events: the state of Herald's dependencies and capacity.
const (
	ConnectionMonitoring Event = "connection_monitoring" // the periodic connection summary
	HighConnectionUsage  Event = "high_connection_usage" // connections over the warning share of the cap
	BrokerUp             Event = "broker_up"
	BrokerDown           Event = "broker_down"
	BrokerProbeLost      Event = "broker_probe_lost"
	BrokerKick           Event = "broker_kick"      // another node lost publishes: catch up
	BrokerKickSent       Event = "broker_kick_sent" // this node lost publishes and told the others
	LiveEventsLost       Event = "live_events_lost" // a committed event may have missed live delivery
	LiveCatchUp          Event = "live_catch_up"    // the store answers again: every client catches up
	LimitDegraded        Event = "limit_degraded"   // a cluster-wide limit fell back to local
	LimitRestored        Event = "limit_restored"
	JWKSRefreshFailed    Event = "jwks_refresh_failed"
	TicketStoreDegraded  Event = "ticket_store_degraded"
	WebhookFailed        Event = "webhook_failed"           // a webhook attempt failed; it will be retried
	WebhookDropped       Event = "webhook_dropped"          // a webhook was given up on (retry window over, or no endpoint)
	WebhookEndpointSet   Event = "webhook_endpoint_set"     // a tenant's webhook endpoint was created or replaced
	WebhookEndpointGone  Event = "webhook_endpoint_deleted" // a tenant's webhook endpoint was deleted
	WebhookURLRefused    Event = "webhook_url_refused"      // an endpoint URL or its address was refused (scheme, link-local, metadata)
	SubscribeAuthFailed  Event = "subscribe_auth_failed"    // the subscribe-authorization hook failed (the topics were denied)
)

// Counter counts recorded events. reason and transport are the values of
// the record's "reason" and "transport" attributes ("" when absent), for
// the metrics that break events down by them.
type Counter interface {
	Count(ev Event, reason, transport string)
}

// Recorder writes audit events to a logger and counts them.
type Recorder struct {
	log     *slog.Logger // static
	counter Counter      // static; may be nil
}

// New returns a Recorder logging to log (nil: nowhere) and counting into c
// (nil: not counted).
func New(log *slog.Logger, c Counter) *Recorder {
	defaults.Logger(&log)
	return &Recorder{log: log, counter: c}
}

// Logger is the logger events are written to.
func (r *Recorder) Logger() *slog.Logger {
	if r == nil {
		return defaults.Discard()
	}
	return r.log
}

// Record counts ev and logs msg at level with the "event" key and attrs
// (key-value pairs, as slog takes them). The event is counted whatever the
// log level.
func (r *Recorder) Record(ctx context.Context, level slog.Level, ev Event, msg string, attrs ...any) {
	if r == nil {
		return
	}
	if r.counter != nil {
		var reason, transport string
		for i := 0; i+1 < len(attrs); i += 2 {
			switch attrs[i] {
			case "reason":
				reason = attrString(attrs[i+1])
			case "transport":
				transport = attrString(attrs[i+1])
			}
		}
		r.counter.Count(ev, reason, transport)
	}
	if !r.log.Enabled(ctx, level) {
		return
	}
	r.log.Log(ctx, level, msg, append([]any{"event", string(ev)}, attrs...)...)
}

func attrString(v any) string {
	switch s := v.(type) {
	case string:
		return s
	case interface{ String() string }:
		return s.String()
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.String { // named string types (auth.Reason)
		return rv.String()
	}
	return ""
}

// Warn records ev at warning level.
func (r *Recorder) Warn(ev Event, msg string, attrs ...any) {
	r.Record(context.Background(), slog.LevelWarn, ev, msg, attrs...)
}

// Info records ev at info level.
func (r *Recorder) Info(ev Event, msg string, attrs ...any) {
	r.Record(context.Background(), slog.LevelInfo, ev, msg, attrs...)
}

// Debug records ev at debug level (still counted).
func (r *Recorder) Debug(ev Event, msg string, attrs ...any) {
	r.Record(context.Background(), slog.LevelDebug, ev, msg, attrs...)
}

// Error records ev at error level.
func (r *Recorder) Error(ev Event, msg string, attrs ...any) {
	r.Record(context.Background(), slog.LevelError, ev, msg, attrs...)
}
