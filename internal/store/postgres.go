package store

import (
	"cmp"
	"context"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"math/rand/v2"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/heraldhq/herald/internal/notification"
)

//go:embed migrations/postgres/*.sql
var postgresMigrations embed.FS

// PostgreSQL defaults.
const (
	DefaultPostgresMaxConns  = 10
	DefaultPostgresBatchMax  = 512
	DefaultPostgresQueueSize = 4096
	DefaultPostgresTxTimeout = 30 * time.Second

	// pgConnectTimeout bounds one connection attempt unless the URL sets
	// connect_timeout.
	pgConnectTimeout = 5 * time.Second
	// pgAttempts is how many times a transaction that failed with a
	// serialization failure or a deadlock (both roll it back) is run.
	pgAttempts = 5
	// pgBatchDrafts bounds the drafts merged into one publish transaction
	// (a single larger request still gets a transaction of its own).
	pgBatchDrafts = 8192
	// pgCopyRows is the number of rows from which a batch inserts with COPY
	// rather than with one INSERT over arrays: COPY is faster in bulk but
	// costs an extra round trip.
	pgCopyRows = 256
	// Migration lock: goose's session locker polls pg_try_advisory_lock
	// every second for up to five minutes.
	pgMigrateLockPeriodS   = 1
	pgMigrateLockFailures  = 300
	pgMigrateUnlockFailure = 60
)

// PostgresConfig configures the PostgreSQL engine. The zero value of every
// field but URL means its documented default; OpenPostgres fills them in once.
type PostgresConfig struct {
	// URL is the connection string (postgres://user:pass@host:port/db?...,
	// or key=value form). Required.
	URL string
	// MaxConns is the size of the connection pool (at least 2: migrations
	// hold one connection for their lock and use another); default
	// DefaultPostgresMaxConns. The publish writer uses one connection at a
	// time; reads and read-state changes share the rest.
	MaxConns int
	// BatchMax is the most publish requests merged into one transaction;
	// default DefaultPostgresBatchMax.
	BatchMax int
	// QueueSize bounds the publish queue; default DefaultPostgresQueueSize.
	// A caller that finds it full waits until its ctx ends, then gets
	// ErrUnavailable.
	QueueSize int
	// Clock gives the time of new notifications and of expiry; default
	// time.Now.
	Clock Clock
	// Logger receives commit failures, retries and sweep reports; nil
	// discards.
	Logger *slog.Logger
	// SweepInterval is how often expired notifications are deleted and stale
	// idempotency records purged; default DefaultSweepInterval. Every node
	// sweeps; they skip each other's rows.
	SweepInterval time.Duration
	// Schema, when set, is the only schema on every connection's
	// search_path: the tables (and goose's version table) live there. It is
	// created if missing. Tests use one schema each.
	Schema string
	// OnCommit, when set, receives the events of every committed write. A
	// batch of publishes: from the writer goroutine, in this handle's
	// commit order, before its publishers are answered. A read-state change
	// (those run concurrently on the pool): from the caller's goroutine,
	// right after its commit, before the call returns. Events of other
	// handles (nodes) are not seen, and nothing orders a state change with
	// a publish committing at the same time: subscribers that need a
	// stream's order follow its sequence numbers. It may block briefly
	// (back-pressure on writes) but must not call the store.
	OnCommit func([]*notification.Event)
	// TxTimeout bounds one write transaction of the publish writer, so that
	// a connection that hangs cannot stall it forever; default
	// DefaultPostgresTxTimeout. (A batch is also abandoned, and rolled
	// back, as soon as every caller waiting for it has gone.)
	TxTimeout time.Duration
}

var pgSchemaName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

func (c PostgresConfig) withDefaults() PostgresConfig {
	c.MaxConns = cmp.Or(c.MaxConns, DefaultPostgresMaxConns)
	c.BatchMax = cmp.Or(c.BatchMax, DefaultPostgresBatchMax)
	c.QueueSize = cmp.Or(c.QueueSize, DefaultPostgresQueueSize)
	c.TxTimeout = cmp.Or(c.TxTimeout, DefaultPostgresTxTimeout)
	c.Clock, c.Logger, c.SweepInterval = sharedDefaults(c.Clock, c.Logger, c.SweepInterval)
	return c
}

// Validate reports configuration errors. Zero values are valid (defaults),
// except URL.
func (c PostgresConfig) Validate() error {
	var errs []error
	if c.URL == "" {
		errs = append(errs, errors.New("no URL"))
	} else if _, err := pgxpool.ParseConfig(c.URL); err != nil {
		errs = append(errs, fmt.Errorf("URL: %w", err))
	}
	if c.MaxConns < 0 || c.MaxConns == 1 {
		errs = append(errs, fmt.Errorf("max conns %d: want 0 (default) or at least 2", c.MaxConns))
	}
	errs = append(errs, validateShared(c.BatchMax, c.QueueSize, c.SweepInterval)...)
	if c.TxTimeout < 0 {
		errs = append(errs, fmt.Errorf("tx timeout %v < 0", c.TxTimeout))
	}
	if c.Schema != "" && !pgSchemaName.MatchString(c.Schema) {
		errs = append(errs, fmt.Errorf("schema %q: want a plain identifier", c.Schema))
	}
	return configError("postgres", errs)
}

