package limit

import (
	"bytes"
	"github.com/heraldhq/herald/internal/audit/audittest"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/heraldhq/herald/internal/audit"
	"github.com/heraldhq/herald/internal/testkit"
)

// Two nodes share one bucket per key: the burst is spent once, cluster-wide.
func TestRedisKeyedClusterWide(t *testing.T) {
	defer goleak.VerifyNone(t)
	client, prefix := testkit.Redis(t)
	r := Rate{Per: 1, Burst: 5}
	a := NewRedisKeyed(RedisKeyedConfig{Client: client, Prefix: prefix, Rate: r})
	b := NewRedisKeyed(RedisKeyedConfig{Client: client, Prefix: prefix, Rate: r})
	allowed := 0
	for i := 0; i < 10; i++ {
		n := a
		if i%2 == 1 {
			n = b
		}
		if ok, _ := n.Allow("tenant\x00alice"); ok {
			allowed++
		}
	}
	if allowed != 5 {
		t.Fatalf("%d of 10 allowed across two nodes, want the burst of 5", allowed)
	}
	if got := a.Rejected() + b.Rejected(); got != 5 {
		t.Fatalf("Rejected = %d, want 5", got)
	}
	// a was refused at calls 6 and 8: its next refusal is its third in a row.
	if ok, strikes := a.Allow("tenant\x00alice"); ok || strikes != 3 {
		t.Fatalf("ok=%v strikes=%d: want the third consecutive rejection on this node", ok, strikes)
	}
	if ok, _ := b.Allow("tenant\x00bob"); !ok {
		t.Fatal("one key's bucket limited another key")
	}
	if a.Degraded() {
		t.Fatal("degraded with Redis up")
	}
	time.Sleep(1100 * time.Millisecond) // one token back
	if ok, strikes := b.Allow("tenant\x00alice"); !ok || strikes != 0 {
		t.Fatalf("after refill: ok=%v strikes=%d", ok, strikes)
	}
	if ok, _ := a.Allow("tenant\x00alice"); ok {
		t.Fatal("two tokens after one second at 1/s")
	}
}

func TestRedisKeyedFractionalRate(t *testing.T) {
	defer goleak.VerifyNone(t)
	client, prefix := testkit.Redis(t)
	k := NewRedisKeyed(RedisKeyedConfig{Client: client, Prefix: prefix, Rate: Rate{Per: 2.5, Burst: 1}})
	if ok, _ := k.Allow("x"); !ok {
		t.Fatal("first refused")
	}
	if ok, _ := k.Allow("x"); ok {
		t.Fatal("second allowed at once")
	}
	time.Sleep(450 * time.Millisecond) // 1/2.5 s = 400 ms per token
	if ok, _ := k.Allow("x"); !ok {
		t.Fatal("no token after 450 ms at 2.5/s")
	}
	off := NewRedisKeyed(RedisKeyedConfig{Client: client, Rate: Rate{}})
	for i := 0; i < 100; i++ {
		if ok, _ := off.Allow("x"); !ok {
			t.Fatal("disabled rate limited")
		}
	}
}

// Redis down: local limits apply at once (each call does not wait for
// Redis), with one warning; Redis back: cluster-wide again. Both changes are
// audit events, logged and counted through the Recorder.
func TestRedisKeyedFallback(t *testing.T) {
	defer goleak.VerifyNone(t)
	srv := testkit.StartRedisServer(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1})
	defer client.Close()
	var logs testkit.SyncBuffer
	var counted audittest.Counter
	k := NewRedisKeyed(RedisKeyedConfig{Client: client, Prefix: testkit.UniqueName("htest-"), Rate: Rate{Per: 1, Burst: 3},
		Cooldown: 200 * time.Millisecond, Audit: audit.New(slog.New(slog.NewTextHandler(&logs, nil)), &counted)})
	if ok, _ := k.Allow("u"); !ok {
		t.Fatal("refused with Redis up")
	}
	srv.Kill()
	start := time.Now()
	allowed := 0
	for i := 0; i < 10; i++ {
		if ok, _ := k.Allow("u"); ok {
			allowed++
		}
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("10 checks with Redis down took %s", d)
	}
	if allowed != 3 || !k.Degraded() {
		t.Fatalf("allowed %d (want the local burst of 3), degraded %v", allowed, k.Degraded())
	}
	if n := bytes.Count([]byte(logs.String()), []byte("event=limit_degraded")); n != 1 {
		t.Fatalf("%d degraded warnings, want 1:\n%s", n, logs.String())
	}
	if n := len(counted.Of(audit.LimitDegraded)); n != 1 {
		t.Fatalf("limit_degraded counted %d times, want 1", n)
	}
	srv.Start()
	time.Sleep(250 * time.Millisecond) // cooldown
	testkit.Eventually(t, 5*time.Second, func() bool { k.Allow("v"); return !k.Degraded() }, "cluster-wide limits with Redis back")
	if !bytes.Contains([]byte(logs.String()), []byte("event=limit_restored")) {
		t.Fatal("no restore notice")
	}
	if d, r := len(counted.Of(audit.LimitDegraded)), len(counted.Of(audit.LimitRestored)); d != 1 || r != 1 {
		t.Fatalf("counted %d limit_degraded and %d limit_restored, want 1 each", d, r)
	}
}

