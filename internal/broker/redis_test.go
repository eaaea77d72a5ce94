package broker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/notification"
	"github.com/heraldhq/herald/internal/testkit"
)

// streamEvents builds a mixed workload: per tenant, explicit events for
// single users, multi-user events, reads, and broadcasts. Each event's
// streams get consecutive sequences, so a receiver can check per-stream
// order.
type workload struct {
	mu      sync.Mutex
	userSeq map[string]int64 // "tenant/user" → last seq
	tenSeq  map[string]int64
}

func newWorkload() *workload {
	return &workload{userSeq: map[string]int64{}, tenSeq: map[string]int64{}}
}

func (w *workload) explicit(tenant string, users ...string) *notification.Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	ev := &notification.Event{Kind: notification.EventNotification, Tenant: tenant,
		Notification: &notification.Notification{ID: "n", Tenant: tenant, Audience: notification.Audience{Kind: notification.AudienceUsers}, Title: "x"}}
	for _, u := range users {
		k := tenant + "/" + u
		w.userSeq[k]++
		ev.Deliveries = append(ev.Deliveries, notification.Delivery{User: u, Seq: w.userSeq[k], Unread: w.userSeq[k]})
	}
	return ev
}

func (w *workload) broadcast(tenant string) *notification.Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.tenSeq[tenant]++
	return &notification.Event{Kind: notification.EventNotification, Tenant: tenant, TenantSeq: w.tenSeq[tenant],
		Notification: &notification.Notification{ID: "b", Tenant: tenant, Audience: notification.Audience{Kind: notification.AudienceTenant}}}
}

// checker verifies that each stream's events arrive in order, each once.
type checker struct {
	mu    sync.Mutex
	user  map[string]int64
	ten   map[string]int64
	n     int
	reads int
	errs  []string
}

func newChecker() *checker { return &checker{user: map[string]int64{}, ten: map[string]int64{}} }

func (c *checker) handle(ev *notification.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case ev.Kind == notification.EventRead:
		// Reads carry the unread count the user had after its last
		// notification: they must come after it on the same channel.
		if got := c.user[ev.Tenant+"/"+ev.User]; got != ev.Unread {
			c.errs = append(c.errs, fmt.Sprintf("read of %s/%s after seq %d, sent after %d", ev.Tenant, ev.User, got, ev.Unread))
		}
		c.reads++
	case ev.Notification.Audience.Broadcast():
		c.n++
		if want := c.ten[ev.Tenant] + 1; ev.TenantSeq != want {
			c.errs = append(c.errs, fmt.Sprintf("tenant %s: seq %d, want %d", ev.Tenant, ev.TenantSeq, want))
		}
		c.ten[ev.Tenant] = ev.TenantSeq
	default:
		for _, d := range ev.Deliveries {
			c.n++
			k := ev.Tenant + "/" + d.User
			if want := c.user[k] + 1; d.Seq != want {
				c.errs = append(c.errs, fmt.Sprintf("user %s: seq %d, want %d", k, d.Seq, want))
			}
			c.user[k] = d.Seq
		}
	}
}

func (c *checker) count() (int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n, c.reads
}

func (c *checker) check(t *testing.T) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.errs) > 0 {
		t.Fatalf("%d order errors, first: %v", len(c.errs), c.errs[:min(5, len(c.errs))])
	}
}

