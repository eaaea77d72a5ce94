package session

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"

	"github.com/heraldhq/herald/internal/admission"
)

// Code is a client-visible error code. It is the one catalogue behind the
// live transports' error replies and the HTTP APIs' error bodies: the wire
// name, the HTTP status and the generic message come from codeTable, never
// from string literals at call sites. Codes are stable and documented in
// docs/protocol.md.
type Code uint8

// Error codes. Keep in sync with docs/protocol.md.
const (
	CodeNone                Code = iota
	CodeInvalidMessage           // a live-transport message that does not parse or validate
	CodeInvalidRequest           // an HTTP request that does not parse or validate
	CodeUnauthorized             // missing, invalid or expired credentials
	CodeForbidden                // authenticated, but not allowed (origin, scope, tenant)
	CodeNotFound                 // no such notification for this user
	CodeMethodNotAllowed         // wrong HTTP method
	CodeTooLarge                 // a body over its size limit
	CodeIdempotencyMismatch      // an Idempotency-Key reused with another body
	CodeRateLimited              // a rate limit or a connection cap
	CodeInternal                 // a server-side failure; retrying may not help
	CodeUnavailable              // temporarily unavailable (store down, draining); retry
	CodeUpgradeRequired          // a WebSocket handshake with a version other than 13
	codeCount
)

type codeInfo struct {
	name    string
	status  int
	message string
}

var codeTable = [codeCount]codeInfo{
	CodeNone:                {"", http.StatusOK, ""},
	CodeInvalidMessage:      {"invalid_message", http.StatusBadRequest, "invalid message"},
	CodeInvalidRequest:      {"invalid_request", http.StatusBadRequest, "invalid request"},
	CodeUnauthorized:        {"unauthorized", http.StatusUnauthorized, "invalid or missing credentials"},
	CodeForbidden:           {"forbidden", http.StatusForbidden, "forbidden"},
	CodeNotFound:            {"not_found", http.StatusNotFound, "not found"},
	CodeMethodNotAllowed:    {"method_not_allowed", http.StatusMethodNotAllowed, "method not allowed"},
	CodeTooLarge:            {"too_large", http.StatusRequestEntityTooLarge, "request too large"},
	CodeIdempotencyMismatch: {"idempotency_mismatch", http.StatusUnprocessableEntity, "idempotency key reused with a different request"},
	CodeRateLimited:         {"rate_limited", http.StatusTooManyRequests, "rate limit exceeded"},
	CodeInternal:            {"internal", http.StatusInternalServerError, "unable to process request"},
	CodeUnavailable:         {"unavailable", http.StatusServiceUnavailable, "temporarily unavailable"},
	CodeUpgradeRequired:     {"upgrade_required", http.StatusUpgradeRequired, "unsupported WebSocket version"},
}

func (c Code) info() codeInfo {
	if c >= codeCount {
		return codeTable[CodeInternal]
	}
	return codeTable[c]
}

// String is the wire name ("not_found").
func (c Code) String() string { return c.info().name }

// Status is the HTTP status of the code.
func (c Code) Status() int { return c.info().status }

// Message is the code's generic message, safe to show a client.
func (c Code) Message() string { return c.info().message }

// Codes lists every code, for documentation and tests.
func Codes() []Code {
	out := make([]Code, 0, codeCount-1)
	for c := CodeInvalidMessage; c < codeCount; c++ {
		out = append(out, c)
	}
	return out
}

// CodeOf maps an admission refusal onto the code a client sees.
func CodeOf(r admission.Refusal) Code {
	if r.Status() == http.StatusTooManyRequests {
		return CodeRateLimited
	}
	return CodeUnavailable
}

// Error is a client-visible error: a code, a generic message and the
// correlation id under which the server logged the details.
type Error struct {
	Code          Code
	Message       string // "" means Code.Message()
	CorrelationID string
}

// NewError returns an Error with a fresh correlation id.
func NewError(c Code, msg string) *Error {
	return &Error{Code: c, Message: msg, CorrelationID: NewCorrelationID()}
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.text()) }

func (e *Error) text() string {
	if e.Message != "" {
		return e.Message
	}
	return e.Code.Message()
}

// NewCorrelationID returns a random 64-bit id in hex.
func NewCorrelationID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ErrInvalid wraps every validation failure of a request; the wrapped
// detail goes to the server log only, the client sees CodeInvalidMessage.
var ErrInvalid = errors.New("invalid message")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}
