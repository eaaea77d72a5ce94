package broker

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/notification"
	"github.com/heraldhq/herald/internal/testkit"
)

func benchEvent(users int) *notification.Event {
	ev := &notification.Event{Kind: notification.EventNotification, Tenant: "acme",
		Notification: &notification.Notification{
			ID: "01JAAAAAAAAAAAAAAAAAAAAAAA", Tenant: "acme",
			Audience: notification.Audience{Kind: notification.AudienceUsers},
			Type:     "comment.created", Title: "New comment on your post",
			Body:      "Someone replied to the thread you follow: lorem ipsum dolor sit amet.",
			Data:      json.RawMessage(`{"post":"p-123","comment":"c-456"}`),
			CreatedAt: time.Now().UTC(),
		}}
	for i := 0; i < users; i++ {
		ev.Deliveries = append(ev.Deliveries, notification.Delivery{User: "user-" + strconv.Itoa(i), Seq: int64(i + 1), Unread: 3})
	}
	return ev
}

// BenchmarkRedisPublishReceive measures events/s through Redis: 32 publishing
// goroutines per CPU (API requests publishing after their commits), one
// subscribing node decoding every event; the clock stops when the last event
// is handled.
//
//	go test -run '^$' -bench RedisPublishReceive -benchtime 200000x ./internal/broker/
func BenchmarkRedisPublishReceive(b *testing.B) {
	url := testkit.RedisURL(b)
	for _, users := range []int{1, 100} {
		b.Run("recipients="+strconv.Itoa(users), func(b *testing.B) {
			var got, msgs, sent atomic.Int64
			r := newTestRedis(b, RedisConfig{URL: url, Prefix: testkit.UniqueName("htest-"),
				Handler: func(ev *notification.Event) { got.Add(int64(len(ev.Deliveries))); msgs.Add(1) }})
			// Closed loop: publishers wait while more than window messages
			// are in flight, so the benchmark measures what the subscriber
			// sustains instead of overflowing Redis's output buffer for it
			// (Redis then drops the subscriber, which resubscribes and
			// would catch up from the store).
			const window = 20000
			// One event template per goroutine, spread over users so
			// that every partition is used.
			var gid, full atomic.Int64
			b.SetParallelism(32)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				g := gid.Add(1)
				ev := benchEvent(users)
				if users == 1 {
					ev.Deliveries[0].User = "user-g" + strconv.FormatInt(g, 10)
				}
				ctx := context.Background()
				parts := int64(len(r.route(ev)))
				for pb.Next() {
					for sent.Load()-msgs.Load() > window {
						time.Sleep(50 * time.Microsecond)
					}
					for {
						err := r.Publish(ctx, ev)
						if err == nil {
							sent.Add(parts)
							break
						}
						if !errors.Is(err, ErrQueueFull) {
							b.Error(err)
							return
						}
						full.Add(1)
						time.Sleep(50 * time.Microsecond) // back-pressure
					}
				}
			})
			want := int64(b.N * users)
			deadline := time.Now().Add(60 * time.Second)
			for got.Load() < want && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			el := time.Since(start)
			b.StopTimer()
			if got.Load() != want {
				b.Fatalf("received %d of %d deliveries", got.Load(), want)
			}
			b.ReportMetric(float64(b.N)/el.Seconds(), "events/s")
			b.ReportMetric(float64(want)/el.Seconds(), "deliveries/s")
			b.ReportMetric(float64(r.Stats().Published)/el.Seconds(), "redis-msgs/s")
			b.ReportMetric(float64(full.Load()), "queue-full")
			if n := r.Stats().Resubscribes; n > 0 {
				b.Logf("%d resubscriptions (Redis dropped the subscriber)", n)
			}
		})
	}
}

func BenchmarkRedisCodec(b *testing.B) {
	ev := benchEvent(1)
	msg := string(encodeEvent(ev))
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			_ = encodeEvent(ev)
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := decodeEvent(msg); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(len(msg)), "bytes/msg")
}