// publishWorkload publishes, from `tenants` goroutines (one per tenant, so
// each stream is published in order, as a store commits it), rounds of: a
// single-user event per user, one event for all users, a broadcast, and a
// read per user. It returns the expected deliveries and reads.
//
// With synchronous, each event goes through the next node in pubs with
// PublishSync: a publish that returned is in Redis before the next one
// starts, so per-stream order holds across nodes. Without, a tenant's
// events all go through one node (as one node's store writer commits them)
// with Publish, which returns once queued.
func publishWorkload(t *testing.T, pubs []*Redis, tenants, users, rounds int, synchronous bool) (deliveries, reads int) {
	t.Helper()
	w := newWorkload()
	var wg sync.WaitGroup
	var failed atomic.Value
	for ti := 0; ti < tenants; ti++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tenant := "tenant-" + strconv.Itoa(ti)
			names := make([]string, users)
			for i := range names {
				names[i] = "user-" + strconv.Itoa(i)
			}
			pub := func(i int, ev *notification.Event) {
				var err error
				if synchronous {
					err = pubs[i%len(pubs)].PublishSync(context.Background(), ev)
				} else {
					err = pubs[ti%len(pubs)].Publish(context.Background(), ev)
				}
				if err != nil {
					failed.Store(err)
				}
			}
			for r := 0; r < rounds; r++ {
				for i, u := range names {
					pub(i+r, w.explicit(tenant, u))
				}
				pub(r, w.explicit(tenant, names...))
				pub(r, w.broadcast(tenant))
				for i, u := range names {
					w.mu.Lock()
					unread := w.userSeq[tenant+"/"+u]
					w.mu.Unlock()
					pub(i+r, &notification.Event{Kind: notification.EventRead, Tenant: tenant, User: u, All: true, Unread: unread})
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		t.Fatalf("publish: %v", err)
	}
	return tenants * rounds * (users*2 + 1), tenants * rounds * users
}

func TestRedisOrderAcrossPartitions(t *testing.T) {
	url := testkit.RedisURL(t)
	for _, sharded := range []bool{false, true} {
		t.Run("sharded="+strconv.FormatBool(sharded), func(t *testing.T) {
			c := newChecker()
			r := newTestRedis(t, RedisConfig{URL: url, Prefix: testkit.UniqueName("htest-"), Partitions: 16, Sharded: sharded, Handler: c.handle})
			wantN, wantReads := publishWorkload(t, []*Redis{r}, 8, 20, 10, false)
			testkit.Eventually(t, 10*time.Second, func() bool {
				n, reads := c.count()
				return n == wantN && reads == wantReads
			}, "every event")
			c.check(t)
			time.Sleep(100 * time.Millisecond) // nothing more (no duplicates)
			if n, reads := c.count(); n != wantN || reads != wantReads {
				t.Fatalf("got %d deliveries %d reads, want %d %d", n, reads, wantN, wantReads)
			}
			if s := r.Stats(); s.DecodeErrors != 0 || s.PublishErrors != 0 {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}

// Two nodes on one Redis: each node's handler sees every event published by
// either node exactly once, in per-stream order.
func TestRedisTwoNodesEachGetEverything(t *testing.T) {
	url := testkit.RedisURL(t)
	for _, tc := range []struct {
		name          string
		sharded, sync bool
	}{
		{"queued", false, false},
		{"queued sharded", true, false},
		{"sync alternating nodes", false, true},
		{"sync alternating nodes sharded", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prefix := testkit.UniqueName("htest-")
			ca, cb := newChecker(), newChecker()
			a := newTestRedis(t, RedisConfig{URL: url, Prefix: prefix, Sharded: tc.sharded, NodeID: "a", Handler: ca.handle})
			b := newTestRedis(t, RedisConfig{URL: url, Prefix: prefix, Sharded: tc.sharded, NodeID: "b", Handler: cb.handle})
			wantN, wantReads := publishWorkload(t, []*Redis{a, b}, 4, 10, 10, tc.sync)
			for name, c := range map[string]*checker{"a": ca, "b": cb} {
				testkit.Eventually(t, 10*time.Second, func() bool {
					n, reads := c.count()
					return n >= wantN && reads >= wantReads
				}, "node %s gets every event", name)
			}
			time.Sleep(100 * time.Millisecond)
			for name, c := range map[string]*checker{"a": ca, "b": cb} {
				c.check(t)
				if n, reads := c.count(); n != wantN || reads != wantReads {
					t.Fatalf("node %s: %d deliveries %d reads, want exactly %d %d", name, n, reads, wantN, wantReads)
				}
			}
			// Probes stay on their own node's channel.
			if a.Healthy(context.Background()) != nil || b.Healthy(context.Background()) != nil {
				t.Fatal("unhealthy")
			}
		})
	}
}

// Close sends what is queued before it returns.
func TestRedisCloseFlushesQueue(t *testing.T) {
	url := testkit.RedisURL(t)
	prefix := testkit.UniqueName("htest-")
	var got atomic.Int64
	b := newTestRedis(t, RedisConfig{URL: url, Prefix: prefix, NodeID: "b", Handler: func(*notification.Event) { got.Add(1) }})
	a := newTestRedis(t, RedisConfig{URL: url, Prefix: prefix, NodeID: "a", Handler: func(*notification.Event) {}})
	const n = 5000
	for i := 0; i < n; i++ {
		ev := &notification.Event{Kind: notification.EventRead, Tenant: "t", User: "u" + strconv.Itoa(i%100)}
		if err := a.Publish(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 5*time.Second, func() bool { return got.Load() == n }, "every queued event at the other node")
	_ = b
}

func TestRedisConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  RedisConfig
		ok   bool
	}{
		{"defaults", RedisConfig{URL: "redis://x", Handler: func(*notification.Event) {}}, true},
		{"no url", RedisConfig{Handler: func(*notification.Event) {}}, false},
		{"no handler", RedisConfig{URL: "redis://x"}, false},
		{"brace prefix", RedisConfig{URL: "redis://x", Prefix: "a{b}", Handler: func(*notification.Event) {}}, false},
		{"brace node", RedisConfig{URL: "redis://x", NodeID: "}", Handler: func(*notification.Event) {}}, false},
		{"partitions", RedisConfig{URL: "redis://x", Partitions: -1, Handler: func(*notification.Event) {}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.setDefaults()
			if err := tc.cfg.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate = %v", err)
			}
		})
	}
	if _, err := NewRedis(context.Background(), RedisConfig{URL: "http://nope", Handler: func(*notification.Event) {}}); err == nil {
		t.Fatal("bad URL accepted")
	}
}

// NewRedis fails (in bounded time) when Redis is not there at start.
func TestRedisStartWithoutRedis(t *testing.T) {
	p := testkit.StartRedisServer(t)
	p.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	_, err := NewRedis(ctx, RedisConfig{URL: p.URL(), Handler: func(*notification.Event) {}})
	if err == nil {
		t.Fatal("NewRedis succeeded without Redis")
	}
	if d := time.Since(start); d > 2500*time.Millisecond {
		t.Fatalf("NewRedis took %s", d)
	}
}

func TestRedisCloseIdempotent(t *testing.T) {
	url := testkit.RedisURL(t)
	var s sink
	r := newTestRedis(t, RedisConfig{URL: url, Prefix: testkit.UniqueName("htest-"), Handler: s.handle})
	ev := &notification.Event{Kind: notification.EventRead, Tenant: "t", User: "u"}
	if err := r.Publish(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 5*time.Second, func() bool { return s.len() == 1 }, "delivery")
	if r.LastProbeRTT() <= 0 {
		testkit.Eventually(t, 2*time.Second, func() bool { return r.LastProbeRTT() > 0 }, "a probe RTT")
	}
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); _ = r.Close() }()
	}
	wg.Wait()
	if err := r.Publish(context.Background(), ev); !errors.Is(err, ErrClosed) {
		t.Fatalf("Publish after Close = %v", err)
	}
	if err := r.Healthy(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Healthy after Close = %v", err)
	}
}

