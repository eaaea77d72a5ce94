package store

import (
	"testing"
	"time"
)

// The PostgreSQL benchmarks run against the test server (see
// postgres_helpers_test.go), each on a schema of its own:
//
//	go test -run '^$' -bench Postgres -benchtime 5s ./internal/store/

// benchPostgres runs body against a fresh store and reports drafts per
// second as "rows/s" (as the SQLite benchmarks do) and the table rows
// written per second as "dbrows/s": the benchmark drafts each have one
// user, so each is a notification row and an inbox row.
func benchPostgres(b *testing.B, body func(*testing.B, Store) (int64, time.Time)) {
	s := openTestPostgres(b, PostgresConfig{MaxConns: 8})
	rows, start := body(b, s)
	secs := reportRate(b, &s.writer, rows, start)
	b.ReportMetric(float64(2*rows)/secs, "dbrows/s")
}

// BenchmarkPostgresPublishSingle: many concurrent publishers, one draft per
// request, so throughput comes from group commit.
func BenchmarkPostgresPublishSingle(b *testing.B) {
	benchPostgres(b, func(b *testing.B, s Store) (int64, time.Time) { return benchPublishParallel(b, s, 1000, 1) })
}

// BenchmarkPostgresPublishBatch1000: one request of 1000 drafts (to 100
// users) per iteration.
func BenchmarkPostgresPublishBatch1000(b *testing.B) { benchPostgres(b, benchPublishBatch1000) }

// BenchmarkPostgresPublishSerial: one publisher, one draft per request:
// every request waits for its own commit (commit latency).
func BenchmarkPostgresPublishSerial(b *testing.B) { benchPostgres(b, benchPublishSerial) }
