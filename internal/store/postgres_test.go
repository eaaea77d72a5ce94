package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/heraldhq/herald/internal/notification"
	"github.com/heraldhq/herald/internal/revocation"
)

// TestPostgres runs the Store contract and the PostgreSQL-specific tests
// against a real server. Its subtests share a set of schemas, emptied
// between them (migrating a new schema is slow).
func TestPostgres(t *testing.T) {
	p := newPGSchemas(t)
	t.Run("Contract", func(t *testing.T) {
		runContract(t, func(t *testing.T) Store {
			clk, log := newTestClock(), &eventLog{}
			return postgresUnderTest{Postgres: p.open(t, PostgresConfig{Clock: clk.Now, OnCommit: log.add}), clk: clk, log: log}
		})
	})
	t.Run("Outbox", func(t *testing.T) {
		runOutboxContract(t, func(t *testing.T) outboxUnderTest {
			clk := newTestClock()
			return postgresUnderTest{Postgres: p.open(t, PostgresConfig{Clock: clk.Now}), clk: clk, log: &eventLog{}}
		})
	})
	for _, tc := range []struct {
		name string
		test func(*testing.T, *pgSchemas)
	}{
		{"ConcurrentMigrations", testPGConcurrentMigrations},
		{"CommitOrderAcrossNodes", testPGCommitOrderAcrossNodes},
		{"IdempotencyAcrossNodes", testPGIdempotencyAcrossNodes},
		{"ConcurrentStateChanges", testPGConcurrentStateChanges},
		{"ConcurrentInbox", testPGConcurrentInbox},
		{"Unavailable", testPGUnavailable},
		{"GroupCommit", testPGGroupCommit},
		{"Reopen", testPGReopen},
		{"Sweeper", testPGSweeper},
		{"Revocations", testPGRevocations},
		{"NULRejected", testPGNULRejected},
		{"Faults", testPGFaults},
		{"OnCommit", testPGOnCommit},
		{"OutboxAcrossNodes", testPGOutboxAcrossNodes},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.test(t, p) })
	}
}

// openNodes opens n handles ("nodes") on one schema.
func openNodes(t *testing.T, p *pgSchemas, n int, cfg PostgresConfig) []*Postgres {
	t.Helper()
	if cfg.Schema == "" {
		cfg.Schema = p.get(t)
	}
	nodes := make([]*Postgres, n)
	for i := range nodes {
		nodes[i] = p.open(t, cfg)
	}
	return nodes
}

// testPGConcurrentMigrations: four nodes starting at once on a fresh
// schema apply each migration exactly once and all open.
func testPGConcurrentMigrations(t *testing.T, p *pgSchemas) {
	url := postgresURL(t)
	schema := newPGSchema(t)
	const n = 4
	stores := make([]*Postgres, n)
	errs := make([]error, n)
	runTogether(n, func(i int) {
		stores[i], errs[i] = OpenPostgres(context.Background(), PostgresConfig{URL: url, Schema: schema, MaxConns: 3})
	})
	for i, s := range stores {
		if s != nil {
			t.Cleanup(func() { _ = s.Close() })
		}
		if errs[i] != nil {
			t.Fatalf("open %d: %v", i, errs[i])
		}
	}
	rows, err := stores[0].pool.Query(context.Background(),
		`SELECT version_id, count(*) FROM goose_db_version WHERE is_applied GROUP BY version_id ORDER BY version_id`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var v, c int64
		if err := rows.Scan(&v, &c); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d:%d", v, c))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"0:1", "1:1", "2:1", "3:1", "4:1"}; !slices.Equal(got, want) {
		t.Fatalf("goose versions %v, want %v", got, want)
	}
	// Every node works on the shared tables.
	for i, s := range stores {
		publish(t, s, toUsers("t", "a"))
		if h, err := s.Head(context.Background(), rcp("t", "a", "")); err != nil || h.User != int64(i+1) {
			t.Fatalf("node %d head %v, %v", i, h, err)
		}
	}
}

