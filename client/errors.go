package client

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Codes of Herald's error catalogue (docs/protocol.md, Errors) that the
// backend APIs answer with. [Error.Code] holds one of them, or "" when the
// answer had no Herald error body (a proxy's page, a plain-text 404).
const (
	CodeInvalidRequest      = "invalid_request"      // 400: a malformed or invalid request
	CodeUnauthorized        = "unauthorized"         // 401: missing or unknown API key
	CodeForbidden           = "forbidden"            // 403: a scoped key outside its tenant, or not an admin key
	CodeNotFound            = "not_found"            // 404
	CodeTooLarge            = "too_large"            // 413: body over the limit
	CodeIdempotencyMismatch = "idempotency_mismatch" // 422: the key was used with another request
	CodeRateLimited         = "rate_limited"         // 429: over the publish rate (retried)
	CodeInternal            = "internal"             // 500
	CodeUnavailable         = "unavailable"          // 503: not stored, retry with the same key (retried)
)

// Error is an error answer of Herald: {"error":{"code","message","correlation_id"}}.
type Error struct {
	// Status is the HTTP status code.
	Status int
	// Code is the catalogue code (CodeRateLimited…), or "" when the body
	// was not a Herald error.
	Code string
	// Message is Herald's generic message, or the start of a foreign body.
	Message string
	// CorrelationID names the server log line with the details ("" when
	// the body had none).
	CorrelationID string
	// RetryAfter is the server's Retry-After advice (0 when absent).
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "herald: %d", e.Status)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.CorrelationID != "" {
		b.WriteString(" (correlation id " + e.CorrelationID + ")")
	}
	return b.String()
}

// Temporary reports whether the same call may succeed later (429 and 503),
// which are the statuses this package retries.
func (e *Error) Temporary() bool {
	return e.Status == http.StatusTooManyRequests || e.Status == http.StatusServiceUnavailable
}

// maxForeignMessage bounds the Message taken from a body that is not a
// Herald error.
const maxForeignMessage = 200

// errorFrom builds the Error of a non-2xx answer from its body.
func errorFrom(status int, h http.Header, body []byte, now time.Time) *Error {
	e := &Error{Status: status}
	e.RetryAfter, _ = parseRetryAfter(h.Get("Retry-After"), now)
	var env struct {
		Error *struct {
			Code          string `json:"code"`
			Message       string `json:"message"`
			CorrelationID string `json:"correlation_id"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &env) == nil && env.Error != nil && env.Error.Code != "" {
		e.Code, e.Message, e.CorrelationID = env.Error.Code, env.Error.Message, env.Error.CorrelationID
		return e
	}
	msg := strings.TrimSpace(string(body))
	if len(msg) > maxForeignMessage {
		msg = strings.ToValidUTF8(msg[:maxForeignMessage], "")
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	e.Message = msg
	return e
}
