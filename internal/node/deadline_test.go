package node

import (
	"testing"
	"time"
)

func TestSharedDeadline(t *testing.T) {
	clock := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	s := newSharedDeadline(5*time.Second, 100*time.Millisecond, func() time.Time { return clock })
	first := s.get()
	check := func(name string, at time.Time) {
		t.Helper()
		d, ok := s.get().Deadline()
		if !ok || d.Before(at.Add(5*time.Second-100*time.Millisecond)) || d.After(at.Add(5*time.Second)) {
			t.Errorf("%s: deadline %v (%v), want 4.9 s to 5 s after %v", name, d, ok, at)
		}
	}
	check("first", clock)
	clock = clock.Add(99 * time.Millisecond)
	if s.get() != first {
		t.Error("a new context within the slack")
	}
	check("within the slack", clock)
	clock = clock.Add(time.Millisecond)
	if s.get() == first {
		t.Error("the same context after the slack")
	}
	check("after the slack", clock)
	clock = clock.Add(-time.Second) // the clock went back
	check("clock went back", clock)
}
