package testkit

import (
	"fmt"
	"testing"
	"time"
)

// DefaultTimeout is what [Eventually] waits when given a timeout of 0.
const DefaultTimeout = 10 * time.Second

// maxPollInterval caps the pause between two evaluations of a condition.
const maxPollInterval = 10 * time.Millisecond

// Eventually polls cond until it returns true, and fails the test if it
// has not within timeout (DefaultTimeout when timeout <= 0). The failure
// reads "timed out after <timeout> waiting for <format, args>". cond is
// evaluated at once, then at short intervals (1 ms doubling up to 10 ms),
// and once more after the deadline has passed.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	deadline := time.Now().Add(timeout)
	pause := time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, fmt.Sprintf(format, args...))
		}
		time.Sleep(pause)
		pause = min(2*pause, maxPollInterval)
	}
}
