package store

import (
	"cmp"
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pressly/goose/v3"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/heraldhq/herald/internal/notification"
)

//go:embed migrations/sqlite/*.sql
var sqliteMigrations embed.FS

// SQLite defaults.
const (
	DefaultSQLitePath      = "herald.db"
	DefaultSQLiteBatchMax  = 512
	DefaultSQLiteQueueSize = 4096

	// sqliteReadConns is the size of the read pool.
	sqliteReadConns = 4
	// sqliteBusyTimeoutMS is how long a connection waits for a lock held by
	// another connection (a checkpoint, another process) before SQLITE_BUSY.
	sqliteBusyTimeoutMS = 5000
	// Page cache per connection (PRAGMA cache_size, in KiB).
	sqliteWriterCacheKiB = 64 << 10
	sqliteReaderCacheKiB = 16 << 10
	// sqliteAutoCheckpointPages is the WAL size (pages) at which a commit
	// checkpoints by itself, should the checkpointer fall behind.
	sqliteAutoCheckpointPages = 16384
)

// SQLiteConfig configures the SQLite engine. The zero value of every field
// means its documented default; OpenSQLite fills them in once.
type SQLiteConfig struct {
	// Path is the database file; default DefaultSQLitePath. It must be a
	// file (the writer and the read pool are separate connections, so
	// ":memory:" cannot work) and must not contain '?'.
	Path string
	// BatchMax is the most write requests (publishes, reads, deletes)
	// merged into one transaction; default DefaultSQLiteBatchMax.
	BatchMax int
	// QueueSize bounds the writer queue; default DefaultSQLiteQueueSize. A
	// caller that finds the queue full waits until its ctx ends, then gets
	// ErrUnavailable.
	QueueSize int
	// Clock gives the time of new notifications and of expiry; default
	// time.Now.
	Clock Clock
	// Logger receives commit failures and sweep reports; nil discards.
	Logger *slog.Logger
	// SweepInterval is how often expired notifications are deleted and
	// stale idempotency records purged; default DefaultSweepInterval.
	SweepInterval time.Duration
	// OnCommit, when set, receives the events of every committed write, in
	// commit order, from the writer goroutine, before the writers' callers
	// are answered. It lets fan-out follow commit order exactly (no
	// out-of-order events that hubs would have to repair from the store).
	// It may block briefly (back-pressure on writes) but must not call the
	// store.
	OnCommit func([]*notification.Event)

	// synchronous is the PRAGMA synchronous of the writer: "FULL" unless a
	// benchmark in this package sets "NORMAL" to measure what FULL costs.
	// NORMAL in WAL mode may lose the last commits on power loss, which
	// breaks "returned from Publish means durable".
	synchronous string
	// checkpointEvery is the checkpointer's pause between checkpoints:
	// checkpointInterval unless a test sets it.
	checkpointEvery time.Duration
}

// withDefaults returns c with every zero field set to its default.
func (c SQLiteConfig) withDefaults() SQLiteConfig {
	c.Path = cmp.Or(c.Path, DefaultSQLitePath)
	c.BatchMax = cmp.Or(c.BatchMax, DefaultSQLiteBatchMax)
	c.QueueSize = cmp.Or(c.QueueSize, DefaultSQLiteQueueSize)
	c.synchronous = cmp.Or(c.synchronous, "FULL")
	c.checkpointEvery = cmp.Or(c.checkpointEvery, checkpointInterval)
	c.Clock, c.Logger, c.SweepInterval = sharedDefaults(c.Clock, c.Logger, c.SweepInterval)
	return c
}

// Validate reports configuration errors. Zero values are valid (defaults).
func (c SQLiteConfig) Validate() error {
	var errs []error
	if strings.Contains(c.Path, "?") {
		errs = append(errs, fmt.Errorf("path %q contains '?'", c.Path))
	}
	if c.Path == ":memory:" || strings.HasPrefix(c.Path, "file:") {
		errs = append(errs, fmt.Errorf("path %q: want a plain file path", c.Path))
	}
	errs = append(errs, validateShared(c.BatchMax, c.QueueSize, c.SweepInterval)...)
	return configError("sqlite", errs)
}

