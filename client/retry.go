package client

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Defaults of RetryPolicy.
const (
	DefaultMaxAttempts   = 4
	DefaultBaseDelay     = 200 * time.Millisecond
	DefaultMaxDelay      = 5 * time.Second
	DefaultMaxRetryAfter = 30 * time.Second
)

// RetryPolicy says when and how long a call waits before trying again. The
// zero value of each field means its default.
//
// Only 429 and 503 answers and network failures are retried. The wait
// before attempt n+1 is a random duration in [0, min(MaxDelay,
// BaseDelay·2^n)) (full jitter), or, when the answer had a Retry-After,
// that long plus up to 10% (so that clients told the same second do not
// come back together). A Retry-After over MaxRetryAfter, or a wait that
// would end after the context's deadline, ends the call at once with the
// last error.
type RetryPolicy struct {
	// MaxAttempts is the most attempts of one call, the first included.
	// Default DefaultMaxAttempts; 1 disables retries.
	MaxAttempts int
	// BaseDelay is the backoff's first cap. Default DefaultBaseDelay.
	BaseDelay time.Duration
	// MaxDelay caps the backoff (not a Retry-After). Default DefaultMaxDelay.
	MaxDelay time.Duration
	// MaxRetryAfter is the longest Retry-After this client waits for.
	// Default DefaultMaxRetryAfter.
	MaxRetryAfter time.Duration
}

func (p *RetryPolicy) setDefaults() {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = DefaultMaxAttempts
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = DefaultBaseDelay
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = DefaultMaxDelay
	}
	if p.MaxRetryAfter <= 0 {
		p.MaxRetryAfter = DefaultMaxRetryAfter
	}
}

// backoff is the wait after failed attempt n (0-based) without a
// Retry-After: full jitter.
func (p *RetryPolicy) backoff(n int) time.Duration {
	ceiling := p.MaxDelay
	if n < 30 && p.BaseDelay<<n < ceiling && p.BaseDelay<<n > 0 {
		ceiling = p.BaseDelay << n
	}
	return rand.N(ceiling)
}

// honour is the wait for a Retry-After of d: d plus up to 10%.
func honour(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d + rand.N(d/10+1)
}

// parseRetryAfter reads a Retry-After value: delay-seconds or an HTTP date
// (RFC 9110, 10.2.3). ok is false when v is empty or malformed; a date in
// the past is a zero wait.
func parseRetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		if secs > int64(24*time.Hour/time.Second) { // absurd: cap, it exceeds any MaxRetryAfter
			secs = int64(24 * time.Hour / time.Second)
		}
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(0, t.Sub(now)), true
}
