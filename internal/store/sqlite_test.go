package store

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/pressly/goose/v3"

	"github.com/heraldhq/herald/internal/notification"
	"github.com/heraldhq/herald/internal/testkit"
)

func TestMain(m *testing.M) {
	testkit.LeakMain(m)
}

// sqliteUnderTest is the SQLite engine with the test hooks the contract
// looks for.
type sqliteUnderTest struct {
	*SQLite
	clk *testClock
	log *eventLog
}

func (s sqliteUnderTest) fakeClock() *testClock   { return s.clk }
func (s sqliteUnderTest) committedLog() *eventLog { return s.log }

func openTestSQLite(t testing.TB, cfg SQLiteConfig) *SQLite {
	t.Helper()
	if cfg.Path == "" {
		cfg.Path = filepath.Join(t.TempDir(), "herald.db")
	}
	s, err := OpenSQLite(context.Background(), cfg)
	return mustOpen(t, s, err)
}

func TestSQLiteContract(t *testing.T) {
	runContract(t, func(t *testing.T) Store {
		clk, log := newTestClock(), &eventLog{}
		return sqliteUnderTest{SQLite: openTestSQLite(t, SQLiteConfig{Clock: clk.Now, OnCommit: log.add}), clk: clk, log: log}
	})
}

func TestSQLitePragmas(t *testing.T) {
	s := openTestSQLite(t, SQLiteConfig{})
	ctx := context.Background()
	var mode string
	var syncMode, fk int
	if err := s.w.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode %q, %v", mode, err)
	}
	if err := s.w.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&syncMode); err != nil || syncMode != 2 {
		t.Fatalf("synchronous %d, %v; want 2 (FULL)", syncMode, err)
	}
	if err := s.w.QueryRowContext(ctx, `PRAGMA foreign_keys`).Scan(&fk); err != nil || fk != 1 {
		t.Fatalf("foreign_keys %d, %v", fk, err)
	}
	if _, err := s.rdb.ExecContext(ctx, `DELETE FROM notifications`); err == nil {
		t.Fatal("read pool accepted a write")
	}
}