// testPGCommitOrderAcrossNodes: publishers on four nodes write to
// overlapping user streams and the tenant stream while readers on every
// node poll Since. Nothing is ever deleted, so each stream's positions are
// 1, 2, 3...: a reader that sees seq N+1 before N is visible (the bigserial
// pitfall) gets a non-contiguous page.
func testPGCommitOrderAcrossNodes(t *testing.T, p *pgSchemas) {
	nodes := openNodes(t, p, 4, PostgresConfig{})
	users := []string{"u0", "u1", "u2", "u3", "u4"}
	const perNode, requests = 3, 25

	var recipients []notification.Recipient
	for _, u := range users {
		recipients = append(recipients, rcp("o", u, ""))
	}
	pub := newPublished(recipients...)
	got := make([]map[string]bool, len(recipients))
	read := func(i int, publishersDone func() bool) {
		r := recipients[i]
		got[i] = map[string]bool{}
		var pos notification.Position
		for polls := 0; ; polls++ {
			finished := publishersDone()
			s := nodes[polls%len(nodes)]
			items, more, err := s.Since(context.Background(), r, pos, 20)
			if err != nil {
				t.Errorf("since %s: %v", r.User, err)
				return
			}
			next := pos
			for _, it := range items {
				c := &next.User
				if it.Audience.Broadcast() {
					c = &next.Tenant
				}
				if it.Seq != *c+1 {
					t.Errorf("reader %s at %v: seq %d (kind %v) after %d: a later position became visible first",
						r.User, pos, it.Seq, it.Audience.Kind, *c)
					return
				}
				*c = it.Seq
				got[i][it.ID] = true
			}
			pos = next
			if !more && finished {
				return
			}
		}
	}
	publishRandom := func(j int) {
		n, p := j/perNode, j%perNode // publisher p of node n
		rng := rand.New(rand.NewPCG(uint64(n), uint64(p)))
		for range requests {
			var drafts []notification.Draft
			for range 1 + rng.IntN(3) {
				if rng.IntN(4) == 0 {
					drafts = append(drafts, toTenant("o"))
					continue
				}
				us := slices.Clone(users)
				rng.Shuffle(len(us), func(i, j int) { us[i], us[j] = us[j], us[i] })
				drafts = append(drafts, toUsers("o", us[:1+rng.IntN(len(us))]...))
			}
			if !pub.publish(t, nodes[n], drafts) {
				return
			}
		}
	}
	if !readWhilePublishing(t, len(recipients), read, len(nodes)*perNode, publishRandom) {
		return
	}
	for i, r := range recipients {
		if saw, want := slices.Sorted(maps.Keys(got[i])), pub.sortedIDs(r); !slices.Equal(saw, want) {
			t.Fatalf("reader %s saw %d items, %d published", r.User, len(saw), len(want))
		}
		checkCounts(t, nodes[i%len(nodes)], r)
	}
	var batches, reqs, deadlocks int64
	for _, s := range nodes {
		batches += s.batches.Load()
		reqs += s.batchReq.Load()
		deadlocks += s.deadlocks.Load()
	}
	t.Logf("%d requests in %d batches on %d nodes", reqs, batches, len(nodes))
	if deadlocks != 0 {
		t.Fatalf("%d deadlocks between publish batches", deadlocks)
	}
}

// testPGIdempotencyAcrossNodes: 50 concurrent identical publishes
// through two nodes create exactly one notification.
func testPGIdempotencyAcrossNodes(t *testing.T, p *pgSchemas) {
	nodes := openNodes(t, p, 2, PostgresConfig{})
	req := PublishRequest{Scope: "s", Key: "same", RequestHash: "h", Drafts: []notification.Draft{toUsers("t", "a"), toRole("t", "admin")}}
	checkIdempotentRace(t, []Store{nodes[0], nodes[1]}, req, rcp("t", "a", "admin"))
	bad := req
	bad.RequestHash = "other"
	_, err := nodes[1].Publish(context.Background(), bad)
	wantErr(t, err, ErrIdempotencyMismatch)
}

