package testkit

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisAddr is the shared test Redis: the machine's own, as CI runs it.
const RedisAddr = "127.0.0.1:6379"

// RedisURL returns the URL of the shared test Redis: HERALD_TEST_REDIS_URL
// when set, otherwise redis://127.0.0.1:6379/0 once it answers. Without a
// Redis the test ends through [Unavailable]. Tests sharing it keep apart
// with a key or channel prefix of their own ([UniqueName]("htest-")).
func RedisURL(t testing.TB) string {
	t.Helper()
	if u := os.Getenv("HERALD_TEST_REDIS_URL"); u != "" {
		return u
	}
	RequireTCP(t, "Redis", RedisAddr)
	return "redis://" + RedisAddr + "/0"
}

// Redis returns a client of the shared test Redis ([RedisURL]) and a key
// prefix unique to the test. When the test ends, every key containing the
// prefix is deleted and the client is closed.
func Redis(t testing.TB) (*redis.Client, string) {
	t.Helper()
	opts, err := redis.ParseURL(RedisURL(t))
	if err != nil {
		t.Fatalf("HERALD_TEST_REDIS_URL: %v", err)
	}
	client := redis.NewClient(opts)
	prefix := UniqueName("htest-")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// The prefix may stand inside a key ("rate:" + prefix), hence *…*.
		iter := client.Scan(ctx, 0, "*"+prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			client.Del(ctx, iter.Val())
		}
		_ = client.Close()
	})
	return client, prefix
}
