package store

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/notification"
)

// The benchmarks run with synchronous=FULL (what OpenSQLite uses) and with
// NORMAL, to show what durability of every acknowledged commit costs.
var benchSync = []string{"FULL", "NORMAL"}

func openBenchSQLite(b *testing.B, sync string) *SQLite {
	b.Helper()
	cfg := SQLiteConfig{Path: filepath.Join(b.TempDir(), "bench.db"), synchronous: sync}
	s, err := OpenSQLite(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

// benchDraft is a draft of a realistic size: ~300 bytes of text and data.
func benchDraft(user string) notification.Draft {
	d := toUsers("bench", user)
	d.Title = "Your export is ready"
	d.Body = "The export you requested on Monday has finished. It contains 12 files " +
		"(48 MB) and will stay available for seven days. Open the link to download it, " +
		"or ask an administrator to extend the retention period."
	d.Data = []byte(`{"export_id":"exp_01J8Z3","url":"/exports/exp_01J8Z3","files":12}`)
	return d
}

func reportRate(b *testing.B, s *SQLite, rows int64, start time.Time) {
	b.ReportMetric(float64(rows)/time.Since(start).Seconds(), "rows/s")
	if n := s.batches.Load(); n > 0 {
		b.ReportMetric(float64(s.batchReq.Load())/float64(n), "req/commit")
	}
}

// BenchmarkPublishSingle: many concurrent publishers, one draft per
// request, so throughput comes from group commit.
func BenchmarkPublishSingle(b *testing.B) {
	for _, sync := range benchSync {
		b.Run("sync="+sync, func(b *testing.B) {
			s := openBenchSQLite(b, sync)
			var n atomic.Int64
			b.SetParallelism(32) // 32 publishers per CPU
			b.ReportAllocs()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					i := n.Add(1)
					req := PublishRequest{Drafts: []notification.Draft{benchDraft(fmt.Sprintf("u%d", (i*7919)%10000))}}
					if _, err := s.Publish(ctx, req); err != nil {
						b.Error(err)
						return
					}
				}
			})
			reportRate(b, s, n.Load(), start)
		})
	}
}

// BenchmarkPublishBatch1000: one request of 1000 drafts per iteration.
func BenchmarkPublishBatch1000(b *testing.B) {
	for _, sync := range benchSync {
		b.Run("sync="+sync, func(b *testing.B) {
			s := openBenchSQLite(b, sync)
			drafts := make([]notification.Draft, 1000)
			for i := range drafts {
				drafts[i] = benchDraft(fmt.Sprintf("u%d", i%100))
			}
			ctx := context.Background()
			var rows int64
			b.ReportAllocs()
			start := time.Now()
			for b.Loop() {
				if _, err := s.Publish(ctx, PublishRequest{Drafts: drafts}); err != nil {
					b.Fatal(err)
				}
				rows += int64(len(drafts))
			}
			reportRate(b, s, rows, start)
		})
	}
}

// BenchmarkPublishSerial: one publisher, one draft per request: every
// request waits for its own commit, so this measures commit latency (where
// FULL and NORMAL differ most).
func BenchmarkPublishSerial(b *testing.B) {
	for _, sync := range benchSync {
		b.Run("sync="+sync, func(b *testing.B) {
			s := openBenchSQLite(b, sync)
			ctx := context.Background()
			var rows int64
			start := time.Now()
			for b.Loop() {
				req := PublishRequest{Drafts: []notification.Draft{benchDraft(fmt.Sprintf("u%d", rows%1000))}}
				if _, err := s.Publish(ctx, req); err != nil {
					b.Fatal(err)
				}
				rows++
			}
			reportRate(b, s, rows, start)
		})
	}
}