// testPGConcurrentStateChanges: three nodes publish multi-user drafts
// (users in random order) and broadcasts, some expiring, while others mark
// read, mark all read, delete and sweep. No operation fails, no two
// transactions deadlock (they lock in one order), and every counter equals
// a recount at the end.
func testPGConcurrentStateChanges(t *testing.T, p *pgSchemas) {
	clk := newTestClock()
	nodes := openNodes(t, p, 3, PostgresConfig{Clock: clk.Now})
	ctx := context.Background()
	users := []string{"a", "b", "c", "d", "e", "f"}
	roles := map[string]string{"a": "admin", "b": "admin", "c": "user", "d": "", "e": "user", "f": "admin"}
	rcpt := func(u string) notification.Recipient { return rcp("x", u, roles[u]) }

	var (
		mu  sync.Mutex
		all []string
	)
	pick := func(rng *rand.Rand, k int) []string {
		mu.Lock()
		defer mu.Unlock()
		var out []string
		for range k {
			if len(all) > 0 {
				out = append(out, all[rng.IntN(len(all))])
			}
		}
		return out
	}
	var wg sync.WaitGroup
	for w := range 9 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 9))
			for range 30 {
				s := nodes[rng.IntN(len(nodes))]
				u := users[rng.IntN(len(users))]
				var err error
				switch op := rng.IntN(10); {
				case op < 4 || w < 3:
					var res PublishResult
					res, err = s.Publish(ctx, PublishRequest{Drafts: randomExpiringDrafts(rng, clk, users)})
					if err == nil {
						mu.Lock()
						all = append(all, res.IDs...)
						mu.Unlock()
					}
				case op < 6:
					if ids := pick(rng, 1+rng.IntN(4)); len(ids) > 0 {
						_, err = s.MarkRead(ctx, rcpt(u), ids)
					}
				case op < 8:
					if ids := pick(rng, 1); len(ids) > 0 {
						_, err = s.Delete(ctx, rcpt(u), ids[0])
					}
				case op < 9:
					_, err = s.MarkAllRead(ctx, rcpt(u))
				default:
					clk.Advance(time.Second)
					_, err = s.sweepNow(ctx)
				}
				if err != nil && !errors.Is(err, ErrNotFound) {
					t.Errorf("worker %d: %v", w, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	deadlocks := logRetries(t, nodes)
	if deadlocks != 0 {
		t.Errorf("%d deadlocks", deadlocks)
	}
	// Counters include expired notifications until they are swept.
	for _, d := range []time.Duration{0, time.Minute} {
		clk.Advance(d)
		if _, err := nodes[0].sweepNow(ctx); err != nil {
			t.Fatal(err)
		}
		for i, u := range users {
			checkCounts(t, nodes[i%len(nodes)], rcpt(u))
		}
	}
}

// randomExpiringDrafts are one to four drafts to tenant "x": to the
// tenant, to the role admin or user, or to some of users in random order;
// a third of them expire within 5 s of clk.
func randomExpiringDrafts(rng *rand.Rand, clk *testClock, users []string) []notification.Draft {
	var drafts []notification.Draft
	for range 1 + rng.IntN(4) {
		var d notification.Draft
		switch rng.IntN(4) {
		case 0:
			d = toTenant("x")
		case 1:
			d = toRole("x", []string{"admin", "user"}[rng.IntN(2)])
		default:
			us := slices.Clone(users)
			rng.Shuffle(len(us), func(i, j int) { us[i], us[j] = us[j], us[i] })
			d = toUsers("x", us[:1+rng.IntN(len(us))]...)
		}
		if rng.IntN(3) == 0 {
			d.ExpiresAt = clk.Now().Add(time.Duration(1+rng.IntN(5)) * time.Second)
		}
		drafts = append(drafts, d)
	}
	return drafts
}

// testPGUnavailable: an exhausted pool or a server that does not
// answer gives ErrUnavailable within the caller's deadline, and a publish
// that timed out waiting for a connection is not committed later.
func testPGUnavailable(t *testing.T, p *pgSchemas) {
	s := p.open(t, PostgresConfig{MaxConns: 2})
	ctx := context.Background()
	a := rcp("t", "a", "")
	publish(t, s, toUsers("t", "a"))
	var held []interface{ Release() }
	for range 2 {
		c, err := s.pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	short := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, 100*time.Millisecond) }
	for name, op := range map[string]func(context.Context) error{
		"publish": func(ctx context.Context) error {
			_, err := s.Publish(ctx, PublishRequest{Drafts: []notification.Draft{toUsers("t", "a")}})
			return err
		},
		"since":    func(ctx context.Context) error { _, _, err := s.Since(ctx, a, notification.Position{}, 0); return err },
		"unread":   func(ctx context.Context) error { _, err := s.UnreadCount(ctx, a); return err },
		"all read": func(ctx context.Context) error { _, err := s.MarkAllRead(ctx, a); return err },
		"ping":     func(ctx context.Context) error { return s.Ping(ctx) },
	} {
		c, cancel := short()
		start := time.Now()
		err := op(c)
		cancel()
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s with the pool exhausted: %v, want ErrUnavailable", name, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%s took %v", name, d)
		}
	}
	for _, c := range held {
		c.Release()
	}
	publish(t, s, toUsers("t", "a")) // the writer recovered
	if h, err := s.Head(ctx, a); err != nil || h.User != 2 {
		t.Fatalf("head %v, %v: the timed-out publish must not have committed", h, err)
	}

	// Nothing listens on the port: opening fails fast with ErrUnavailable.
	start := time.Now()
	_, err := OpenPostgres(ctx, PostgresConfig{URL: "postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=2"})
	if !errors.Is(err, ErrUnavailable) || time.Since(start) > 5*time.Second {
		t.Fatalf("open unreachable: %v after %v", err, time.Since(start))
	}
}

