package metrics

import (
	"context"
	"log/slog"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/heraldhq/herald/internal/admission"
	"github.com/heraldhq/herald/internal/audit"
	"github.com/heraldhq/herald/internal/periodic"
)

// Stats is the connection monitoring snapshot (served at /v1/admin/stats and
// logged every interval).
type Stats struct {
	TotalConnections  int64   `json:"total_connections"`  // authenticated connections since start
	ActiveConnections int64   `json:"active_connections"` // authenticated connections now
	PeakConnections   int64   `json:"peak_connections"`
	Attempts          int64   `json:"connection_attempts"`
	Failed            int64   `json:"failed_connections"` // attempts refused, or closed before authenticating
	Pending           int64   `json:"pending_connections"`
	MaxConnections    int64   `json:"max_connections"`
	Usage             float64 `json:"usage"` // active / max
	HeapBytes         uint64  `json:"heap_bytes"`
	SysBytes          uint64  `json:"sys_bytes"`
	Goroutines        int     `json:"goroutines"`
	Draining          bool    `json:"draining"`
	// Transports breaks attempts, refusals, opens, failures and pending
	// connections down by transport ("ws", "sse", "socketio"), as counted
	// by admission control.
	Transports map[string]admission.TransportStats `json:"transports"`
}

// Monitor tracks connection counts for the original plan's connection
// monitoring (§3.2): totals, peak, attempts and failures, an interval log
// line with memory use, and a warning when usage crosses a threshold.
type Monitor struct {
	total atomic.Int64
	peak  atomic.Int64

	// Static after NewMonitor.
	max        int64
	warnAt     float64
	active     func() int64 // authenticated connections now
	pending    func() int64 // connections not yet authenticated
	transports func() map[string]admission.TransportStats
	draining   func() bool
	audit      *audit.Recorder
}

// DefaultWarnRatio is the share of MaxConnections above which the monitor
// warns (high_connection_usage) unless MonitorConfig.WarnRatio is set.
const DefaultWarnRatio = 0.8

// MonitorConfig configures a Monitor.
type MonitorConfig struct {
	MaxConnections int
	WarnRatio      float64 // default DefaultWarnRatio
	Active         func() int64
	Pending        func() int64
	// Transports returns admission control's per-transport counts; the
	// totals of attempts and failures are their sums.
	Transports func() map[string]admission.TransportStats
	Draining   func() bool
	Logger     *slog.Logger
	// Audit records audit events; nil: logged through Logger, not counted.
	Audit *audit.Recorder
}

// NewMonitor returns a Monitor.
func NewMonitor(cfg MonitorConfig) *Monitor {
	if cfg.WarnRatio <= 0 {
		cfg.WarnRatio = DefaultWarnRatio
	}
	if cfg.Pending == nil {
		cfg.Pending = func() int64 { return 0 }
	}
	if cfg.Transports == nil {
		cfg.Transports = func() map[string]admission.TransportStats { return nil }
	}
	if cfg.Draining == nil {
		cfg.Draining = func() bool { return false }
	}
	if cfg.Audit == nil {
		cfg.Audit = audit.New(cfg.Logger, nil)
	}
	return &Monitor{max: int64(cfg.MaxConnections), warnAt: cfg.WarnRatio, active: cfg.Active,
		pending: cfg.Pending, transports: cfg.Transports, draining: cfg.Draining, audit: cfg.Audit}
}

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
		Pending: m.pending(), MaxConnections: m.max, Transports: m.transports(),
		HeapBytes: ms.HeapAlloc, SysBytes: ms.Sys, Goroutines: runtime.NumGoroutine(), Draining: m.draining(),
	}
	for _, t := range s.Transports {
		s.Attempts += t.Attempts
		s.Failed += t.Failed
	}
	if m.max > 0 {
		s.Usage = float64(s.ActiveConnections) / float64(m.max)
	}
	return s
}

// Run logs the stats every interval until ctx ends, and warns when usage
// exceeds the threshold.
func (m *Monitor) Run(ctx context.Context, interval time.Duration) {
	periodic.Every(ctx, interval, m.logOnce)
}

func (m *Monitor) logOnce() {
	s := m.Snapshot()
	m.audit.Info(audit.ConnectionMonitoring, "connection monitoring", "total", s.TotalConnections,
		"active", s.ActiveConnections, "peak", s.PeakConnections, "attempts", s.Attempts, "failed", s.Failed,
		"heap_bytes", s.HeapBytes, "sys_bytes", s.SysBytes, "goroutines", s.Goroutines)
	if s.MaxConnections > 0 && s.Usage > m.warnAt {
		m.audit.Warn(audit.HighConnectionUsage, "high connection usage", "active", s.ActiveConnections,
			"max", s.MaxConnections, "threshold", int64(float64(s.MaxConnections)*m.warnAt))
	}
}
