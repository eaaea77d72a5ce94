// Package gctune is Herald's garbage-collector policy beyond Go's
// defaults: a collection when the process has gone idle.
//
// Between collections Go lets the heap grow to twice the live heap
// (GOGC=100) and keeps that memory mapped until a later collection lowers
// the goal. A node that goes quiet after a burst (thousands of clients
// reconnecting after a deploy) then allocates almost nothing, so the next
// collection is Go's forced one, two minutes later, and until then its
// RSS holds the burst's garbage: ~1.5 KiB per idle WebSocket on top of
// ~1.5 KiB live (docs/benchmarks.md). A collection alone frees that
// garbage but the runtime keeps up to 1.1 times its next goal (twice the
// live heap) mapped, so the idle collector runs one collection and
// returns the free memory to the OS (debug.FreeOSMemory) once the process
// has allocated little for an interval and the garbage since the last
// collection is a fair share of the live heap, as the JVM's periodic
// collection (G1PeriodicGCInterval) does. Under traffic it never fires:
// collections come often enough by themselves, and memory returned while
// busy would only be mapped again.
package gctune

import (
	"context"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"time"

	"github.com/heraldhq/herald/internal/defaults"
	"github.com/heraldhq/herald/internal/periodic"
)

// Defaults of the idle collector.
const (
	// DefaultIdleInterval is how often the collector looks, and how long
	// the process must have been quiet.
	DefaultIdleInterval = 5 * time.Second
	// idleAllocRate is the allocation rate, in bytes per second, below
	// which the process counts as quiet (a publish allocates ~2 KiB, a
	// connect ~20 KiB: 1 MiB/s is ~50 connects or ~500 publishes a second).
	idleAllocRate = 1 << 20
	// garbageShare: collect when what was allocated since the last
	// collection is at least this share of the live heap.
	garbageShare = 0.25
	// minGarbage: and at least this much (a small heap is not worth it).
	minGarbage = 4 << 20
)

// sample is what the collector reads of the runtime.
type sample struct {
	cycles uint64 // collections so far
	allocs uint64 // bytes allocated so far
	live   uint64 // live heap at the last collection
}

// Idle decides when an idle process is collected. Run starts it.
type Idle struct {
	interval time.Duration
	read     func() sample // runtime/metrics; a fake in tests
	collect  func()        // debug.FreeOSMemory
	log      *slog.Logger

	prev    sample
	atGC    uint64 // allocs when the last collection was seen
	started bool
}

// NewIdle returns an idle collector that looks every interval (0: the
// default).
func NewIdle(interval time.Duration, log *slog.Logger) *Idle {
	if interval <= 0 {
		interval = DefaultIdleInterval
	}
	defaults.Logger(&log)
	return &Idle{interval: interval, read: readRuntime, collect: debug.FreeOSMemory, log: log}
}

// Run looks every interval until ctx ends.
func (i *Idle) Run(ctx context.Context) {
	periodic.Every(ctx, i.interval, func() {
		if i.step(i.read()) {
			start := time.Now()
			i.collect()
			i.log.Debug("idle collection", "took", time.Since(start).String())
		}
	})
}

// step takes one sample and reports whether to collect now.
func (i *Idle) step(now sample) bool {
	prev, started := i.prev, i.started
	i.prev, i.started = now, true
	if !started {
		return false
	}
	if now.cycles != prev.cycles { // a collection ran: nothing to do yet
		i.atGC = now.allocs
		return false
	}
	quiet := float64(now.allocs-prev.allocs)/i.interval.Seconds() < idleAllocRate
	garbage := now.allocs - i.atGC
	if !quiet || garbage < minGarbage || float64(garbage) < garbageShare*float64(now.live) {
		return false
	}
	i.atGC = now.allocs // one collection per quiet spell
	return true
}

// CollectorOff reports whether the process runs without a collector
// (GOGC=off): the idle collector then stays off too.
func CollectorOff() bool { return strings.EqualFold(os.Getenv("GOGC"), "off") }

var metricNames = []string{"/gc/cycles/total:gc-cycles", "/gc/heap/allocs:bytes", "/gc/heap/live:bytes"}

func readRuntime() sample {
	s := make([]metrics.Sample, len(metricNames))
	for i, n := range metricNames {
		s[i].Name = n
	}
	metrics.Read(s)
	u := func(i int) uint64 {
		if s[i].Value.Kind() == metrics.KindUint64 {
			return s[i].Value.Uint64()
		}
		return 0
	}
	return sample{cycles: u(0), allocs: u(1), live: u(2)}
}