// testPGGroupCommit: requests queued together commit in one
// transaction, and each gets its own outcome: fresh, replayed within the
// batch, idempotency mismatch (with the stored record or with an earlier
// request of the batch), caller gone.
func testPGGroupCommit(t *testing.T, p *pgSchemas) {
	s := p.open(t, PostgresConfig{})
	ctx := context.Background()
	stored := PublishRequest{Scope: "s", Key: "k", RequestHash: "h1", Drafts: []notification.Draft{toUsers("t", "a")}}
	if _, err := s.Publish(ctx, stored); err != nil {
		t.Fatal(err)
	}
	gate := make(chan struct{})
	var blocked atomic.Bool
	s.testHookBatch = func(int) {
		if blocked.CompareAndSwap(false, true) {
			<-gate
		}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // occupies the writer
		defer wg.Done()
		if _, err := s.Publish(ctx, PublishRequest{Drafts: []notification.Draft{toTenant("t")}}); err != nil {
			t.Error(err)
		}
	}()
	for !blocked.Load() {
		time.Sleep(time.Millisecond)
	}
	mismatch := stored
	mismatch.RequestHash = "h2"
	fresh := PublishRequest{Scope: "s", Key: "n", RequestHash: "x", Drafts: []notification.Draft{toUsers("t", "a"), toTenant("t")}}
	freshOther := fresh
	freshOther.RequestHash = "y"
	gone, cancel := context.WithCancel(ctx)
	reqs := []struct {
		ctx context.Context
		req PublishRequest
	}{
		{ctx, PublishRequest{Drafts: []notification.Draft{toUsers("t", "a")}}},
		{ctx, mismatch},
		{ctx, fresh},
		{ctx, fresh},
		{ctx, freshOther},
		{gone, PublishRequest{Drafts: []notification.Draft{toUsers("t", "a")}}},
	}
	results := make([]PublishResult, len(reqs))
	errs := make([]error, len(reqs))
	for i, r := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = s.Publish(r.ctx, r.req)
		}()
		deadline := time.Now().Add(10 * time.Second)
		for len(s.queue) < i+1 {
			if time.Now().After(deadline) {
				t.Fatalf("%d queued, want %d", len(s.queue), i+1)
			}
			time.Sleep(time.Millisecond)
		}
	}
	cancel()
	batches := s.batches.Load()
	close(gate)
	wg.Wait()

	if errs[0] != nil || results[0].Replayed ||
		!errors.Is(errs[1], ErrIdempotencyMismatch) ||
		errs[2] != nil || results[2].Replayed ||
		errs[3] != nil || !results[3].Replayed || !slices.Equal(results[3].IDs, results[2].IDs) || results[3].Events != nil ||
		!errors.Is(errs[4], ErrIdempotencyMismatch) ||
		!errors.Is(errs[5], ErrUnavailable) {
		t.Fatalf("results %+v\nerrs %v", results, errs)
	}
	if n := s.batches.Load() - batches; n != 2 {
		t.Fatalf("%d batches after the blocker, want 2 (the blocker, then the rest)", n)
	}
	a := rcp("t", "a", "")
	if h, err := s.Head(ctx, a); err != nil || h != (notification.Position{User: 3, Tenant: 2}) {
		t.Fatalf("head %v, %v", h, err)
	}
	checkCounts(t, s, a)
	// The replay outlives the batch.
	again, err := s.Publish(ctx, fresh)
	if err != nil || !again.Replayed || !slices.Equal(again.IDs, results[2].IDs) {
		t.Fatalf("replay %+v, %v", again, err)
	}
}