// A black-holed connection (a partition: nothing errors, nothing arrives) is
// found by the probe: Healthy fails within ProbeInterval+ProbeTimeout, the
// silent session is replaced, and the node recovers when the path heals.
func TestRedisProbeFindsSilentPath(t *testing.T) {
	url := testkit.RedisURL(t)
	px := startProxy(t, "127.0.0.1:6379")
	_ = url
	var resubs atomic.Int32
	r := newTestRedis(t, RedisConfig{URL: px.url(), Prefix: testkit.UniqueName("htest-"), Handler: func(*notification.Event) {},
		ProbeInterval: 250 * time.Millisecond, ProbeTimeout: time.Second, OnResubscribe: func() { resubs.Add(1) }})
	testkit.Eventually(t, 3*time.Second, func() bool { return r.Healthy(context.Background()) == nil }, "healthy")
	px.set(proxyHole)
	start := time.Now()
	testkit.Eventually(t, 5*time.Second, func() bool { return r.Healthy(context.Background()) != nil }, "unhealthy")
	took := time.Since(start)
	t.Logf("silent path detected in %s: %v", took.Round(time.Millisecond), r.Healthy(context.Background()))
	if took > 2*time.Second { // ProbeInterval + ProbeTimeout + slack
		t.Fatalf("detection took %s", took)
	}
	px.set(proxyUp)
	testkit.Eventually(t, 10*time.Second, func() bool { return r.Healthy(context.Background()) == nil }, "healthy again")
	// Events published into the black hole are lost although no error was
	// seen on the subscription: the overdue probe ended the session, and the
	// new one's confirmation asked for a catch-up.
	if resubs.Load() < 2 {
		t.Fatalf("OnResubscribe fired %d times, want the first and the recovery", resubs.Load())
	}
}