// TestSQLiteReopen: everything committed survives Close and OpenSQLite, and
// ids keep increasing even if the clock went backwards meanwhile.
func TestSQLiteReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "herald.db")
	clk := newTestClock()
	s, err := OpenSQLite(context.Background(), SQLiteConfig{Path: path, Clock: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	checkReopen(t, s, clk, func() Store { return openTestSQLite(t, SQLiteConfig{Path: path, Clock: clk.Now}) })
}

// blockWriter occupies the writer until the returned function is called, so
// that requests queue up and are committed as one batch.
func blockWriter(t *testing.T, s *SQLite) (release func()) {
	t.Helper()
	started, unblock := make(chan struct{}), make(chan struct{})
	go func() {
		_, _ = submit(s, context.Background(), "block", func(context.Context, *wtx) (struct{}, error) {
			close(started)
			<-unblock
			return struct{}{}, nil
		})
	}()
	<-started
	var once sync.Once
	release = func() { once.Do(func() { close(unblock) }) }
	t.Cleanup(release)
	return release
}

// waitQueued polls until n requests are queued.
func waitQueued(t *testing.T, s *SQLite, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(s.queue) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests queued, want %d", len(s.queue), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestSQLiteGroupCommitIsolation: in one batch, a request that fails (SQL
// error, idempotency mismatch) or whose caller gave up rolls back alone.
func TestSQLiteGroupCommitIsolation(t *testing.T) {
	s := openTestSQLite(t, SQLiteConfig{})
	ctx := context.Background()
	keyed := PublishRequest{Scope: "s", Key: "k", RequestHash: "h1", Drafts: []notification.Draft{toUsers("t", "a")}}
	if _, err := s.Publish(ctx, keyed); err != nil {
		t.Fatal(err)
	}
	release := blockWriter(t, s)

	var wg sync.WaitGroup
	errs := make([]error, 5)
	run := func(i int, f func() error) {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = f() }()
		waitQueued(t, s, i+1)
	}
	run(0, func() error {
		_, err := s.Publish(ctx, PublishRequest{Drafts: []notification.Draft{toUsers("t", "a")}})
		return err
	})
	run(1, func() error {
		_, err := submit(s, ctx, "bad sql", func(ctx context.Context, tx *wtx) (int, error) {
			if _, err := tx.ExecContext(ctx, `INSERT INTO tenant_streams (tenant, seq) VALUES ('t', 100)`); err != nil {
				return 0, err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO no_such_table VALUES (1)`)
			return 0, err
		})
		return err
	})
	mismatch := keyed
	mismatch.RequestHash = "h2"
	run(2, func() error { _, err := s.Publish(ctx, mismatch); return err })
	gone, cancel := context.WithCancel(ctx)
	run(3, func() error {
		_, err := s.Publish(gone, PublishRequest{Drafts: []notification.Draft{toUsers("t", "a")}})
		return err
	})
	cancel()
	run(4, func() error {
		_, err := s.Publish(ctx, PublishRequest{Drafts: []notification.Draft{toTenant("t")}})
		return err
	})
	release()
	wg.Wait()

	if errs[0] != nil || errs[1] == nil || !errors.Is(errs[2], ErrIdempotencyMismatch) || !errors.Is(errs[3], ErrUnavailable) || errs[4] != nil {
		t.Fatalf("errs %v", errs)
	}
	a := rcp("t", "a", "")
	if h, err := s.Head(ctx, a); err != nil || h != (notification.Position{User: 2, Tenant: 1}) {
		t.Fatalf("head %v, %v", h, err)
	}
	checkCounts(t, s, a)
}

// TestSQLiteSoloAndLoneFailure: a large request is committed on its own
// between batches, and a lone request that fails is rolled back entirely.
func TestSQLiteSoloAndLoneFailure(t *testing.T) {
	s := openTestSQLite(t, SQLiteConfig{})
	ctx := context.Background()
	_, err := submit(s, ctx, "bad sql", func(ctx context.Context, tx *wtx) (int, error) {
		if _, err := tx.ExecContext(ctx, `INSERT INTO tenant_streams (tenant, seq) VALUES ('t', 100)`); err != nil {
			return 0, err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO no_such_table VALUES (1)`)
		return 0, err
	})
	if err == nil {
		t.Fatal("bad sql succeeded")
	}

	release := blockWriter(t, s)
	big := make([]notification.Draft, soloDrafts+1)
	for i := range big {
		big[i] = toUsers("t", "a")
	}
	var wg sync.WaitGroup
	for i, drafts := range [][]notification.Draft{{toTenant("t")}, big, {toTenant("t")}, big, {toUsers("t", "a")}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Publish(ctx, PublishRequest{Drafts: drafts}); err != nil {
				t.Error(err)
			}
		}()
		waitQueued(t, s, i+1)
	}
	batches := s.batches.Load()
	release()
	wg.Wait()
	// Counted after release: the blocker, {tenant}, {big}, {tenant}, {big}, {users}.
	if n := s.batches.Load() - batches; n != 6 {
		t.Fatalf("%d batches, want 6", n)
	}
	a := rcp("t", "a", "")
	if h, err := s.Head(ctx, a); err != nil || h != (notification.Position{User: 2*soloDrafts + 3, Tenant: 2}) {
		t.Fatalf("head %v, %v", h, err)
	}
	checkCounts(t, s, a)
}

// TestSQLiteQueueFull: a full queue and an ending ctx give ErrUnavailable;
// a passing Deadline gives the same error.
func TestSQLiteQueueFull(t *testing.T) {
	s := openTestSQLite(t, SQLiteConfig{QueueSize: 1})
	release := blockWriter(t, s)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if _, err := s.Publish(context.Background(), PublishRequest{Drafts: []notification.Draft{toTenant("t")}}); err != nil {
			t.Error(err)
		}
	}()
	waitQueued(t, s, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := s.Publish(ctx, PublishRequest{Drafts: []notification.Draft{toTenant("t")}})
	wantErr(t, err, ErrUnavailable)
	_, dlErr := s.Publish(context.Background(), PublishRequest{Drafts: []notification.Draft{toTenant("t")}, Deadline: time.Now().Add(20 * time.Millisecond)})
	if !errors.Is(dlErr, context.DeadlineExceeded) || dlErr.Error() != err.Error() {
		t.Fatalf("full queue past the Deadline: %v, want %v", dlErr, err)
	}
	release()
	wg.Wait()
}

// TestSQLiteCloseDrains: Close commits what was queued before it.
func TestSQLiteCloseDrains(t *testing.T) {
	path := filepath.Join(t.TempDir(), "herald.db")
	s, err := OpenSQLite(context.Background(), SQLiteConfig{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	release := blockWriter(t, s)
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Publish(context.Background(), PublishRequest{Drafts: []notification.Draft{toUsers("t", "a")}}); err != nil {
				t.Error(err)
			}
		}()
		waitQueued(t, s, i+1)
	}
	closed := make(chan error)
	go func() { closed <- s.Close() }()
	time.Sleep(10 * time.Millisecond) // let Close mark the store closed
	release()
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	s2 := openTestSQLite(t, SQLiteConfig{Path: path})
	if n := unread(t, s2, rcp("t", "a", "")); n != 10 {
		t.Fatalf("unread after reopen %d, want 10", n)
	}
}

func TestSQLiteConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  SQLiteConfig
		ok   bool
	}{
		{"zero", SQLiteConfig{}, true},
		{"memory", SQLiteConfig{Path: ":memory:"}, false},
		{"uri", SQLiteConfig{Path: "file:x.db"}, false},
		{"question mark", SQLiteConfig{Path: "a?b"}, false},
		{"negative batch", SQLiteConfig{BatchMax: -1}, false},
		{"negative queue", SQLiteConfig{QueueSize: -1}, false},
		{"negative sweep", SQLiteConfig{SweepInterval: -time.Second}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v", err)
			}
		})
	}
}

