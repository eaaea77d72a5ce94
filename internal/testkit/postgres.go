package testkit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgProbe is the one search for a test PostgreSQL per test process.
var pgProbe struct {
	once sync.Once
	url  string // the first candidate that answered
	err  error  // why none did
}

// postgresCandidates are the URLs PostgresURL tries, in order.
func postgresCandidates() []string {
	if u := os.Getenv("HERALD_TEST_POSTGRES_URL"); u != "" {
		return []string{u}
	}
	const local = "postgres://%s@127.0.0.1:5432/test?sslmode=disable"
	urls := []string{fmt.Sprintf(local, "postgres")}
	if u, err := user.Current(); err == nil && u.Username != "postgres" {
		urls = append(urls, fmt.Sprintf(local, u.Username))
	}
	return urls
}

// PostgresURL returns the URL of the test PostgreSQL: HERALD_TEST_POSTGRES_URL
// when set, otherwise database "test" at 127.0.0.1:5432 (trust auth) as
// user postgres or as the current user, whichever answers first. The
// search runs once per test process; without a server the test ends
// through [Unavailable].
func PostgresURL(t testing.TB) string {
	t.Helper()
	pgProbe.once.Do(func() {
		var errs []error
		for _, u := range postgresCandidates() {
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
		Unavailable(t, "PostgreSQL is not reachable (start it, or set HERALD_TEST_POSTGRES_URL): %v", pgProbe.err)
	}
	return pgProbe.url
}

// PostgresExec runs statements, in order, on a connection of its own to
// the test PostgreSQL, failing the test on the first error.
func PostgresExec(t testing.TB, sqls ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, PostgresURL(t))
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

// PostgresSchema creates an empty schema in the test PostgreSQL
// ("herald_test_" and random hex) and drops it, with everything in it,
// when the test ends. It returns the schema's name.
func PostgresSchema(t testing.TB) string {
	t.Helper()
	schema := UniqueName("herald_test_")
	PostgresExec(t, "CREATE SCHEMA "+schema)
	t.Cleanup(func() { PostgresExec(t, "DROP SCHEMA "+schema+" CASCADE") })
	return schema
}
