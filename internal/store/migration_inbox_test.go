package store

import (
	"context"
	"database/sql"
	"io/fs"
	"maps"
	"path/filepath"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/heraldhq/herald/internal/notification"
	"github.com/heraldhq/herald/internal/testkit"
)

// The inbox-model migration (SQLite 00004, PostgreSQL 00003) is tested
// from the schema before it, with data in it: a store writes read and
// unread, named and broadcast, deleted and read broadcasts; the database
// is taken down to the previous version (the Down of the migration
// restores that schema exactly); opening it again migrates it up. The
// reader must see the same inbox with the same counters, everything counts
// as seen, and the counters the migration fills in (broadcast counts by
// type) must be right: muting a type takes its broadcasts out of the
// counts.

type migrationSeed struct {
	rs     []notification.Recipient
	lists  map[notification.Recipient][]string
	unread map[notification.Recipient]int64
}

func seedBeforeInboxModel(t *testing.T, s Store) migrationSeed {
	ctx := context.Background()
	a, b, c := rcp("t", "a", "admin"), rcp("t", "b", ""), rcp("t", "c", "user")
	var drafts []notification.Draft
	for i := range 24 {
		d := []notification.Draft{toUsers("t", "a"), toTenant("t"), toUsers("t", "a", "b"), toRole("t", "admin")}[i%4]
		d.Type = []string{"build", "deploy", "build"}[i%3]
		drafts = append(drafts, d)
	}
	res := publish(t, s, drafts...)
	if _, err := s.MarkRead(ctx, a, res.IDs[:9]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete(ctx, b, res.IDs[1]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete(ctx, a, res.IDs[3]); err != nil {
		t.Fatal(err)
	}
	seed := migrationSeed{rs: []notification.Recipient{a, b, c}, lists: map[notification.Recipient][]string{}, unread: map[notification.Recipient]int64{}}
	for _, r := range seed.rs {
		seed.lists[r] = ids(listAll(t, s, r, false))
		seed.unread[r] = checkCounts(t, s, r)
	}
	return seed
}

func checkAfterInboxModel(t *testing.T, s Store, seed migrationSeed) {
	ctx := context.Background()
	for _, r := range seed.rs {
		if got := ids(listAll(t, s, r, false)); !slices.Equal(got, seed.lists[r]) {
			t.Fatalf("%v: list after upgrade %v, want %v", r, got, seed.lists[r])
		}
		head, err := s.Head(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		// Named items are all seen; broadcasts are seen for users who had
		// a stream row (a, b), unseen for the others (c).
		mark := head
		if r.User == "c" {
			mark.Tenant = 0
		}
		c := checkInbox(t, s, r, &mark)
		if c.Unread != seed.unread[r] || len(c.ByCategory) != 0 {
			t.Fatalf("%v: counts after upgrade %+v, want unread %d", r, c, seed.unread[r])
		}
		for _, id := range seed.lists[r] {
			if ok, err := s.IsUnseen(ctx, r, id); err != nil || (ok && r.User != "c") {
				t.Fatalf("%v: %s unseen after upgrade: %v, %v", r, id, ok, err)
			}
		}
	}
	// The broadcast counts by type: muting a type takes exactly its
	// unread broadcasts out.
	a := seed.rs[0]
	before := counts(t, s, a)
	var deploys int64
	for _, it := range listAll(t, s, a, true) {
		if it.Audience.Broadcast() && it.Type == "deploy" {
			deploys++
		}
	}
	if _, err := s.SetPreferences(ctx, a, notification.Preferences{MutedTypes: []string{"deploy"}}); err != nil {
		t.Fatal(err)
	}
	if c := checkInbox(t, s, a, nil); c.Unread != before.Unread-deploys || deploys == 0 {
		t.Fatalf("muted deploy: %d, want %d - %d", c.Unread, before.Unread, deploys)
	}
	// The new model works on the old data.
	res := publish(t, s, withCategory(toTenant("t"), "ops"), withKey(withCategory(toUsers("t", "a", "b"), "ci"), "k"))
	if _, err := s.Archive(ctx, seed.rs[1], []string{res.IDs[1], seed.lists[seed.rs[1]][0]}, false); err != nil {
		t.Fatal(err)
	}
	for _, r := range seed.rs {
		c := checkInbox(t, s, r, nil)
		if want := map[string]int64{"ops": 1}; r.User == "a" {
			want["ci"] = 1
			if !maps.Equal(c.ByCategory, want) {
				t.Fatalf("a by category %v", c.ByCategory)
			}
		}
	}
}

func TestSQLiteMigrationInboxModel(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "herald.db")
	s := openTestSQLite(t, SQLiteConfig{Path: path})
	seed := seedBeforeInboxModel(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := openSQLiteDB(ctx, path, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	gooseDownTo(t, goose.DialectSQLite3, db, sqliteMigrations, "migrations/sqlite", 3)
	var n int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM pragma_table_info('inbox') WHERE name = 'archived'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("inbox.archived after down: %d, %v", n, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	checkAfterInboxModel(t, openTestSQLite(t, SQLiteConfig{Path: path}), seed)
}

func TestPostgresMigrationInboxModel(t *testing.T) {
	ctx := context.Background()
	schema := testkit.PostgresSchema(t)
	s := openTestPostgres(t, PostgresConfig{Schema: schema})
	seed := seedBeforeInboxModel(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	cfg, err := pgxpool.ParseConfig(testkit.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := stdlib.OpenDBFromPool(pool)
	gooseDownTo(t, goose.DialectPostgres, db, postgresMigrations, "migrations/postgres", 2)
	var n int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.columns
		WHERE table_schema = $1 AND table_name = 'inbox' AND column_name = 'archived'`, schema).Scan(&n); err != nil || n != 0 {
		t.Fatalf("inbox.archived after down: %d, %v", n, err)
	}
	_ = db.Close()
	pool.Close()
	checkAfterInboxModel(t, openTestPostgres(t, PostgresConfig{Schema: schema}), seed)
}

// gooseDownTo takes db down to version.
func gooseDownTo(t *testing.T, dialect goose.Dialect, db *sql.DB, migrations fs.FS, dir string, version int64) {
	t.Helper()
	fsys, err := fs.Sub(migrations, dir)
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(dialect, db, fsys, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(context.Background(), version); err != nil {
		t.Fatal(err)
	}
}
