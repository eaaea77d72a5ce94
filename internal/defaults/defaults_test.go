package defaults

import (
	"testing"
	"time"
)

func TestPositive(t *testing.T) {
	unset, negative, set := time.Duration(0), -time.Second, 3*time.Second
	Positive(&unset, time.Minute)
	Positive(&negative, time.Minute)
	Positive(&set, time.Minute)
	if unset != time.Minute || negative != time.Minute || set != 3*time.Second {
		t.Fatalf("durations: %v %v %v", unset, negative, set)
	}
	n := 0
	Positive(&n, 8)
	if n != 8 {
		t.Fatalf("int: %d", n)
	}
}