// Postgres is the PostgreSQL engine of Store, for one or many nodes sharing
// a database.
//
// Publishes go through one writer goroutine per handle that group-commits
// queued requests: one transaction per batch, positions and counters taken
// from per-stream counter rows whose locks order the commits of every node
// (see migrations/postgres/00001_init.sql). Reads and read-state changes run
// on the pool directly, each in its own statement or transaction: their
// counters are exact because each is adjusted by the rows the same
// transaction changed, and transactions that meet on the same rows lock them
// in one global order (see postgres_mutate.go), retrying the rare deadlock.
//
// Goroutines: the writer (until Close has drained the queue) and the expiry
// sweeper (until Close), plus pgxpool's health checker.
type Postgres struct {
	// Static after construction.
	cfg          PostgresConfig
	log          *slog.Logger
	clock        Clock
	ids          *idSource // safe for concurrent use
	pool         *pgxpool.Pool
	reader       // the read methods of Store, on pool
	outboxEngine // the webhook outbox (Outbox), on pool
	// The publish writer: its queue (closed by Close under mu) and its
	// statistics.
	writer[*pgPublish]

	// Starts and stops the writer and the sweeper; its mu and closed guard
	// the writer's queue and inflight: senders and direct operations hold
	// mu for reading.
	lifecycle
	inflight sync.WaitGroup // direct operations running; Add under mu (read)

	// Transactions run again (after a deadlock, a serialization
	// failure...), and how many of them for a deadlock.
	retries   atomic.Int64
	deadlocks atomic.Int64

	// testHookBatch, when set (by tests, before any publish), is called by
	// the writer with each batch before it runs.
	testHookBatch func(n int)
}

var _ Store = (*Postgres)(nil)

// OpenPostgres connects to cfg.URL, applies pending migrations (under an
// advisory lock, so that nodes starting together migrate once) and starts
// the writer and the expiry sweeper. ctx bounds the opening only. The caller
// must Close the store.
func OpenPostgres(ctx context.Context, cfg PostgresConfig) (_ *Postgres, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	pcfg, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil { // validated; defensive
		return nil, fmt.Errorf("store: postgres config: %w", err)
	}
	pcfg.MaxConns = int32(cfg.MaxConns)
	if pcfg.ConnConfig.ConnectTimeout == 0 {
		pcfg.ConnConfig.ConnectTimeout = pgConnectTimeout
	}
	if _, ok := pcfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		pcfg.ConnConfig.RuntimeParams["application_name"] = "herald"
	}
	if cfg.Schema != "" {
		pcfg.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{cfg.Schema}.Sanitize()
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("store: open postgres: %w", classifyPG(err))
	}
	defer func() {
		if err != nil {
			pool.Close()
		}
	}()
	if err := pool.Ping(ctx); err != nil {
		return nil, fmt.Errorf("store: open postgres: %w", classifyPG(err))
	}
	if cfg.Schema != "" {
		if err := createSchema(ctx, pool, cfg.Schema); err != nil {
			return nil, err
		}
	}
	if err := migratePostgres(ctx, pool, cfg.Schema, cfg.Logger); err != nil {
		return nil, err
	}
	ids := newIDSource()
	var last *string
	if err := pool.QueryRow(ctx, `SELECT max(id) FROM notifications`).Scan(&last); err != nil {
		return nil, fmt.Errorf("store: open postgres: last id: %w", classifyPG(err))
	}
	if last != nil {
		if err := ids.observe(*last); err != nil {
			return nil, err
		}
	}

	s := &Postgres{
		cfg:   cfg,
		log:   cfg.Logger,
		clock: cfg.Clock,
		ids:   ids,
		pool:  pool,
	}
	s.reader = newPGReader(s)
	s.outboxEngine = newPGOutbox(s)
	s.writer = newWriter(cfg.QueueSize, cfg.BatchMax, pgBatchDrafts, s.commitBatch, cfg.OnCommit)
	s.start(s.runWriter, sweeper(cfg.SweepInterval, s.log, s.sweepNow))
	return s, nil
}

// createSchema creates schema unless it exists. (CREATE SCHEMA IF NOT EXISTS
// alone would need the CREATE privilege even when the schema exists.)
func createSchema(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	var exists bool
	if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, schema).Scan(&exists); err != nil {
		return fmt.Errorf("store: open postgres: schema: %w", classifyPG(err))
	}
	if exists {
		return nil
	}
	_, err := pool.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{schema}.Sanitize())
	if err != nil && !isPGCode(err, "42P06", "23505") { // another node created it meanwhile
		return fmt.Errorf("store: open postgres: create schema: %w", classifyPG(err))
	}
	return nil
}

// migrationLockID is the advisory lock taken while migrating schema: one per
// schema, so that separate schemas (tests) do not wait for each other.
func migrationLockID(schema string) int64 {
	h := fnv.New64a()
	_, _ = io.WriteString(h, "herald/migrate/"+schema)
	return int64(h.Sum64())
}

