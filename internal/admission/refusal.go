package admission

import "net/http"

// Refusal is why admission said no. Like hub.CloseReason it is one table
// driving the HTTP status, the Retry-After advice, the log scope and the
// metric label; session maps it onto client error codes.
type Refusal uint8

// Refusals.
const (
	RefusedNone            Refusal = iota
	RefusedDraining                // the node is shutting down
	RefusedNodeFull                // the node-wide connection cap
	RefusedPerIP                   // too many connections from this address
	RefusedPerUser                 // too many connections for this user
	RefusedHandshakeRate           // too many unauthenticated handshakes from this address
	RefusedUnauthenticated         // too many sockets waiting to authenticate
	RefusedRequestRate             // the per-user request rate
	RefusedPublishRate             // the per-key publish rate
	refusalCount
)

type refusalInfo struct {
	label      string // metric label and log scope
	status     int
	retryAfter string // seconds
	message    string // generic, safe to show a client
}

var refusalTable = [refusalCount]refusalInfo{
	RefusedNone:            {"none", http.StatusOK, "", ""},
	RefusedDraining:        {"draining", http.StatusServiceUnavailable, "1", "server shutting down"},
	RefusedNodeFull:        {"node_full", http.StatusServiceUnavailable, "5", "too many connections"},
	RefusedPerIP:           {"per_ip", http.StatusTooManyRequests, "5", "too many connections from this address"},
	RefusedPerUser:         {"per_user", http.StatusTooManyRequests, "5", "too many connections for this user"},
	RefusedHandshakeRate:   {"handshake", http.StatusTooManyRequests, "1", "too many requests"},
	RefusedUnauthenticated: {"unauthenticated", http.StatusServiceUnavailable, "1", "server busy"},
	RefusedRequestRate:     {"events", http.StatusTooManyRequests, "1", "rate limit exceeded"},
	RefusedPublishRate:     {"publish", http.StatusTooManyRequests, "1", "rate limit exceeded"},
}

func (r Refusal) info() refusalInfo {
	if r >= refusalCount {
		return refusalInfo{"unknown", http.StatusServiceUnavailable, "1", "unavailable"}
	}
	return refusalTable[r]
}

// Label is the stable snake_case name used in logs (scope) and metrics.
func (r Refusal) Label() string { return r.info().label }

// Status is the HTTP status a refused request gets.
func (r Refusal) Status() int { return r.info().status }

// RetryAfter is the Retry-After advice in seconds ("" for none).
func (r Refusal) RetryAfter() string { return r.info().retryAfter }

// Message is a generic description that is safe to send to a client.
func (r Refusal) Message() string { return r.info().message }

// RateLimited reports whether r is a rate (not a cap) refusal.
func (r Refusal) RateLimited() bool {
	return r == RefusedHandshakeRate || r == RefusedRequestRate || r == RefusedPublishRate
}

func (r Refusal) String() string { return r.Label() }

// Refusals lists every refusal, for documentation and metric pre-registration.
func Refusals() []Refusal {
	out := make([]Refusal, 0, refusalCount-1)
	for r := RefusedDraining; r < refusalCount; r++ {
		out = append(out, r)
	}
	return out
}
