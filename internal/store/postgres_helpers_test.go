package store

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald/internal/testkit"
)

// PostgreSQL tests run against the test server of testkit.PostgresURL;
// without one they skip loudly, or fail when CI=true. The engine tests
// reach it through these names.
var (
	postgresURL = testkit.PostgresURL    // the test server's URL
	newPGSchema = testkit.PostgresSchema // an empty schema dropped when the test ends
)

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
	testkit.PostgresURL(t)
	p := &pgSchemas{}
	var all []string
	var mu sync.Mutex
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, s := range all {
			testkit.PostgresExec(t, "DROP SCHEMA IF EXISTS "+s+" CASCADE")
		}
	})
	p.create = func(t testing.TB) string {
		schema := testkit.UniqueName("herald_test_")
		testkit.PostgresExec(t, "CREATE SCHEMA "+schema)
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
	conn, err := pgx.Connect(ctx, testkit.PostgresURL(t))
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
		cfg.URL = testkit.PostgresURL(t)
	}
	if cfg.Schema == "" {
		cfg.Schema = testkit.PostgresSchema(t)
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = 4
	}
	s, err := OpenPostgres(context.Background(), cfg)
	return mustOpen(t, s, err)
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
