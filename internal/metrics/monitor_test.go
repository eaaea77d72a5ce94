package metrics

import (
	"bytes"
	"github.com/heraldhq/herald/internal/audit/audittest"
	"log/slog"
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/audit"
)

// The monitoring line and the high-usage warning are audit events: logged
// with their "event" key and counted through the Recorder.
func TestMonitorRecordsAuditEvents(t *testing.T) {
	for _, tc := range []struct {
		name   string
		active int64
		high   int
	}{
		{"below the threshold", 8, 0},
		{"over the threshold", 9, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			var counted audittest.Counter
			m := NewMonitor(MonitorConfig{MaxConnections: 10, WarnRatio: 0.8,
				Active: func() int64 { return tc.active },
				Audit:  audit.New(slog.New(slog.NewTextHandler(&logs, nil)), &counted)})
			m.logOnce()
			if n := len(counted.Of(audit.ConnectionMonitoring)); n != 1 {
				t.Errorf("connection_monitoring counted %d times, want 1", n)
			}
			if n := len(counted.Of(audit.HighConnectionUsage)); n != tc.high {
				t.Errorf("high_connection_usage counted %d times, want %d", n, tc.high)
			}
			if got := strings.Count(logs.String(), "event=high_connection_usage"); got != tc.high {
				t.Errorf("%d high_connection_usage lines, want %d:\n%s", got, tc.high, logs.String())
			}
			if !strings.Contains(logs.String(), "event=connection_monitoring") {
				t.Errorf("no connection_monitoring line:\n%s", logs.String())
			}
		})
	}
}

// Without a Recorder the events go to Logger; without either, nowhere.
func TestMonitorWithoutRecorder(t *testing.T) {
	var logs bytes.Buffer
	m := NewMonitor(MonitorConfig{MaxConnections: 10, Active: func() int64 { return 10 },
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	m.logOnce()
	for _, want := range []string{"event=connection_monitoring", "event=high_connection_usage"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("no %q in the logs:\n%s", want, logs.String())
		}
	}
	NewMonitor(MonitorConfig{Active: func() int64 { return 0 }}).logOnce() // must not panic
}
