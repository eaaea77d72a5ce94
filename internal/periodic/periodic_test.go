package periodic

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// Every calls fn again and again, and returns (calling it no more) once
// ctx ends.
func TestEvery(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var calls atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		Every(ctx, time.Millisecond, func() {
			if calls.Add(1) == 3 {
				cancel()
			}
		})
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Every did not return after ctx ended")
	}
	// A tick ready with the cancellation may still be taken: 3 or 4.
	n := calls.Load()
	time.Sleep(20 * time.Millisecond)
	if n < 3 || n > 4 || calls.Load() != n {
		t.Fatalf("%d calls by the return, %d after; want 3 or 4, none after", n, calls.Load())
	}
}
