package client

import (
	"net/http"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 6, 7, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		in   string
		want time.Duration
		ok   bool
	}{
		{"seconds", "1", time.Second, true},
		{"zero", "0", 0, true},
		{"spaces", " 3 ", 3 * time.Second, true},
		{"empty", "", 0, false},
		{"negative", "-1", 0, false},
		{"fraction", "1.5", 0, false},
		{"garbage", "soon", 0, false},
		{"huge is capped at a day", "99999999999", 24 * time.Hour, true},
		{"http date", now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{"http date in the past", now.Add(-time.Minute).Format(http.TimeFormat), 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseRetryAfter(tc.in, now)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("parseRetryAfter(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestBackoffIsFullJitterUnderTheCap(t *testing.T) {
	p := RetryPolicy{BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second}
	p.setDefaults()
	for n := 0; n < 40; n++ {
		ceiling := min(time.Second, 100*time.Millisecond<<min(n, 20))
		for range 50 {
			if d := p.backoff(n); d < 0 || d >= ceiling {
				t.Fatalf("backoff(%d) = %v, want [0, %v)", n, d, ceiling)
			}
		}
	}
	for range 50 {
		if d := honour(time.Second); d < time.Second || d > 1100*time.Millisecond {
			t.Fatalf("honour(1s) = %v", d)
		}
	}
}