// SQLite is the SQLite engine of Store. All writes, including read-state
// changes, go through one writer goroutine that owns the only write
// connection and group-commits queued requests; reads use a separate pool of
// query-only connections, which WAL mode lets run beside the writer.
//
// Goroutines: the writer (until Close has drained the queue), the expiry
// sweeper and the WAL checkpointer (until Close). Commits are durable when
// they are acknowledged: synchronous=FULL fsyncs the WAL at every commit.
type SQLite struct {
	// Static after construction.
	cfg   SQLiteConfig
	log   *slog.Logger
	clock Clock
	ids   *idSource // used by the writer goroutine only (has its own lock)
	// w is the writer's connection, held for the life of the store: the
	// writer runs its transactions on it with BEGIN/COMMIT and statements
	// prepared on it once (see wtx). Used by the writer goroutine only;
	// closed by Close after the writer has returned.
	w            wtx
	rdb          *sql.DB   // the read pool; safe for concurrent use
	reads        readStmts // the read pool's prepared statements
	reader                 // the read methods of Store, on reads
	outboxEngine           // the webhook outbox (Outbox): writes through the writer
	cdb          *sql.DB   // the checkpointer's connection
	// The writer: its queue (closed by Close under mu) and its statistics.
	writer[*writeReq]
	// committed gets a token (non-blocking send) after each commit; the
	// checkpointer takes it.
	committed chan struct{}

	// Starts and stops the writer and the background goroutines (sweeper,
	// checkpointer); its mu and closed guard the writer's queue.
	lifecycle
	// isClosed mirrors closed for the read path, which does not need mu.
	isClosed atomic.Bool

	// checkpoints counts the checkpointer's successful checkpoints.
	checkpoints atomic.Int64
	// tailWanted is set by the checkpointer after a checkpoint; the idle
	// writer takes it and checkpoints the tail (tailCheckpoint), which
	// lets the WAL restart. tails counts those checkpoints.
	tailWanted atomic.Bool
	tails      atomic.Int64

	// prefs holds every user's preferences (all writes pass through this
	// store); loaded at open, updated after each committed change.
	prefs *prefsCache

	closeErr error // set inside closeOnce
}

var _ Store = (*SQLite)(nil)

// OpenSQLite opens (creating if needed) the database at cfg.Path, applies
// pending migrations and starts the writer, the checkpointer and the expiry
// sweeper. ctx bounds the opening only. The caller must Close the store.
func OpenSQLite(ctx context.Context, cfg SQLiteConfig) (_ *SQLite, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	var opened []*sql.DB
	defer func() {
		if err != nil {
			for _, db := range opened {
				_ = db.Close()
			}
		}
	}()
	open := func(params url.Values, conns int) (*sql.DB, error) {
		db, err := openSQLiteDB(ctx, cfg.Path, params, conns)
		if err == nil {
			opened = append(opened, db)
		}
		return db, err
	}
	busy := busyPragma()

	// wdb, opened like the writer, runs the migrations and the loads at
	// open; then the writer's own native connection takes over.
	pragmas := writerPragmas(cfg)
	wdb, err := open(url.Values{"_pragma": pragmas, "_txlock": {"immediate"}}, 1)
	if err != nil {
		return nil, err
	}
	if err := migrateSQLite(ctx, wdb, cfg.Logger); err != nil {
		return nil, err
	}
	ids, err := loadIDSource(ctx, wdb)
	if err != nil {
		return nil, err
	}
	prefs, err := loadSQLitePrefs(ctx, wdb)
	if err != nil {
		return nil, err
	}
	rdb, err := open(url.Values{
		"_pragma": {
			busy,
			"query_only(1)",
			"foreign_keys(1)",
			"temp_store(MEMORY)",
			fmt.Sprintf("cache_size(%d)", -sqliteReaderCacheKiB),
		},
	}, sqliteReadConns)
	if err != nil {
		return nil, err
	}
	cdb, err := open(url.Values{
		"_pragma": {busy, "synchronous(" + cfg.synchronous + ")"},
	}, 1)
	if err != nil {
		return nil, err
	}

	stmts := make([]string, len(pragmas))
	for i, p := range pragmas {
		stmts[i] = "PRAGMA " + p
	}
	wconn, err := openNative(cfg.Path, stmts)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: write connection: %w", cfg.Path, classify(err))
	}
	if err := wdb.Close(); err != nil {
		_ = wconn.close()
		return nil, fmt.Errorf("store: open %s: %w", cfg.Path, classify(err))
	}
	s := &SQLite{
		cfg:       cfg,
		log:       cfg.Logger,
		clock:     cfg.Clock,
		ids:       ids,
		w:         wtx{c: wconn},
		rdb:       rdb,
		reads:     readStmts{db: rdb},
		cdb:       cdb,
		committed: make(chan struct{}, 1),
		prefs:     prefs,
	}
	s.reader = newSQLiteReader(s)
	s.outboxEngine = newSQLiteOutbox(s)
	s.writer = newWriter(cfg.QueueSize, cfg.BatchMax, sqliteBatchBudget, s.commitBatch, cfg.OnCommit)
	s.writer.afterCommit = s.wakeCheckpointer
	s.writer.idle = s.tailCheckpoint
	s.start(s.runWriter, sweeper(cfg.SweepInterval, s.log, s.sweepNow), s.runCheckpointer)
	return s, nil
}

