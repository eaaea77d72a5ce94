package presence

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/internal/testkit"
)

func TestMain(m *testing.M) { testkit.LeakMain(m) }

// events records what trackers emit.
type events struct {
	mu  sync.Mutex
	got []string // "node event tenant/user"
}

func (e *events) emitter(node string) Emitter {
	return func(_ context.Context, event string, ks []Key) {
		e.mu.Lock()
		for _, k := range ks {
			e.got = append(e.got, fmt.Sprintf("%s %s %s/%s", node, event, k.Tenant, k.User))
		}
		e.mu.Unlock()
	}
}

func (e *events) list() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.got)
}

func startTracker(t *testing.T, cfg Config, dir Directory, emit Emitter) *Tracker {
	t.Helper()
	tr := New(cfg, dir, emit)
	tr.Start()
	t.Cleanup(tr.Close)
	return tr
}

func lookup(t *testing.T, tr *Tracker, tenant string, users ...string) []Status {
	t.Helper()
	st, err := tr.Lookup(context.Background(), tenant, users)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func waitStatus(t *testing.T, tr *Tracker, tenant, user string, conns int, transports Counts) {
	t.Helper()
	testkit.Eventually(t, 5*time.Second, func() bool {
		s := lookup(t, tr, tenant, user)[0]
		if s.Connections != conns || s.Online != (conns > 0) || len(s.Transports) != len(transports) {
			return false
		}
		for k, v := range transports {
			if s.Transports[k] != v {
				return false
			}
		}
		return true
	}, "%s/%s with %d connections %v", tenant, user, conns, transports)
}

// checkNoEventFor polls for a while that nothing more is emitted.
func checkNoEventFor(t *testing.T, ev *events, want []string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if got := ev.list(); !slices.Equal(got, want) {
			t.Fatalf("events %v, want %v", got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// An entry is kept for every online user: it stays in the 32-byte size
// class (it was 64 bytes with a time.Time and the map beside the counters).
func TestEntryFitsItsSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(entry{}); n > 32 {
		t.Fatalf("presence entry is %d bytes, want at most 32", n)
	}
}

// Names outside the connection transports are counted too.
func TestOtherTransportCounted(t *testing.T) {
	var e entry
	e.add("ws", 1)
	e.add("carrier-pigeon", 2)
	e.add("carrier-pigeon", -1)
	if got := e.countsMap(); e.total() != 2 || got["ws"] != 1 || got["carrier-pigeon"] != 1 || len(got) != 2 {
		t.Fatalf("counts %v, total %d", got, e.total())
	}
	e.add("carrier-pigeon", -5)
	if e.other["carrier-pigeon"] != 0 || len(e.other) != 0 || e.total() != 1 {
		t.Fatalf("after leaving: other %v, total %d", e.other, e.total())
	}
}

func TestSingleNodeOnlineOfflineDebounced(t *testing.T) {
	ev := &events{}
	tr := startTracker(t, Config{Grace: 150 * time.Millisecond}, nil, ev.emitter("a"))
	tr.Connected("t1", "alice", "ws")
	tr.Connected("t1", "alice", "sse")
	waitStatus(t, tr, "t1", "alice", 2, Counts{"ws": 1, "sse": 1})
	testkit.Eventually(t, time.Second, func() bool { return len(ev.list()) == 1 }, "online")
	// A reload: the connection closes and another opens within the grace.
	tr.Disconnected("t1", "alice", "ws")
	tr.Disconnected("t1", "alice", "sse")
	tr.Connected("t1", "alice", "ws")
	want := []string{"a user.online t1/alice"}
	checkNoEventFor(t, ev, want, 300*time.Millisecond)
	waitStatus(t, tr, "t1", "alice", 1, Counts{"ws": 1})
	// Gone for good: offline after the grace, and not online in lookups.
	tr.Disconnected("t1", "alice", "ws")
	waitStatus(t, tr, "t1", "alice", 0, Counts{})
	testkit.Eventually(t, 2*time.Second, func() bool { return len(ev.list()) == 2 }, "offline")
	if got := ev.list(); got[1] != "a user.offline t1/alice" {
		t.Fatalf("events %v", got)
	}
	// Another user: online, then offline after the grace.
	tr.Connected("t1", "bob", "ws")
	testkit.Eventually(t, time.Second, func() bool { return len(ev.list()) == 3 }, "online of bob")
	tr.Disconnected("t1", "bob", "ws")
	testkit.Eventually(t, 2*time.Second, func() bool {
		got := ev.list()
		return len(got) == 4 && got[2] == "a user.online t1/bob" && got[3] == "a user.offline t1/bob"
	}, "online and offline of bob")
	if st := lookup(t, tr, "t2", "alice")[0]; st.Online {
		t.Fatal("another tenant's alice is online")
	}
}

func newRedisDir(t *testing.T, prefix, node string, ttl time.Duration) *Redis {
	t.Helper()
	rdb, _ := testkit.Redis(t)
	d, err := NewRedis(RedisConfig{Client: rdb, Prefix: prefix, NodeID: node, TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestRedisAcrossNodes: presence sums both nodes; online and offline are
// emitted once cluster-wide; moving to another node within the grace
// emits nothing.
func TestRedisAcrossNodes(t *testing.T) {
	_, prefix := testkit.Redis(t)
	ev := &events{}
	cfg := Config{Grace: 150 * time.Millisecond, TTL: time.Second}
	a := startTracker(t, cfg, newRedisDir(t, prefix, "A", cfg.TTL), ev.emitter("A"))
	b := startTracker(t, cfg, newRedisDir(t, prefix, "B", cfg.TTL), ev.emitter("B"))
	a.Connected("t1", "a:b", "ws")
	testkit.Eventually(t, time.Second, func() bool { return len(ev.list()) == 1 }, "online")
	b.Connected("t1", "a:b", "sse")
	b.Connected("t1", "a:b", "sse")
	waitStatus(t, a, "t1", "a:b", 3, Counts{"ws": 1, "sse": 2})
	waitStatus(t, b, "t1", "a:b", 3, Counts{"ws": 1, "sse": 2})
	if st := lookup(t, a, "t1:a", "b")[0]; st.Online {
		t.Fatal("tenant t1:a user b read t1's a:b entry")
	}
	// Leave A, stay on B; then move from B back to A within the grace.
	a.Disconnected("t1", "a:b", "ws")
	b.Disconnected("t1", "a:b", "sse")
	b.Disconnected("t1", "a:b", "sse")
	a.Connected("t1", "a:b", "ws")
	want := []string{"A user.online t1/a:b"}
	checkNoEventFor(t, ev, want, 400*time.Millisecond)
	waitStatus(t, b, "t1", "a:b", 1, Counts{"ws": 1})
	a.Disconnected("t1", "a:b", "ws")
	testkit.Eventually(t, 2*time.Second, func() bool { return len(ev.list()) == 2 }, "offline")
	if got := ev.list(); got[1] != "A user.offline t1/a:b" {
		t.Fatalf("events %v", got)
	}
}

// TestRedisDeadNode: a node that stops refreshing (it died) has its
// entries expire, and a live node emits user.offline for its users.
func TestRedisDeadNode(t *testing.T) {
	_, prefix := testkit.Redis(t)
	ev := &events{}
	cfg := Config{Grace: 100 * time.Millisecond, TTL: 600 * time.Millisecond}
	dead := New(cfg, newRedisDir(t, prefix, "dead", cfg.TTL), ev.emitter("dead"))
	dead.Start()
	live := startTracker(t, cfg, newRedisDir(t, prefix, "live", cfg.TTL), ev.emitter("live"))
	dead.Connected("t1", "carol", "ws")
	live.Connected("t1", "dave", "ws")
	dead.Connected("t1", "dave", "ws")
	waitStatus(t, live, "t1", "carol", 1, Counts{"ws": 1})
	waitStatus(t, live, "t1", "dave", 2, Counts{"ws": 2})
	testkit.Eventually(t, 2*time.Second, func() bool { return len(ev.list()) == 2 }, "2 online")
	// Stop it without cleaning up, as a crash would (before its first
	// refresh: its entries alone put it in the node index).
	dead.Close()
	waitStatus(t, live, "t1", "carol", 0, Counts{})
	waitStatus(t, live, "t1", "dave", 1, Counts{"ws": 1})
	testkit.Eventually(t, 3*time.Second, func() bool { return slices.Contains(ev.list(), "live user.offline t1/carol") },
		"offline for the dead node's user")
	checkNoEventFor(t, ev, ev.list(), 200*time.Millisecond)
	if slices.Contains(ev.list(), "live user.offline t1/dave") {
		t.Fatalf("dave is still online on the live node: %v", ev.list())
	}
}

func TestUserKeyRoundTrip(t *testing.T) {
	r := &Redis{prefix: "herald:presence:"}
	for _, k := range []Key{{"t", "u"}, {"a:b", "c"}, {"a", "b:c"}, {"ünï", "x y"}} {
		got, ok := r.parseUserKey(r.userKey(k))
		if !ok || got != k {
			t.Fatalf("%+v -> %q -> %+v %v", k, r.userKey(k), got, ok)
		}
	}
	for _, bad := range []string{"other:1:a:b", "herald:presence:x:a", "herald:presence:5:ab:c", "herald:presence:1:ab"} {
		if _, ok := r.parseUserKey(bad); ok {
			t.Fatalf("%q parsed", bad)
		}
	}
	if _, _, ok := parseValue("nope"); ok {
		t.Fatal("malformed value parsed")
	}
}

// TestRedisDown: while Redis is down, connects are counted locally and
// nothing is emitted; once it is back, the directory catches up and
// user.online is sent once.
func TestRedisDown(t *testing.T) {
	srv := testkit.StartRedisServer(t)
	opts, err := redis.ParseURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { _ = rdb.Close() })
	dir, err := NewRedis(RedisConfig{Client: rdb, NodeID: "A", TTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ev := &events{}
	tr := startTracker(t, Config{Grace: 100 * time.Millisecond, TTL: time.Second}, dir, ev.emitter("A"))
	srv.Kill()
	tr.Connected("t1", "ivy", "ws")
	checkNoEventFor(t, ev, nil, 300*time.Millisecond)
	if _, err := tr.Lookup(context.Background(), "t1", []string{"ivy"}); err == nil {
		t.Fatal("lookup answered without Redis")
	}
	srv.Start()
	testkit.Eventually(t, 10*time.Second, func() bool { return len(ev.list()) == 1 }, "user.online after Redis is back")
	waitStatus(t, tr, "t1", "ivy", 1, Counts{"ws": 1})
	if got := ev.list(); got[0] != "A user.online t1/ivy" {
		t.Fatalf("events %v", got)
	}
}

// TestRedisPutMany: one pipeline records many users, with Put's first
// flags (false for a user another node already holds), by hash and by
// source; a failed pipeline reports none done.
func TestRedisPutMany(t *testing.T) {
	_, prefix := testkit.Redis(t)
	ctx := context.Background()
	a, b := newRedisDir(t, prefix, "A", time.Minute), newRedisDir(t, prefix, "B", time.Minute)
	if _, err := a.Put(ctx, Key{"t1", "x"}, Counts{"ws": 1}); err != nil {
		t.Fatal(err)
	}
	first, err := b.PutMany(ctx, []Put{{Key{"t1", "x"}, Counts{"sse": 2}}, {Key{"t1", "y"}, Counts{"ws": 1}}, {Key{"t2", "x"}, Counts{"ws": 1}}})
	if err != nil || !slices.Equal(first, []bool{false, true, true}) {
		t.Fatalf("PutMany = %v, %v", first, err)
	}
	first, err = b.putMany(ctx, []Put{{Key{"t1", "y"}, Counts{"ws": 2}}, {Key{"t1", "z"}, Counts{"ws": 1}}}, true)
	if err != nil || !slices.Equal(first, []bool{false, true}) {
		t.Fatalf("putMany by source = %v, %v", first, err)
	}
	st, err := a.Lookup(ctx, "t1", []string{"x", "y", "z"})
	if err != nil || st[0].Connections != 3 || st[1].Connections != 2 || st[2].Connections != 1 {
		t.Fatalf("lookup %+v, %v", st, err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if first, err := b.PutMany(cancelled, []Put{{Key{"t1", "w"}, Counts{"ws": 1}}}); err == nil || len(first) != 0 {
		t.Fatalf("PutMany on a cancelled context = %v, %v", first, err)
	}
}