// migratePostgres applies the embedded migrations, holding a session-level
// advisory lock (goose's Postgres session locker) on one connection so that
// nodes starting at once apply each migration exactly once.
func migratePostgres(ctx context.Context, pool *pgxpool.Pool, schema string, log *slog.Logger) error {
	locker, err := lock.NewPostgresSessionLocker(
		lock.WithLockID(migrationLockID(schema)),
		lock.WithLockTimeout(pgMigrateLockPeriodS, pgMigrateLockFailures),
		lock.WithUnlockTimeout(pgMigrateLockPeriodS, pgMigrateUnlockFailure),
	)
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	db := stdlib.OpenDBFromPool(pool) // closing it leaves the pool open
	defer db.Close()
	return migrate(ctx, goose.DialectPostgres, db, postgresMigrations, "migrations/postgres", log, classifyPG,
		goose.WithSessionLocker(locker))
}

// Ping runs a query.
func (s *Postgres) Ping(ctx context.Context) error {
	if err := s.enter(ctx); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	defer s.inflight.Done()
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("store: ping: %w", classifyPG(err))
	}
	return nil
}

// Close stops the sweeper, stops accepting requests (they get ErrClosed),
// lets the writer commit everything already queued, waits for the
// operations in progress, then closes the pool. It is idempotent and
// always returns nil.
func (s *Postgres) Close() error {
	s.closeOnce.Do(func() {
		s.stop(func() { close(s.queue) })
		s.inflight.Wait()
		s.pool.Close()
	})
	return nil
}

// enter is the entry check of every direct operation (everything but
// Publish). On success the caller must call s.inflight.Done when finished.
func (s *Postgres) enter(ctx context.Context) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := entryErr(ctx, s.closed); err != nil {
		return err
	}
	s.inflight.Add(1)
	return nil
}

// inTx runs fn in a transaction and commits, running it again (up to
// pgAttempts times in all) when PostgreSQL rolled it back for a
// serialization failure or a deadlock, or when retry says so. fn must be
// safe to run again.
func (s *Postgres) inTx(ctx context.Context, retry func(error) bool, fn func(pgx.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := pgx.BeginFunc(ctx, s.pool, fn)
		if err == nil {
			return nil
		}
		if attempt >= pgAttempts || !(isRetryablePG(err) || (retry != nil && retry(err))) || ctx.Err() != nil {
			return classifyPG(err)
		}
		s.retries.Add(1)
		if isPGCode(err, "40P01") {
			s.deadlocks.Add(1)
		}
		s.log.Warn("store: transaction retried", "attempt", attempt, "err", err)
		if err := sleepCtx(ctx, retryDelay(attempt)); err != nil {
			return classifyPG(err)
		}
	}
}

// inTxValue is inTx, without a retry predicate, for a function that
// returns a value: the value of its last, committed run.
func inTxValue[T any](ctx context.Context, s *Postgres, fn func(pgx.Tx) (T, error)) (T, error) {
	var v T
	err := s.inTx(ctx, nil, func(tx pgx.Tx) error {
		var err error
		v, err = fn(tx)
		return err
	})
	if err != nil {
		var zero T
		return zero, err
	}
	return v, nil
}

// retryDelay is a short jittered backoff before running a transaction again.
func retryDelay(attempt int) time.Duration {
	d := time.Duration(attempt) * 5 * time.Millisecond
	return d/2 + rand.N(d)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// isRetryablePG reports a serialization failure or a deadlock: PostgreSQL
// rolled the transaction back and running it again is safe.
func isRetryablePG(err error) bool { return isPGCode(err, "40001", "40P01") }

func isPGCode(err error, codes ...string) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	for _, c := range codes {
		if pe.Code == c {
			return true
		}
	}
	return false
}

// classifyPG wraps err with ErrUnavailable when the database could not
// answer: the caller's context ended, the connection failed or timed out
// (every error that the server did not report is taken to be one), the
// server is shutting down or out of resources (57P0x, 53xxx), the
// connection broke (08xxx), a statement was cancelled or a lock not obtained
// (57014, 55P03), the server is a read-only standby (25006), or retries of a
// deadlock or serialization failure ran out (40P01, 40001). Values the
// server refused (bad encoding, a NUL byte, a row too large) become
// ErrInvalid. Other server errors are returned as they are.
func classifyPG(err error) error {
	if err == nil || errors.Is(err, ErrUnavailable) || errors.Is(err, ErrClosed) ||
		errors.Is(err, ErrInvalid) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrIdempotencyMismatch) ||
		errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch c := pe.Code; {
		case strings.HasPrefix(c, "08"), strings.HasPrefix(c, "53"), strings.HasPrefix(c, "57P"),
			c == "57014", c == "55P03", c == "25006", c == "40001", c == "40P01":
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		case c == "22021", c == "22P05", c == "54000":
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		return err
	}
	// Every other error comes from the client side: the caller's context
	// ended, a timeout, a lost or refused connection, a closed pool.
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}