func busyPragma() string { return fmt.Sprintf("busy_timeout(%d)", sqliteBusyTimeoutMS) }

// writerPragmas are the PRAGMAs (name(value)) of the writer's connection.
func writerPragmas(cfg SQLiteConfig) []string {
	return []string{
		busyPragma(),
		"journal_mode(WAL)",
		"synchronous(" + cfg.synchronous + ")",
		"foreign_keys(1)",
		// Savepoint journals in memory, and a page cache large enough
		// that a batch does not spill dirty pages to the WAL before
		// commit (both were a third of the CPU of a batch).
		"temp_store(MEMORY)",
		fmt.Sprintf("cache_size(%d)", -sqliteWriterCacheKiB),
		// The checkpointer does this off the commit path; this is the
		// backstop should it fall behind.
		fmt.Sprintf("wal_autocheckpoint(%d)", sqliteAutoCheckpointPages),
	}
}

// loadIDSource returns an id source that issues ids after every stored one.
func loadIDSource(ctx context.Context, wdb *sql.DB) (*idSource, error) {
	ids := newIDSource()
	var last sql.NullString
	if err := wdb.QueryRowContext(ctx, `SELECT MAX(id) FROM notifications`).Scan(&last); err != nil {
		return nil, fmt.Errorf("store: open: last id: %w", classify(err))
	}
	if last.Valid {
		if err := ids.observe(last.String); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// openSQLiteDB opens a pool of at most conns connections to path with the
// given DSN parameters and checks that one connection opens.
func openSQLiteDB(ctx context.Context, path string, params url.Values, conns int) (*sql.DB, error) {
	db, err := sql.Open("sqlite", path+"?"+params.Encode())
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, classify(err))
	}
	return db, nil
}

// migrateSQLite applies the embedded migrations.
func migrateSQLite(ctx context.Context, db *sql.DB, log *slog.Logger) error {
	return migrate(ctx, goose.DialectSQLite3, db, sqliteMigrations, "migrations/sqlite", log, classify)
}

// Ping runs a query on the read pool.
func (s *SQLite) Ping(ctx context.Context) error {
	if err := s.readable(ctx); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	var one int
	if err := s.rdb.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return fmt.Errorf("store: ping: %w", classify(err))
	}
	return nil
}

// Close stops the sweeper and the checkpointer, stops accepting requests
// (they get ErrClosed), lets the writer commit everything already queued, then closes the
// databases. It is idempotent; later calls return the first call's result.
func (s *SQLite) Close() error {
	s.closeOnce.Do(func() {
		s.stop(func() {
			s.isClosed.Store(true)
			close(s.queue)
		})

		s.reads.close()
		if err := errors.Join(s.rdb.Close(), s.cdb.Close(), s.w.c.close()); err != nil {
			s.closeErr = fmt.Errorf("store: close: %w", err)
		}
	})
	return s.closeErr
}

// readable is the entry check of the read path.
func (s *SQLite) readable(ctx context.Context) error {
	return entryErr(ctx, s.isClosed.Load())
}

// classify wraps err with ErrUnavailable when it is transient or
// infrastructural (locked, busy, I/O, disk full, cancelled), so callers can
// answer 503 and retry; other errors are returned as they are.
func classify(err error) error {
	if err == nil || errors.Is(err, ErrUnavailable) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	var code int
	var se *sqlite.Error
	var ne *nativeError
	switch {
	case errors.As(err, &se):
		code = se.Code()
	case errors.As(err, &ne):
		code = ne.Code()
	}
	if code != 0 {
		switch code & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR,
			sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PROTOCOL,
			sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_INTERRUPT:
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
	}
	return err
}