func TestIDSourceMonotonic(t *testing.T) {
	g := newIDSource()
	now := time.Now()
	var last string
	for i := range 10000 {
		at := now
		if i%3 == 0 {
			at = now.Add(-time.Duration(i) * time.Millisecond) // the clock steps back
		}
		id, err := g.next(at)
		if err != nil {
			t.Fatal(err)
		}
		if !notification.ValidID(id) || id <= last {
			t.Fatalf("id %d: %s after %s", i, id, last)
		}
		last = id
	}
	future, err := g.next(now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	g = newIDSource() // a restarted process
	if err := g.observe(future); err != nil {
		t.Fatal(err)
	}
	if id, err := g.next(now); err != nil || id <= future {
		t.Fatalf("id %s, %v: not after observed %s", id, err, future)
	}
}

// maxEntropy reads as all one bits: with an increment of 1, every second id
// in the same millisecond overflows the monotonic entropy.
type maxEntropy struct{}

func (maxEntropy) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 0xff
	}
	return len(p), nil
}

// TestIDSourceOverflow: when the entropy of a millisecond is used up, next
// moves to the following millisecond instead of failing or repeating an id.
func TestIDSourceOverflow(t *testing.T) {
	g := &idSource{entropy: ulid.Monotonic(maxEntropy{}, 1)}
	at := time.UnixMilli(1_700_000_000_000)
	var last string
	for i := range 3 {
		id, err := g.next(at) // the clock stalls
		if err != nil {
			t.Fatalf("id %d: %v", i, err)
		}
		u, err := ulid.ParseStrict(id)
		if err != nil {
			t.Fatal(err)
		}
		if want := ulid.Timestamp(at) + uint64(i); u.Time() != want || id <= last {
			t.Fatalf("id %d: %s (ms %d, want %d) after %s", i, id, u.Time(), want, last)
		}
		last = id
	}
}

// TestSQLiteSweeper: the background sweeper runs on its own.
func TestSQLiteSweeper(t *testing.T) {
	clk := newTestClock()
	checkSweeperRuns(t, openTestSQLite(t, SQLiteConfig{Clock: clk.Now, SweepInterval: 5 * time.Millisecond}), clk)
}

