package limit

import (
	"strconv"
	"sync"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func TestKeyedBurstRefillAndStrikes(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	k := NewKeyed(Rate{Per: 2, Burst: 3}, time.Minute, c.now)
	for i := 0; i < 3; i++ {
		if ok, _ := k.Allow("u"); !ok {
			t.Fatalf("burst %d refused", i)
		}
	}
	for i := 1; i <= 3; i++ {
		ok, strikes := k.Allow("u")
		if ok || strikes != i {
			t.Fatalf("over limit: ok=%v strikes=%d", ok, strikes)
		}
	}
	if ok, _ := k.Allow("other"); !ok {
		t.Fatal("one key's abuse limited another key")
	}
	c.add(500 * time.Millisecond) // one token back
	if ok, strikes := k.Allow("u"); !ok || strikes != 0 {
		t.Fatal("refill did not reset")
	}
}

func TestKeyedEvictsIdleKeys(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	k := NewKeyed(Rate{Per: 1, Burst: 1}, time.Minute, c.now)
	for i := 0; i < 1000; i++ {
		k.Allow(strconv.Itoa(i))
	}
	if k.Len() != 1000 {
		t.Fatalf("len %d", k.Len())
	}
	c.add(2 * time.Minute)
	k.Allow("fresh") // sweeps its own shard on the way
	if n := k.Len(); n >= 1000 {
		t.Fatalf("%d keys kept after idle TTL", n)
	}
	k.sweep()
	if n := k.Len(); n != 1 { // only "fresh" was used recently
		t.Fatalf("%d keys kept after a full sweep", n)
	}
}

func TestDisabledRateAllowsAll(t *testing.T) {
	k := NewKeyed(Rate{}, 0, nil)
	for i := 0; i < 10000; i++ {
		if ok, _ := k.Allow("u"); !ok {
			t.Fatal("disabled limiter refused")
		}
	}
	if k.Len() != 0 {
		t.Fatal("disabled limiter tracked keys")
	}
}

func TestCounter(t *testing.T) {
	c := NewCounter(2)
	if !c.Acquire("ip") || !c.Acquire("ip") || c.Acquire("ip") {
		t.Fatal("cap not enforced")
	}
	if !c.Acquire("other") {
		t.Fatal("cap shared between keys")
	}
	c.Release("ip")
	if !c.Acquire("ip") || c.Count("ip") != 2 {
		t.Fatal("release did not free a slot")
	}
	c.Release("ip")
	c.Release("ip")
	c.Release("ip") // extra release does not go negative
	if c.Count("ip") != 0 {
		t.Fatal("count not zero")
	}
	var wg sync.WaitGroup
	u := NewCounter(0)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); u.Acquire("k"); u.Release("k") }()
	}
	wg.Wait()
	if u.Count("k") != 0 {
		t.Fatal("concurrent acquire/release unbalanced")
	}
}

// Check looks without taking; Charge takes even from an empty bucket, and
// the debt is paid off by the refill before Check passes again.
func TestKeyedCheckAndCharge(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	k := NewKeyed(Rate{Per: 2, Burst: 2}, time.Minute, c.now)
	for range 5 {
		if ok, _ := k.Check("ip"); !ok {
			t.Fatal("Check took a token")
		}
	}
	for range 3 { // two tokens, then one of debt
		k.Charge("ip")
	}
	if ok, strikes := k.Check("ip"); ok || strikes != 1 || k.Rejected() != 1 {
		t.Fatalf("after the charges: ok=%v strikes=%d rejected=%d", ok, strikes, k.Rejected())
	}
	c.add(500 * time.Millisecond) // one token back: the debt is paid, none left
	if ok, _ := k.Check("ip"); ok {
		t.Fatal("the debt was not kept")
	}
	c.add(500 * time.Millisecond)
	if ok, strikes := k.Check("ip"); !ok || strikes != 0 {
		t.Fatal("no token after the refill")
	}
	if ok, _ := k.Allow("ip"); !ok {
		t.Fatal("Allow after Check")
	}
	if ok, _ := k.Check("other"); !ok {
		t.Fatal("one key's charges limited another key")
	}
	off := NewKeyed(Rate{}, 0, nil)
	off.Charge("x")
	if ok, _ := off.Check("x"); !ok {
		t.Fatal("a disabled rate refused")
	}
}
