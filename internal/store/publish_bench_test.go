package store

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/notification"
)

// The bodies of the publish benchmarks, the same for every engine. Each
// returns the drafts it published and when it started, for the engine's
// benchmark to report its rate.

// reportRate reports drafts per second as "rows/s" and the mean requests
// per commit of w, the engine's writer, as "req/commit". It returns the
// seconds since start.
func reportRate[R writeRequest](b *testing.B, w *writer[R], rows int64, start time.Time) float64 {
	secs := time.Since(start).Seconds()
	b.ReportMetric(float64(rows)/secs, "rows/s")
	if n := w.batches.Load(); n > 0 {
		b.ReportMetric(float64(w.batchReq.Load())/float64(n), "req/commit")
	}
	return secs
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

// benchPublishParallel: many concurrent publishers, one draft per request,
// so throughput comes from group commit. The i-th request goes to user
// (i*stride)%users.
func benchPublishParallel(b *testing.B, s Store, users, stride int64) (int64, time.Time) {
	var n atomic.Int64
	b.SetParallelism(32) // 32 publishers per CPU
	b.ReportAllocs()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			i := n.Add(1)
			req := PublishRequest{Drafts: []notification.Draft{benchDraft(fmt.Sprintf("u%d", (i*stride)%users))}}
			if _, err := s.Publish(ctx, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
	return n.Load(), start
}

// benchPublishBatch1000: one request of 1000 drafts (to 100 users) per
// iteration.
func benchPublishBatch1000(b *testing.B, s Store) (int64, time.Time) {
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
	return rows, start
}

// benchPublishSerial: one publisher, one draft per request: every request
// waits for its own commit, so this measures commit latency.
func benchPublishSerial(b *testing.B, s Store) (int64, time.Time) {
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
	return rows, start
}