// TestSQLiteCheckpointer: commits wake the checkpointer.
func TestSQLiteCheckpointer(t *testing.T) {
	s := openTestSQLite(t, SQLiteConfig{})
	publish(t, s, toTenant("t"))
	deadline := time.Now().Add(10 * time.Second)
	for s.checkpoints.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no checkpoint after a commit")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := s.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestSQLiteWALRestarts: under steady writes the WAL is written from its
// beginning again (the writer checkpoints the tail when idle) instead of
// growing by every commit: once the writes stop, it holds fewer frames
// than there were commits, each of which wrote at least one.
func TestSQLiteWALRestarts(t *testing.T) {
	s := openTestSQLite(t, SQLiteConfig{checkpointEvery: time.Millisecond})
	const commits = 1000
	for i := range commits {
		publish(t, s, toUsers("t", "u"+strconv.Itoa(i%7)))
	}
	var busy, frames, copied int
	if err := s.cdb.QueryRow(`PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &frames, &copied); err != nil {
		t.Fatal(err)
	}
	if frames >= commits || s.tails.Load() == 0 {
		t.Fatalf("%d frames in the WAL after %d commits (%d checkpoints, %d tail checkpoints): it never restarted",
			frames, commits, s.checkpoints.Load(), s.tails.Load())
	}
}

// TestSQLiteListPlan: the explicit inbox list walks the user's primary key
// (no index by id, no sort), and the cursor's own seq bounds the walk.
func TestSQLiteListPlan(t *testing.T) {
	s := openTestSQLite(t, SQLiteConfig{})
	ctx := context.Background()
	for _, q := range []string{listExplicitSQL, listExplicitUnreadSQL} {
		rows, err := s.rdb.QueryContext(ctx, "EXPLAIN QUERY PLAN "+q, "t", "u", beforeEnd, 0, 10, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
		all := strings.Join(plan, "\n")
		if strings.Contains(all, "TEMP B-TREE") || !strings.Contains(all, "SEARCH i USING PRIMARY KEY (tenant=? AND user_id=? AND seq<?)") ||
			!strings.Contains(all, "USING COVERING INDEX inbox_notification") {
			t.Fatalf("plan:\n%s", all)
		}
	}
}

// TestSQLiteMigrationInboxIndexes: a database written before migration 3
// (inbox indexes) is upgraded in place, and the migration's Down restores
// the old indexes: the inbox reads the same before and after either way.
func TestSQLiteMigrationInboxIndexes(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "herald.db")
	s := openTestSQLite(t, SQLiteConfig{Path: path})
	a := rcp("t", "a", "")
	var drafts []notification.Draft
	for i := range 30 {
		drafts = append(drafts, []notification.Draft{toUsers("t", "a"), toTenant("t"), toUsers("t", "a", "b")}[i%3])
	}
	res := publish(t, s, drafts...)
	if _, err := s.MarkRead(ctx, a, res.IDs[:7]); err != nil {
		t.Fatal(err)
	}
	want, wantUnread := ids(listAll(t, s, a, false)), ids(listAll(t, s, a, true))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Down to version 2, as a database written before migration 3 is.
	db := sqliteDownTo(t, path, 2)
	var n int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name IN ('inbox_user_unread', 'inbox_user_notification')`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("old indexes after down: %d, %v", n, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// Opening upgrades it again; nothing changed for the reader.
	s2 := openTestSQLite(t, SQLiteConfig{Path: path})
	if got := ids(listAll(t, s2, a, false)); !slices.Equal(got, want) {
		t.Fatalf("list after upgrade %v, want %v", got, want)
	}
	if got := ids(listAll(t, s2, a, true)); !slices.Equal(got, wantUnread) {
		t.Fatalf("unread list after upgrade %v, want %v", got, wantUnread)
	}
	checkCounts(t, s2, a)
	checkCounts(t, s2, rcp("t", "b", ""))
}

// TestSQLiteWriterRecoversAnOpenTransaction: a transaction left open on the
// writer's connection (a ROLLBACK that failed) is rolled back by the next
// batch, which then commits, instead of failing every batch after it.
func TestSQLiteWriterRecoversAnOpenTransaction(t *testing.T) {
	s := openTestSQLite(t, SQLiteConfig{})
	ctx := context.Background()
	if _, err := s.w.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	res := publish(t, s, toUsers("t", "a"))
	page, err := s.List(ctx, rcp("t", "a", ""), ListQuery{})
	if err != nil || len(page.Items) != 1 || page.Items[0].ID != res.IDs[0] {
		t.Fatalf("after recovery: %+v, %v", page, err)
	}
}

func TestSQLiteOutbox(t *testing.T) {
	runOutboxContract(t, func(t *testing.T) outboxUnderTest {
		clk := newTestClock()
		return sqliteUnderTest{SQLite: openTestSQLite(t, SQLiteConfig{Clock: clk.Now}), clk: clk, log: &eventLog{}}
	})
}

// TestSQLiteMigrationWebhooks: a database written before migration 5
// (webhooks) is upgraded in place with its data, and the outbox works on it.
func TestSQLiteMigrationWebhooks(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "herald.db")
	s := openTestSQLite(t, SQLiteConfig{Path: path})
	a := rcp("t", "a", "")
	res := publish(t, s, toUsers("t", "a"), toTenant("t"), toUsers("t", "a", "b"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db := sqliteDownTo(t, path, 3)
	var n int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE name = 'webhook_outbox'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("outbox after down: %d, %v", n, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	clk := newTestClock()
	s2 := openTestSQLite(t, SQLiteConfig{Path: path, Clock: clk.Now})
	if got := sortedIDs(listAll(t, s2, a, false)); len(got) != 3 || !slices.Contains(got, res.IDs[2]) {
		t.Fatalf("list after upgrade %v", got)
	}
	d := toUsers("t", "a")
	d.FallbackAfter = time.Second
	id := publish(t, s2, d).IDs[0]
	clk.Advance(time.Second)
	evs, err := s2.ClaimWebhooks(ctx, "n", time.Minute, 10)
	if err != nil || len(evs) != 1 || evs[0].NotificationID != id {
		t.Fatalf("outbox after upgrade: %+v, %v", evs, err)
	}
}

// sqliteDownTo migrates the database at path down to version, as a
// database written by an older Herald is, and returns it open.
func sqliteDownTo(t *testing.T, path string, version int64) *sql.DB {
	t.Helper()
	ctx := context.Background()
	db, err := openSQLiteDB(ctx, path, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	fsys, _ := fs.Sub(sqliteMigrations, "migrations/sqlite")
	p, err := goose.NewProvider(goose.DialectSQLite3, db, fsys, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, version); err != nil {
		t.Fatal(err)
	}
	return db
}
