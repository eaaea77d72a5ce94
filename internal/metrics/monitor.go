package metrics

import (
	"context"
	"log/slog"
	"runtime"
	"sync/atomic"
	"time"
)

// Stats is the connection monitoring snapshot (served at /v1/admin/stats and
// logged every interval).
type Stats struct {
	TotalConnections  int64   `json:"total_connections"`  // authenticated connections since start
	ActiveConnections int64   `json:"active_connections"` // authenticated connections now
	PeakConnections   int64   `json:"peak_connections"`
	Attempts          int64   `json:"connection_attempts"`
	Failed            int64   `json:"failed_connections"` // attempts that did not become an authenticated connection
	Pending           int64   `json:"pending_connections"`
	MaxConnections    int64   `json:"max_connections"`
	Usage             float64 `json:"usage"` // active / max
	HeapBytes         uint64  `json:"heap_bytes"`
	SysBytes          uint64  `json:"sys_bytes"`
	Goroutines        int     `json:"goroutines"`
	Draining          bool    `json:"draining"`
}

// Monitor tracks connection counts for the original plan's connection
// monitoring (§3.2): totals, peak, attempts and failures, an interval log
// line with memory use, and a warning when usage crosses a threshold.
type Monitor struct {
	total    atomic.Int64
	peak     atomic.Int64
	attempts atomic.Int64

	// Static after NewMonitor.
	max      int64
	warnAt   float64
	active   func() int64 // authenticated connections now
	pending  func() int64 // connections not yet authenticated
	draining func() bool
	log      *slog.Logger
}

// MonitorConfig configures a Monitor.
type MonitorConfig struct {
	MaxConnections int
	WarnRatio      float64 // default 0.8
	Active         func() int64
	Pending        func() int64
	Draining       func() bool
	Logger         *slog.Logger
}

// NewMonitor returns a Monitor.
func NewMonitor(cfg MonitorConfig) *Monitor {
	if cfg.WarnRatio <= 0 {
		cfg.WarnRatio = 0.8
	}
	if cfg.Pending == nil {
		cfg.Pending = func() int64 { return 0 }
	}
	if cfg.Draining == nil {
		cfg.Draining = func() bool { return false }
	}
	return &Monitor{max: int64(cfg.MaxConnections), warnAt: cfg.WarnRatio, active: cfg.Active,
		pending: cfg.Pending, draining: cfg.Draining, log: cfg.Logger}
}

// Attempt counts a request to a connection endpoint.
func (m *Monitor) Attempt() { m.attempts.Add(1) }

// Opened counts an authenticated connection.
func (m *Monitor) Opened() {
	m.total.Add(1)
	a := m.active()
	for {
		p := m.peak.Load()
		if a <= p || m.peak.CompareAndSwap(p, a) {
			return
		}
	}
}

// Snapshot returns the current stats.
func (m *Monitor) Snapshot() Stats {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := Stats{
		TotalConnections: m.total.Load(), ActiveConnections: m.active(), PeakConnections: m.peak.Load(),
		Attempts: m.attempts.Load(), Pending: m.pending(), MaxConnections: m.max,
		HeapBytes: ms.HeapAlloc, SysBytes: ms.Sys, Goroutines: runtime.NumGoroutine(), Draining: m.draining(),
	}
	s.Failed = max(0, s.Attempts-s.TotalConnections-s.Pending)
	if m.max > 0 {
		s.Usage = float64(s.ActiveConnections) / float64(m.max)
	}
	return s
}

// Run logs the stats every interval until ctx ends, and warns when usage
// exceeds the threshold.
func (m *Monitor) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.logOnce()
		}
	}
}

func (m *Monitor) logOnce() {
	s := m.Snapshot()
	m.log.Info("connection monitoring", "event", "connection_monitoring", "total", s.TotalConnections,
		"active", s.ActiveConnections, "peak", s.PeakConnections, "attempts", s.Attempts, "failed", s.Failed,
		"heap_bytes", s.HeapBytes, "sys_bytes", s.SysBytes, "goroutines", s.Goroutines)
	if s.MaxConnections > 0 && s.Usage > m.warnAt {
		m.log.Warn("high connection usage", "event", "high_connection_usage", "active", s.ActiveConnections,
			"max", s.MaxConnections, "threshold", int64(float64(s.MaxConnections)*m.warnAt))
	}
}
