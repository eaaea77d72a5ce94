package defaults

import (
	"context"
	"io"
	"log/slog"
	"runtime"
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

func TestLoggerAndPollers(t *testing.T) {
	var unset *slog.Logger
	Logger(&unset)
	if unset == nil || unset.Enabled(context.Background(), slog.LevelError) {
		t.Fatal("an unset logger is not a discarding one")
	}
	set := slog.New(slog.NewTextHandler(io.Discard, nil))
	kept := set
	Logger(&set)
	if set != kept {
		t.Fatal("a set logger was replaced")
	}
	if n := Pollers(); n < 1 || n > max(1, runtime.GOMAXPROCS(0)) {
		t.Fatalf("pollers %d", n)
	}
}
