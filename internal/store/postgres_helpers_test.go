package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/user"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgreSQL tests run against a real server: HERALD_TEST_POSTGRES_URL, or
// the local one (127.0.0.1:5432, trust auth, database "test") as user
// postgres or as the current user. Each test gets its own schema, dropped
// when it ends. Without a server the tests skip loudly, or fail when
// CI=true.

var pgProbe struct {
	once sync.Once
	url  string
	err  error
}

func pgCandidateURLs() []string {
	if u := os.Getenv("HERALD_TEST_POSTGRES_URL"); u != "" {
		return []string{u}
	}
	urls := []string{"postgres://postgres@127.0.0.1:5432/test?sslmode=disable"}
	if u, err := user.Current(); err == nil && u.Username != "postgres" {
		urls = append(urls, fmt.Sprintf("postgres://%s@127.0.0.1:5432/test?sslmode=disable", u.Username))
	}
	return urls
}

// postgresURL returns the URL of the test server, or skips (fails with
// CI=true) when there is none.
func postgresURL(t testing.TB) string {
	t.Helper()
	pgProbe.once.Do(func() {
		var errs []error
		for _, u := range pgCandidateURLs() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			conn, err := pgx.Connect(ctx, u)
			if err == nil {
				err = conn.Ping(ctx)
				_ = conn.Close(ctx)
			}
			cancel()
			if err == nil {
				pgProbe.url = u
				return
			}
			errs = append(errs, err)
		}
		pgProbe.err = errors.Join(errs...)
	})
	if pgProbe.err != nil {
		msg := fmt.Sprintf("PostgreSQL is not reachable (set HERALD_TEST_POSTGRES_URL): %v", pgProbe.err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip("!!! SKIPPING POSTGRESQL TEST !!! " + msg)
	}
	return pgProbe.url
}

// pgAdmin runs statements on a connection of its own.
func pgAdmin(t testing.TB, sqls ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, postgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, q := range sqls {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// newPGSchema creates an empty schema dropped when the test ends.
func newPGSchema(t testing.TB) string {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "herald_test_" + hex.EncodeToString(b)
	pgAdmin(t, "CREATE SCHEMA "+schema)
	t.Cleanup(func() { pgAdmin(t, "DROP SCHEMA "+schema+" CASCADE") })
	return schema
}

// pgSchemas is a set of schemas that tests of one parent test reuse:
// migrating a new schema costs far more than emptying a used one. The
// parent's cleanup drops them all.
type pgSchemas struct {
	create func(t testing.TB) string // static: makes a new schema
	mu     sync.Mutex
	free   []string // emptied, migrated (or new) schemas; guarded by mu
}

// newPGSchemas returns a schema set whose schemas are dropped when t ends.
func newPGSchemas(t *testing.T) *pgSchemas {
	t.Helper()
	postgresURL(t)
	p := &pgSchemas{}
	var all []string
	var mu sync.Mutex
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, s := range all {
			pgAdmin(t, "DROP SCHEMA IF EXISTS "+s+" CASCADE")
		}
	})
	p.create = func(t testing.TB) string {
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		schema := "herald_test_" + hex.EncodeToString(b)
		pgAdmin(t, "CREATE SCHEMA "+schema)
		mu.Lock()
		all = append(all, schema)
		mu.Unlock()
		return schema
	}
	return p
}

// get returns an empty schema for t, given back (emptied) when t ends,
// after the stores t opened on it are closed.
func (p *pgSchemas) get(t testing.TB) string {
	t.Helper()
	p.mu.Lock()
	var schema string
	if n := len(p.free); n > 0 {
		schema, p.free = p.free[n-1], p.free[:n-1]
	}
	p.mu.Unlock()
	if schema == "" {
		schema = p.create(t)
	}
	t.Cleanup(func() {
		if pgEmptySchema(t, schema) {
			p.mu.Lock()
			p.free = append(p.free, schema)
			p.mu.Unlock()
		}
	})
	return schema
}

// pgEmptySchema deletes every row of schema's tables but goose's.
func pgEmptySchema(t testing.TB, schema string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, postgresURL(t))
	if err != nil {
		t.Log(err)
		return false
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = $1 AND tablename <> 'goose_db_version'`, schema)
	if err != nil {
		t.Log(err)
		return false
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Log(err)
		return false
	}
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, tb := range tables {
			if _, err := tx.Exec(ctx, "DELETE FROM "+pgx.Identifier{schema, tb}.Sanitize()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Log(err)
		return false
	}
	return true
}

// open opens a store on a schema of p (cfg.Schema when set), closed when
// the test ends.
func (p *pgSchemas) open(t testing.TB, cfg PostgresConfig) *Postgres {
	t.Helper()
	if cfg.Schema == "" {
		cfg.Schema = p.get(t)
	}
	return openTestPostgres(t, cfg)
}

// openTestPostgres opens a store on cfg.Schema (a new schema, dropped when
// the test ends, if empty), closed when the test ends.
func openTestPostgres(t testing.TB, cfg PostgresConfig) *Postgres {
	t.Helper()
	if cfg.URL == "" {
		cfg.URL = postgresURL(t)
	}
	if cfg.Schema == "" {
		cfg.Schema = newPGSchema(t)
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = 4
	}
	s, err := OpenPostgres(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// postgresUnderTest is the PostgreSQL engine with the test hooks the
// contract looks for.
type postgresUnderTest struct {
	*Postgres
	clk *testClock
	log *eventLog
}

func (s postgresUnderTest) fakeClock() *testClock   { return s.clk }
func (s postgresUnderTest) committedLog() *eventLog { return s.log }