// A probe that Redis accepted but that never came back, while a later one
// did, means the subscription dropped messages without failing: the session
// is replaced and OnResubscribe fires.
func TestRedisLostProbeResubscribes(t *testing.T) {
	url := testkit.RedisURL(t)
	var resubs atomic.Int32
	r := newTestRedis(t, RedisConfig{URL: url, Prefix: testkit.UniqueName("htest-"), Handler: func(*notification.Event) {},
		OnResubscribe: func() { resubs.Add(1) }})
	testkit.Eventually(t, 3*time.Second, func() bool { return r.LastProbeRTT() > 0 }, "a probe back")
	// A phantom probe: counted as accepted by Redis, never sent.
	r.pmu.Lock()
	r.probeSent++
	r.probeAt[r.probeSent%probeRing] = time.Now()
	r.probeOK[r.probeSent%probeRing] = true
	r.pmu.Unlock()
	testkit.Eventually(t, 5*time.Second, func() bool { return resubs.Load() >= 2 }, "resubscription")
	testkit.Eventually(t, 5*time.Second, func() bool { return r.Healthy(context.Background()) == nil }, "healthy")
	if st := r.Stats(); st.Resubscribes != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// A handler slower than ProbeTimeout (a large broadcast's fan-out under
// load) is not a Redis outage: the subscriber keeps reading, probes come
// back, the node stays healthy and subscribed, and every event is handed
// over in order once the handler catches up. With a queue of two, the
// subscriber also waits for room, which does not count against the probes.
func TestRedisSlowHandlerIsNotAnOutage(t *testing.T) {
	url := testkit.RedisURL(t)
	for _, queue := range []int{DefaultDeliveryQueue, 2} {
		t.Run(strconv.Itoa(queue), func(t *testing.T) {
			release := make(chan struct{})
			var once sync.Once
			unblock := func() { once.Do(func() { close(release) }) }
			var got sink
			handler := func(ev *notification.Event) {
				if ev.Notification != nil && ev.Notification.ID == "0" {
					<-release
				}
				got.handle(ev)
			}
			r := newTestRedis(t, RedisConfig{URL: url, Prefix: testkit.UniqueName("htest-"), Partitions: 1,
				DeliveryQueue: queue, ProbeInterval: 50 * time.Millisecond, ProbeTimeout: 300 * time.Millisecond, Handler: handler})
			t.Cleanup(unblock) // before Close, which waits for the handler
			ctx := context.Background()
			const n = 20
			for i := range n {
				ev := &notification.Event{Kind: notification.EventNotification, Tenant: "t",
					Notification: &notification.Notification{ID: strconv.Itoa(i), Tenant: "t"},
					Deliveries:   []notification.Delivery{{User: "u", Seq: int64(i + 1)}}}
				if err := r.Publish(ctx, ev); err != nil {
					t.Fatal(err)
				}
			}
			// The handler holds the first event for 4 probe timeouts.
			for deadline := time.Now().Add(1200 * time.Millisecond); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				if err := r.Healthy(ctx); err != nil {
					t.Fatalf("unhealthy while the handler is slow: %v", err)
				}
			}
			unblock()
			testkit.Eventually(t, 5*time.Second, func() bool { return got.len() == n }, "every event handed over")
			for i, ev := range got.events {
				if ev.Notification.ID != strconv.Itoa(i) {
					t.Fatalf("event %d is %s: out of order", i, ev.Notification.ID)
				}
			}
			if s := r.Stats(); s.Resubscribes != 0 || !s.Subscribed {
				t.Fatalf("stats %+v: the slow handler was taken for an outage", s)
			}
		})
	}
}
