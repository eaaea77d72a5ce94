// Package defaults fills in the fields of a Config that were left unset.
package defaults

import (
	"log/slog"
	"runtime"
)

// Positive sets *p to v when *p is zero or negative: the documented
// default of a duration, size or count left unset.
func Positive[T ~int | ~int64](p *T, v T) {
	if *p <= 0 {
		*p = v
	}
}

// Logger sets *p, when nil, to a logger that discards everything: the
// default of every Config's Logger.
func Logger(p **slog.Logger) {
	if *p == nil {
		*p = Discard()
	}
}

// Discard is a logger that discards everything.
func Discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// Pollers is the default number of nbio poller goroutines of a transport:
// half the processors, at least one.
func Pollers() int { return max(1, runtime.GOMAXPROCS(0)/2) }