// testPGReopen: everything committed survives Close and OpenPostgres, and
// ids keep increasing even if the clock went backwards meanwhile.
func testPGReopen(t *testing.T, p *pgSchemas) {
	schema := p.get(t)
	clk := newTestClock()
	s, err := OpenPostgres(context.Background(), PostgresConfig{URL: postgresURL(t), Schema: schema, Clock: clk.Now, MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	checkReopen(t, s, clk, func() Store { return p.open(t, PostgresConfig{Schema: schema, Clock: clk.Now}) })
}

// testPGSweeper: the background sweeper runs on its own.
func testPGSweeper(t *testing.T, p *pgSchemas) {
	clk := newTestClock()
	checkSweeperRuns(t, p.open(t, PostgresConfig{Clock: clk.Now, SweepInterval: 5 * time.Millisecond}), clk)
}

func testPGRevocations(t *testing.T, p *pgSchemas) {
	clk := newTestClock()
	s := p.open(t, PostgresConfig{Clock: clk.Now})
	ctx := context.Background()
	at := clk.Now().Truncate(time.Millisecond)
	for _, r := range []revocation.Revocation{
		{Tenant: "t", User: "a", At: at.Add(-time.Hour)},
		{Tenant: "t", User: "a", At: at}, // replaces the first
		{Tenant: "t", User: "b", At: at},
		{TokenID: "live", At: at, Until: at.Add(time.Hour)},
		{TokenID: "dead", At: at, Until: at.Add(-time.Second)},
	} {
		if err := s.SaveRevocation(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteUserRevocation(ctx, "t", "b"); err != nil {
		t.Fatal(err)
	}
	got, err := s.Revocations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, func(x, y revocation.Revocation) int {
		if c := strings.Compare(x.User, y.User); c != 0 {
			return c
		}
		return strings.Compare(x.TokenID, y.TokenID)
	})
	if len(got) != 2 || got[0].TokenID != "live" || !got[0].Until.Equal(at.Add(time.Hour)) ||
		got[1].User != "a" || !got[1].At.Equal(at) || !got[1].Until.IsZero() {
		t.Fatalf("revocations %+v", got)
	}
	l := revocation.NewList(clk.Now)
	if err := l.Load(ctx, s); err != nil {
		t.Fatal(err)
	}
}

func testPGNULRejected(t *testing.T, p *pgSchemas) {
	s := p.open(t, PostgresConfig{})
	d := toUsers("t", "a")
	d.Title = "a\x00b"
	_, err := s.Publish(context.Background(), PublishRequest{Drafts: []notification.Draft{d}})
	wantErr(t, err, ErrInvalid)
	_, err = s.UnreadCount(context.Background(), rcp("t", "a\x00", ""))
	wantErr(t, err, ErrInvalid)
}

func TestPostgresConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  PostgresConfig
		ok   bool
	}{
		{"url only", PostgresConfig{URL: "postgres://h/db"}, true},
		{"no url", PostgresConfig{}, false},
		{"bad url", PostgresConfig{URL: "postgres://h:notaport/db"}, false},
		{"one conn", PostgresConfig{URL: "postgres://h/db", MaxConns: 1}, false},
		{"negative batch", PostgresConfig{URL: "postgres://h/db", BatchMax: -1}, false},
		{"negative queue", PostgresConfig{URL: "postgres://h/db", QueueSize: -1}, false},
		{"negative sweep", PostgresConfig{URL: "postgres://h/db", SweepInterval: -time.Second}, false},
		{"negative tx timeout", PostgresConfig{URL: "postgres://h/db", TxTimeout: -time.Second}, false},
		{"schema", PostgresConfig{URL: "postgres://h/db", Schema: "herald_1"}, true},
		{"bad schema", PostgresConfig{URL: "postgres://h/db", Schema: "a;b"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v", err)
			}
		})
	}
}

