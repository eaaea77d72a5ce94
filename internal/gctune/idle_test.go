package gctune

import (
	"context"
	"io"
	"log/slog"
	"runtime"
	"testing"
	"time"
)

const mib = 1 << 20

// The collector fires once a quiet spell follows garbage worth a quarter
// of the live heap, once per spell; never under traffic, never right after
// a collection, never for a little garbage.
func TestIdleStep(t *testing.T) {
	i := NewIdle(5*time.Second, nil)
	steps := []struct {
		name string
		s    sample
		want bool
	}{
		{"first sample: no baseline", sample{cycles: 10, allocs: 100 * mib, live: 30 * mib}, false},
		{"traffic: 50 MiB in 5 s", sample{cycles: 10, allocs: 150 * mib, live: 30 * mib}, false},
		{"a collection ran", sample{cycles: 11, allocs: 152 * mib, live: 30 * mib}, false},
		{"quiet, 1 MiB of garbage since", sample{cycles: 11, allocs: 153 * mib, live: 30 * mib}, false},
		{"a burst: 40 MiB", sample{cycles: 11, allocs: 193 * mib, live: 30 * mib}, false},
		{"quiet after it: 41 MiB of garbage, live 30", sample{cycles: 11, allocs: 194 * mib, live: 30 * mib}, true},
		{"still quiet: collected already", sample{cycles: 11, allocs: 195 * mib, live: 30 * mib}, false},
		{"our collection shows", sample{cycles: 12, allocs: 195 * mib, live: 31 * mib}, false},
		{"quiet, garbage below a quarter of live", sample{cycles: 12, allocs: 199 * mib, live: 31 * mib}, false},
	}
	for _, st := range steps {
		if got := i.step(st.s); got != st.want {
			t.Fatalf("%s: collect %v, want %v", st.name, got, st.want)
		}
	}
	small := NewIdle(5*time.Second, nil)
	small.step(sample{cycles: 1, allocs: 1 * mib, live: 2 * mib})
	if small.step(sample{cycles: 1, allocs: 3 * mib, live: 2 * mib}) {
		t.Fatal("collected a small heap for 2 MiB of garbage")
	}
}

// Run reads the runtime (the real metrics) and collects through its hook
// until the context ends.
func TestIdleRunCollects(t *testing.T) {
	i := NewIdle(50*time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil)))
	done := make(chan struct{})
	calls := 0
	i.collect = func() {
		calls++
		if calls == 1 {
			close(done)
		}
	}
	junk := make([][]byte, 0, 64)
	for range 64 { // 8 MiB of garbage, then quiet
		junk = append(junk, make([]byte, 128<<10))
	}
	runtime.KeepAlive(junk)
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { i.Run(ctx); close(stopped) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("no idle collection in 10 s of quiet")
	}
	cancel()
	<-stopped
}

func TestCollectorOff(t *testing.T) {
	t.Setenv("GOGC", "off")
	if !CollectorOff() {
		t.Fatal("GOGC=off not seen")
	}
	t.Setenv("GOGC", "200")
	if CollectorOff() {
		t.Fatal("GOGC=200 seen as off")
	}
}
