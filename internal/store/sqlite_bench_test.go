package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"
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

// benchSQLite runs body against a fresh store for each of benchSync and
// reports its rate.
func benchSQLite(b *testing.B, body func(*testing.B, Store) (int64, time.Time)) {
	for _, sync := range benchSync {
		b.Run("sync="+sync, func(b *testing.B) {
			s := openBenchSQLite(b, sync)
			rows, start := body(b, s)
			reportRate(b, &s.writer, rows, start)
		})
	}
}

// BenchmarkPublishSingle: many concurrent publishers, one draft per
// request, so throughput comes from group commit.
func BenchmarkPublishSingle(b *testing.B) {
	benchSQLite(b, func(b *testing.B, s Store) (int64, time.Time) { return benchPublishParallel(b, s, 10000, 7919) })
}

// BenchmarkPublishBatch1000: one request of 1000 drafts per iteration.
func BenchmarkPublishBatch1000(b *testing.B) { benchSQLite(b, benchPublishBatch1000) }

// BenchmarkPublishSerial: one publisher, one draft per request: every
// request waits for its own commit, so this measures commit latency (where
// FULL and NORMAL differ most).
func BenchmarkPublishSerial(b *testing.B) { benchSQLite(b, benchPublishSerial) }