// testPGOnCommit: the commit hook sees every committed write before its
// caller is answered, publishes in commit order.
func testPGOnCommit(t *testing.T, p *pgSchemas) {
	var (
		mu  sync.Mutex
		got []*notification.Event
	)
	seen := func(ev *notification.Event) bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(got, ev)
	}
	s := p.open(t, PostgresConfig{OnCommit: func(evs []*notification.Event) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, evs...)
	}})
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := s.Publish(ctx, PublishRequest{Drafts: []notification.Draft{toUsers("t", "a", fmt.Sprintf("b%d", i)), toTenant("t")}})
			if err != nil {
				t.Error(err)
				return
			}
			for _, ev := range res.Events {
				if !seen(ev) {
					t.Error("publish answered before its event reached OnCommit")
				}
			}
		}()
	}
	wg.Wait()
	var lastUser, lastTenant int64
	mu.Lock()
	for _, ev := range got {
		if ev.TenantSeq != 0 {
			if ev.TenantSeq != lastTenant+1 {
				t.Fatalf("tenant seq %d after %d", ev.TenantSeq, lastTenant)
			}
			lastTenant = ev.TenantSeq
			continue
		}
		if d := ev.Deliveries[0]; d.User != "a" || d.Seq != lastUser+1 {
			t.Fatalf("delivery %+v after seq %d", d, lastUser)
		}
		lastUser++
	}
	n := len(got)
	mu.Unlock()
	if n != 40 {
		t.Fatalf("%d events, want 40", n)
	}
	ch, err := s.MarkAllRead(ctx, rcp("t", "a", ""))
	if err != nil || ch.Event == nil || !seen(ch.Event) {
		t.Fatalf("mark all read: %+v, %v", ch, err)
	}
	// Replays and failures fire nothing.
	key := PublishRequest{Scope: "s", Key: "k", RequestHash: "h", Drafts: []notification.Draft{toUsers("t", "a")}}
	for range 2 {
		if _, err := s.Publish(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != n+2 {
		t.Fatalf("%d events after a publish and its replay, want %d", len(got), n+2)
	}
}

func TestClassifyPG(t *testing.T) {
	pg := func(code string) error { return fmt.Errorf("query: %w", &pgconn.PgError{Code: code}) }
	for _, tc := range []struct {
		name string
		err  error
		want error // nil: returned unwrapped
	}{
		{"deadline", context.DeadlineExceeded, ErrUnavailable},
		{"cancelled", fmt.Errorf("x: %w", context.Canceled), ErrUnavailable},
		{"connection lost", io.ErrUnexpectedEOF, ErrUnavailable},
		{"net", &net.OpError{Op: "dial", Err: errors.New("refused")}, ErrUnavailable},
		{"admin shutdown", pg("57P01"), ErrUnavailable},
		{"cannot connect now", pg("57P03"), ErrUnavailable},
		{"too many connections", pg("53300"), ErrUnavailable},
		{"connection failure", pg("08006"), ErrUnavailable},
		{"statement timeout", pg("57014"), ErrUnavailable},
		{"deadlock", pg("40P01"), ErrUnavailable},
		{"serialization", pg("40001"), ErrUnavailable},
		{"read only", pg("25006"), ErrUnavailable},
		{"bad encoding", pg("22021"), ErrInvalid},
		{"unique violation", pg("23505"), nil},
		{"syntax", pg("42601"), nil},
		{"not found", ErrNotFound, ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := classifyPG(tc.err)
			if !errors.Is(got, tc.err) {
				t.Fatalf("%v does not wrap %v", got, tc.err)
			}
			for _, s := range []error{ErrUnavailable, ErrInvalid} {
				if errors.Is(got, s) != (tc.want == s) {
					t.Fatalf("classifyPG(%v) = %v, want %v", tc.err, got, tc.want)
				}
			}
		})
	}
	if !isRetryablePG(pg("40P01")) || !isRetryablePG(pg("40001")) || isRetryablePG(pg("23505")) {
		t.Fatal("isRetryablePG")
	}
}

// testPGOutboxAcrossNodes: three nodes claiming one outbox at once never
// claim a row twice.
func testPGOutboxAcrossNodes(t *testing.T, p *pgSchemas) {
	nodes := openNodes(t, p, 3, PostgresConfig{})
	handles := make([]Outbox, len(nodes))
	for i, n := range nodes {
		handles[i] = n
	}
	checkClaimsDisjoint(t, handles, 300)
}

// logRetries logs the transactions nodes retried, and returns how many of
// them were for deadlocks.
func logRetries(t *testing.T, nodes []*Postgres) (deadlocks int64) {
	t.Helper()
	var retries int64
	for _, s := range nodes {
		retries += s.retries.Load()
		deadlocks += s.deadlocks.Load()
	}
	t.Logf("%d transactions retried, %d for deadlocks", retries, deadlocks)
	return deadlocks
}
