package limit

import (
	"math/rand/v2"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// The one-word bucket decides as x/time/rate's Limiter does, on random
// request times, for the rates and bursts Herald configures.
func TestBucketMatchesRateLimiter(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct {
		per   float64
		burst int
	}{{10, 20}, {20, 40}, {0.5, 1}, {1000, 10}, {3, 5}} {
		var b Bucket
		l := rate.NewLimiter(rate.Limit(c.per), c.burst)
		now := time.Unix(1_700_000_000, 0)
		allowed := 0
		for i := range 20000 {
			now = now.Add(time.Duration(rng.Int64N(int64(3 * time.Second / time.Duration(c.per*float64(c.burst)+1)))))
			want := l.AllowN(now, 1)
			if got := b.Allow(now, c.per, c.burst); got != want {
				t.Fatalf("rate %v burst %d, request %d: Bucket %v, Limiter %v", c.per, c.burst, i, got, want)
			}
			if want {
				allowed++
			}
		}
		if allowed == 0 || allowed == 20000 {
			t.Fatalf("rate %v burst %d: %d of 20000 allowed: the sequence tests nothing", c.per, c.burst, allowed)
		}
	}
}

// A full bucket gives burst tokens at once, then one per interval.
func TestBucketBurstThenRefill(t *testing.T) {
	var b Bucket
	now := time.Unix(1_700_000_000, 0)
	for i := range 3 {
		if !b.Allow(now, 10, 3) {
			t.Fatalf("token %d of a full bucket refused", i)
		}
	}
	if b.Allow(now, 10, 3) {
		t.Fatal("a fourth token at once")
	}
	if b.Allow(now.Add(99*time.Millisecond), 10, 3) {
		t.Fatal("a token before the interval")
	}
	if !b.Allow(now.Add(100*time.Millisecond), 10, 3) {
		t.Fatal("no token after the interval")
	}
}
