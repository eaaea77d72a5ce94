package admission

import (
	"net/http"
	"strconv"
	"testing"
)

// TestRefusalTable pins the refusal table: labels are metric labels and log
// scopes, statuses and Retry-After are what clients see.
func TestRefusalTable(t *testing.T) {
	want := []struct {
		r           Refusal
		label       string
		status      int
		retryAfter  string
		rateLimited bool
	}{
		{RefusedDraining, "draining", http.StatusServiceUnavailable, "1", false},
		{RefusedNodeFull, "node_full", http.StatusServiceUnavailable, "5", false},
		{RefusedPerIP, "per_ip", http.StatusTooManyRequests, "5", false},
		{RefusedPerUser, "per_user", http.StatusTooManyRequests, "5", false},
		{RefusedHandshakeRate, "handshake", http.StatusTooManyRequests, "1", true},
		{RefusedUnauthenticated, "unauthenticated", http.StatusServiceUnavailable, "1", false},
		{RefusedRequestRate, "events", http.StatusTooManyRequests, "1", true},
		{RefusedPublishRate, "publish", http.StatusTooManyRequests, "1", true},
	}
	all := Refusals()
	if len(all) != len(want) {
		t.Fatalf("Refusals() has %d entries, the test pins %d", len(all), len(want))
	}
	labels := map[string]bool{}
	for i, w := range want {
		r := w.r
		if all[i] != r {
			t.Errorf("Refusals()[%d] = %v, want %v", i, all[i], r)
		}
		if r.Label() != w.label || r.String() != w.label {
			t.Errorf("%d: label %q / string %q, want %q", r, r.Label(), r.String(), w.label)
		}
		if r.Status() != w.status {
			t.Errorf("%v: status %d, want %d", r, r.Status(), w.status)
		}
		if r.RetryAfter() != w.retryAfter {
			t.Errorf("%v: Retry-After %q, want %q", r, r.RetryAfter(), w.retryAfter)
		}
		if n, err := strconv.Atoi(r.RetryAfter()); err != nil || n <= 0 {
			t.Errorf("%v: Retry-After %q is not a positive number of seconds", r, r.RetryAfter())
		}
		if r.RateLimited() != w.rateLimited {
			t.Errorf("%v: RateLimited %v, want %v", r, r.RateLimited(), w.rateLimited)
		}
		if r.Message() == "" {
			t.Errorf("%v: no message", r)
		}
		if labels[r.Label()] {
			t.Errorf("duplicate label %q", r.Label())
		}
		labels[r.Label()] = true
	}
}

func TestRefusalOutOfRange(t *testing.T) {
	if RefusedNone.Label() != "none" || RefusedNone.RetryAfter() != "" || RefusedNone.RateLimited() {
		t.Errorf("RefusedNone: %q %q %v", RefusedNone.Label(), RefusedNone.RetryAfter(), RefusedNone.RateLimited())
	}
	for _, r := range []Refusal{refusalCount, 255} {
		if r.Label() != "unknown" || r.Status() != http.StatusServiceUnavailable || r.RetryAfter() == "" || r.Message() == "" {
			t.Errorf("Refusal(%d): %q %d %q %q", r, r.Label(), r.Status(), r.RetryAfter(), r.Message())
		}
	}
}
