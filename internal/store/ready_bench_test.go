package store

import (
	"context"
	"fmt"
	"testing"

	"github.com/heraldhq/herald/internal/notification"
)

// BenchmarkHeadCounts: the store's part of a connect (the ready frame's
// head and counters), on each engine, for recipients with categories and
// tenant and role broadcasts, read in parallel as a connect storm does:
//
//	go test -run '^$' -bench HeadCounts -benchmem ./internal/store/
func BenchmarkHeadCounts(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) { benchHeadCounts(b, openBenchSQLite(b, "NORMAL")) })
	b.Run("postgres", func(b *testing.B) { benchHeadCounts(b, openTestPostgres(b, PostgresConfig{MaxConns: 8})) })
}

func benchHeadCounts(b *testing.B, s Store) {
	const users = 100
	rs := make([]notification.Recipient, users)
	var drafts []notification.Draft
	for i := range rs {
		rs[i] = rcp("t", fmt.Sprintf("u%d", i), []string{"", "admin"}[i%2])
		drafts = append(drafts, withCategory(toUsers("t", rs[i].User), "billing"), toUsers("t", rs[i].User))
	}
	drafts = append(drafts, withCategory(toTenant("t"), "news"), withCategory(toRole("t", "admin"), "ops"))
	publish(b, s, drafts...)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, _, err := s.HeadCounts(ctx, rs[i%users]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}
