package store

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/notification"
)

// The PostgreSQL benchmarks run against the test server (see
// postgres_helpers_test.go), each on a schema of its own:
//
//	go test -run '^$' -bench Postgres -benchtime 5s ./internal/store/

func openBenchPostgres(b *testing.B) *Postgres {
	b.Helper()
	return openTestPostgres(b, PostgresConfig{MaxConns: 8})
}

// reportPGRate reports drafts per second as "rows/s" (as the SQLite
// benchmarks do) and the table rows written per second as "dbrows/s": the
// benchmark drafts each have one user, so each is a notification row and
// an inbox row.
func reportPGRate(b *testing.B, s *Postgres, rows int64, start time.Time) {
	secs := time.Since(start).Seconds()
	b.ReportMetric(float64(rows)/secs, "rows/s")
	b.ReportMetric(float64(2*rows)/secs, "dbrows/s")
	if n := s.batches.Load(); n > 0 {
		b.ReportMetric(float64(s.batchReq.Load())/float64(n), "req/commit")
	}
}

// BenchmarkPostgresPublishSingle: many concurrent publishers, one draft per
// request, so throughput comes from group commit.
func BenchmarkPostgresPublishSingle(b *testing.B) {
	s := openBenchPostgres(b)
	var n atomic.Int64
	b.SetParallelism(32) // 32 publishers per CPU
	b.ReportAllocs()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			i := n.Add(1)
			req := PublishRequest{Drafts: []notification.Draft{benchDraft(fmt.Sprintf("u%d", i%1000))}}
			if _, err := s.Publish(ctx, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportPGRate(b, s, n.Load(), start)
}

// BenchmarkPostgresPublishBatch1000: one request of 1000 drafts (to 100
// users) per iteration.
func BenchmarkPostgresPublishBatch1000(b *testing.B) {
	s := openBenchPostgres(b)
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
	reportPGRate(b, s, rows, start)
}

// BenchmarkPostgresPublishSerial: one publisher, one draft per request:
// every request waits for its own commit (commit latency).
func BenchmarkPostgresPublishSerial(b *testing.B) {
	s := openBenchPostgres(b)
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
	reportPGRate(b, s, rows, start)
}