func TestRedisCounterClusterWide(t *testing.T) {
	defer goleak.VerifyNone(t)
	client, prefix := testkit.Redis(t)
	a := NewRedisCounter(RedisCounterConfig{Client: client, Prefix: prefix, Max: 3, NodeID: "a"})
	defer a.Close()
	b := NewRedisCounter(RedisCounterConfig{Client: client, Prefix: prefix, Max: 3, NodeID: "b"})
	defer b.Close()
	if !a.Acquire("u") || !a.Acquire("u") || !b.Acquire("u") {
		t.Fatal("refused under the cap")
	}
	if a.Acquire("u") || b.Acquire("u") {
		t.Fatal("fourth use allowed across two nodes with Max 3")
	}
	if a.Rejected() != 1 || b.Rejected() != 1 {
		t.Fatalf("rejected %d %d", a.Rejected(), b.Rejected())
	}
	if n := b.Count("u"); n != 3 {
		t.Fatalf("Count = %d, want 3", n)
	}
	if !b.Acquire("other") {
		t.Fatal("one key's cap limited another key")
	}
	a.Release("u")
	if !b.Acquire("u") {
		t.Fatal("released use not available to the other node")
	}
	b.Release("u")
	b.Release("u")
	a.Release("u")
	b.Release("u") // more releases than uses: ignored
	if n := a.Count("u"); n != 0 {
		t.Fatalf("Count after releases = %d", n)
	}
}

// A node that dies without releasing frees its uses after TTL; a live node's
// uses are refreshed and outlive it.
func TestRedisCounterTTL(t *testing.T) {
	defer goleak.VerifyNone(t)
	client, prefix := testkit.Redis(t)
	ttl := 600 * time.Millisecond
	dead := NewRedisCounter(RedisCounterConfig{Client: client, Prefix: prefix, Max: 2, TTL: ttl})
	live := NewRedisCounter(RedisCounterConfig{Client: client, Prefix: prefix, Max: 2, TTL: ttl})
	defer live.Close()
	if !dead.Acquire("u") || !live.Acquire("u") {
		t.Fatal("refused")
	}
	_ = dead.Close() // "crash": no release, no refresh
	if live.Acquire("u") {
		t.Fatal("over the cap")
	}
	time.Sleep(3 * ttl)
	if n := live.Count("u"); n != 1 {
		t.Fatalf("Count after the dead node's TTL = %d, want the live node's 1", n)
	}
	if !live.Acquire("u") {
		t.Fatal("dead node's use did not expire")
	}
}

func TestRedisCounterFallback(t *testing.T) {
	defer goleak.VerifyNone(t)
	srv := testkit.StartRedisServer(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1})
	defer client.Close()
	var logs testkit.SyncBuffer // no Recorder: the event is logged through Logger
	c := NewRedisCounter(RedisCounterConfig{Client: client, Prefix: testkit.UniqueName("htest-"), Max: 2, Cooldown: time.Minute,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	defer c.Close()
	if !c.Acquire("u") {
		t.Fatal("refused")
	}
	srv.Kill()
	// Locally: a fresh cap of 2 for this node (the Redis use is not known
	// to the local counter).
	if !c.Acquire("u") || !c.Acquire("u") || c.Acquire("u") {
		t.Fatal("local fallback cap not applied")
	}
	if !c.Degraded() {
		t.Fatal("not degraded")
	}
	if n := bytes.Count([]byte(logs.String()), []byte("event=limit_degraded")); n != 1 {
		t.Fatalf("%d degraded warnings, want 1:\n%s", n, logs.String())
	}
	start := time.Now()
	c.Release("u")
	c.Release("u")
	c.Release("u")
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Fatalf("releases with Redis down took %s", d)
	}
	if n := c.Count("u"); n != 0 {
		t.Fatalf("local count %d after releases", n)
	}
}

func BenchmarkRedisKeyedAllow(b *testing.B) {
	client, prefix := testkit.Redis(b)
	k := NewRedisKeyed(RedisKeyedConfig{Client: client, Prefix: prefix, Rate: Rate{Per: 1e6, Burst: 1e6}})
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			k.Allow("bench")
		}
	})
}

// Check reads the cluster-wide bucket without taking from it; Charge takes
// from it, on any node.
func TestRedisKeyedCheckAndCharge(t *testing.T) {
	defer goleak.VerifyNone(t)
	client, prefix := testkit.Redis(t)
	r := Rate{Per: 0.01, Burst: 3} // no refill within the test
	a := NewRedisKeyed(RedisKeyedConfig{Client: client, Prefix: prefix, Rate: r})
	b := NewRedisKeyed(RedisKeyedConfig{Client: client, Prefix: prefix, Rate: r})
	for range 5 {
		if ok, _ := a.Check("ip"); !ok {
			t.Fatal("Check took a token")
		}
	}
	a.Charge("ip")
	b.Charge("ip")
	if ok, _ := b.Check("ip"); !ok {
		t.Fatal("one token should be left")
	}
	a.Charge("ip")
	for _, n := range []*RedisKeyed{a, b} {
		if ok, strikes := n.Check("ip"); ok || strikes != 1 {
			t.Fatalf("after three charges: ok=%v strikes=%d", ok, strikes)
		}
	}
	if ok, _ := a.Check("other"); !ok {
		t.Fatal("one key's charges limited another key")
	}
	if a.Rejected() != 1 || b.Rejected() != 1 {
		t.Fatalf("rejected %d %d", a.Rejected(), b.Rejected())
	}
}
