package session

import (
	"encoding/hex"
	"net/http"
	"testing"

	"github.com/heraldhq/herald/internal/admission"
)

// TestCodesAreStable pins the error catalogue (docs/protocol.md): wire
// names and statuses are what clients program against.
func TestCodesAreStable(t *testing.T) {
	want := []struct {
		code   Code
		name   string
		status int
	}{
		{CodeInvalidMessage, "invalid_message", http.StatusBadRequest},
		{CodeInvalidRequest, "invalid_request", http.StatusBadRequest},
		{CodeUnauthorized, "unauthorized", http.StatusUnauthorized},
		{CodeForbidden, "forbidden", http.StatusForbidden},
		{CodeNotFound, "not_found", http.StatusNotFound},
		{CodeMethodNotAllowed, "method_not_allowed", http.StatusMethodNotAllowed},
		{CodeTooLarge, "too_large", http.StatusRequestEntityTooLarge},
		{CodeIdempotencyMismatch, "idempotency_mismatch", http.StatusUnprocessableEntity},
		{CodeRateLimited, "rate_limited", http.StatusTooManyRequests},
		{CodeInternal, "internal", http.StatusInternalServerError},
		{CodeUnavailable, "unavailable", http.StatusServiceUnavailable},
		{CodeUpgradeRequired, "upgrade_required", http.StatusUpgradeRequired},
	}
	codes := Codes()
	if len(codes) != len(want) {
		t.Fatalf("Codes() has %d codes, the test pins %d", len(codes), len(want))
	}
	names := map[string]bool{}
	for i, w := range want {
		c := codes[i]
		if c != w.code {
			t.Errorf("Codes()[%d] = %d, want %d", i, c, w.code)
		}
		if c.String() != w.name {
			t.Errorf("code %d: name %q, want %q", c, c.String(), w.name)
		}
		if c.Status() != w.status {
			t.Errorf("%s: status %d, want %d", c, c.Status(), w.status)
		}
		if c.Message() == "" {
			t.Errorf("%s: no message", c)
		}
		if names[c.String()] {
			t.Errorf("duplicate wire name %q", c)
		}
		names[c.String()] = true
	}
	if CodeNone.String() != "" || CodeNone.Status() != http.StatusOK {
		t.Errorf("CodeNone: %q %d", CodeNone, CodeNone.Status())
	}
	for _, c := range []Code{codeCount, 255} {
		if c.String() != "internal" || c.Status() != http.StatusInternalServerError {
			t.Errorf("Code(%d): %q %d, want internal", c, c, c.Status())
		}
	}
}

func TestCodeOf(t *testing.T) {
	want := map[admission.Refusal]Code{
		admission.RefusedDraining:        CodeUnavailable,
		admission.RefusedNodeFull:        CodeUnavailable,
		admission.RefusedPerIP:           CodeRateLimited,
		admission.RefusedPerUser:         CodeRateLimited,
		admission.RefusedHandshakeRate:   CodeRateLimited,
		admission.RefusedUnauthenticated: CodeUnavailable,
		admission.RefusedRequestRate:     CodeRateLimited,
		admission.RefusedPublishRate:     CodeRateLimited,
	}
	refusals := admission.Refusals()
	if len(refusals) != len(want) {
		t.Fatalf("admission has %d refusals, the test maps %d", len(refusals), len(want))
	}
	for _, r := range refusals {
		got := CodeOf(r)
		if got != want[r] {
			t.Errorf("CodeOf(%v) = %v, want %v", r, got, want[r])
		}
		if got.Status() != r.Status() {
			t.Errorf("%v: code status %d, refusal status %d", r, got.Status(), r.Status())
		}
	}
}

func TestError(t *testing.T) {
	e := NewError(CodeNotFound, "")
	if e.Error() != "not_found: not found" {
		t.Errorf("Error() = %q", e.Error())
	}
	if e := NewError(CodeRateLimited, "too many requests"); e.Error() != "rate_limited: too many requests" {
		t.Errorf("Error() = %q", e.Error())
	}
	seen := map[string]bool{}
	for range 100 {
		id := NewCorrelationID()
		if b, err := hex.DecodeString(id); err != nil || len(b) != 8 {
			t.Fatalf("correlation id %q is not 16 hex digits", id)
		}
		if seen[id] {
			t.Fatalf("correlation id %q repeated", id)
		}
		seen[id] = true
	}
	if e.CorrelationID == "" || seen[e.CorrelationID] {
		t.Errorf("NewError correlation id %q", e.CorrelationID)
	}
}
