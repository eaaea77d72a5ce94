package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/heraldhq/herald/internal/notification"
)

// writeReq is one request to the writer goroutine: a function run inside
// the batch transaction, under its own savepoint.
type writeReq struct {
	// ctx is the caller's context. A request whose ctx has ended when the
	// writer picks it up is not run. Once it runs, ctx no longer matters:
	// SQL runs under the writer's context so one caller's cancellation
	// cannot abort a transaction shared with others.
	ctx context.Context
	// run executes the request. It stores its result in its closure; the
	// caller reads it only after receiving a nil error from done.
	run func(ctx context.Context, tx *wtx) error
	// done receives exactly one value, the request's outcome: run's error,
	// or the commit error, or nil once committed. Buffered, so the writer
	// never blocks on a caller that has gone away.
	done chan error
	// solo requests are large: they get a transaction of their own,
	// without a savepoint (see commitBatch).
	solo bool
	// events returns the request's events after a successful run.
	events func() []*notification.Event
}

// eventsOf extracts the events of a write result.
func eventsOf(v any) []*notification.Event {
	switch r := v.(type) {
	case PublishResult:
		return r.Events
	case Change:
		if r.Event != nil {
			return []*notification.Event{r.Event}
		}
	case sweepResult:
		return r.events
	}
	return nil
}

// soloDrafts is the number of drafts above which a publish request is solo.
const soloDrafts = 64

// submit sends fn to the writer and waits for its commit. Every error it
// returns is prefixed with "store: <op>: ".
//
// When ctx ends first, the result is ErrUnavailable: the request may still
// be committed later (if the writer had already picked it up).
func submit[T any](s *SQLite, ctx context.Context, op string, fn func(context.Context, *wtx) (T, error)) (T, error) {
	return submitReq(s, ctx, op, false, fn)
}

// submitReq is submit with the solo flag.
func submitReq[T any](s *SQLite, ctx context.Context, op string, solo bool, fn func(context.Context, *wtx) (T, error)) (T, error) {
	var zero, out T
	req := &writeReq{
		solo: solo,
		ctx:  ctx,
		run: func(ctx context.Context, tx *wtx) error {
			v, err := fn(ctx, tx)
			if err == nil {
				out = v
			}
			return err
		},
		done:   make(chan error, 1),
		events: func() []*notification.Event { return eventsOf(out) },
	}
	if err := s.enqueue(ctx, req); err != nil {
		return zero, fmt.Errorf("store: %s: %w", op, err)
	}
	select {
	case err := <-req.done:
		if err != nil {
			return zero, fmt.Errorf("store: %s: %w", op, err)
		}
		return out, nil
	case <-ctx.Done():
		// Prefer an outcome that arrived at the same time.
		select {
		case err := <-req.done:
			if err != nil {
				return zero, fmt.Errorf("store: %s: %w", op, err)
			}
			return out, nil
		default:
		}
		return zero, fmt.Errorf("store: %s: %w: %w", op, ErrUnavailable, ctx.Err())
	}
}

// enqueue puts req on the writer queue, waiting for room until ctx ends.
func (s *SQLite) enqueue(ctx context.Context, req *writeReq) error {
	if err := ctx.Err(); err != nil {
		if s.isClosed.Load() {
			return ErrClosed
		}
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	select {
	case s.queue <- req:
		return nil
	default:
	}
	select {
	case s.queue <- req:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: writer queue full: %w", ErrUnavailable, ctx.Err())
	}
}

// runWriter is the writer goroutine: it takes one request, drains up to
// BatchMax-1 more that are already queued, and commits them together. A solo
// request is committed alone. It returns when the queue is closed and
// drained.
func (s *SQLite) runWriter() {
	defer close(s.writerDone)
	batch := make([]*writeReq, 0, s.cfg.BatchMax)
	live := make([]*writeReq, 0, s.cfg.BatchMax)
	errs := make([]error, 0, s.cfg.BatchMax)
	var next *writeReq // a solo request met while draining
	for {
		req := next
		next = nil
		if req == nil {
			var ok bool
			if req, ok = <-s.queue; !ok {
				return
			}
		}
		batch = append(batch[:0], req)
	drain:
		for !req.solo && len(batch) < s.cfg.BatchMax {
			select {
			case r, ok := <-s.queue:
				if !ok {
					break drain
				}
				if r.solo {
					next = r
					break drain
				}
				batch = append(batch, r)
			default:
				break drain
			}
		}
		live = live[:0]
		for _, r := range batch {
			if err := r.ctx.Err(); err != nil {
				r.done <- fmt.Errorf("%w: %w", ErrUnavailable, err)
				continue
			}
			live = append(live, r)
		}
		if len(live) > 0 {
			errs = s.commitBatch(live, errs[:0])
			s.batches.Add(1)
			s.batchReq.Add(int64(len(live)))
			select {
			case s.committed <- struct{}{}:
			default:
			}
			if s.cfg.OnCommit != nil {
				var evs []*notification.Event
				for i, r := range live {
					if errs[i] == nil && r.events != nil {
						evs = append(evs, r.events()...)
					}
				}
				if len(evs) > 0 {
					s.cfg.OnCommit(evs)
				}
			}
			for i, r := range live {
				r.done <- errs[i]
			}
		}
		clear(batch)
		clear(live)
	}
}

// commitBatch runs reqs in one transaction, commits, and returns each
// request's outcome (appended to errs).
//
// With several requests, each runs under a savepoint so that a failing
// request rolls back only itself. A lone request runs without one: the
// transaction is its savepoint. That matters for large requests: SQLite
// journals every page a savepoint touches and rewinds that in-memory journal
// at the end of every statement, which made a 1000-draft request spend a
// third of its time there and grows quadratically with the request; so
// large requests are solo (see runWriter) and never pay for it.
func (s *SQLite) commitBatch(reqs []*writeReq, errs []error) []error {
	ctx := context.Background()
	failAll := func(err error) []error {
		err = classify(err)
		s.log.Error("store: write transaction failed", "requests", len(reqs), "err", err)
		errs = errs[:0]
		for range reqs {
			errs = append(errs, err)
		}
		return errs
	}

	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return failAll(fmt.Errorf("begin: %w", err))
	}
	w := &wtx{tx: tx, prepared: s.wstmts, stmts: make(map[string]*sql.Stmt)}
	defer s.prepareFresh(w)
	if len(reqs) == 1 {
		if err := reqs[0].run(ctx, w); err != nil {
			if rbErr := tx.Rollback(); rbErr != nil {
				s.log.Error("store: rollback failed", "err", rbErr)
			}
			return append(errs, err)
		}
		if err := tx.Commit(); err != nil {
			err = classify(fmt.Errorf("commit: %w", err))
			s.log.Error("store: commit failed", "requests", 1, "err", err)
			return append(errs, err)
		}
		return append(errs, nil)
	}
	for _, r := range reqs {
		if _, err := w.ExecContext(ctx, `SAVEPOINT req`); err != nil {
			_ = tx.Rollback()
			return failAll(fmt.Errorf("savepoint: %w", err))
		}
		runErr := r.run(ctx, w)
		if runErr != nil {
			if _, err := w.ExecContext(ctx, `ROLLBACK TO req`); err != nil {
				_ = tx.Rollback()
				return failAll(fmt.Errorf("rollback to savepoint after %v: %w", runErr, err))
			}
		}
		if _, err := w.ExecContext(ctx, `RELEASE req`); err != nil {
			_ = tx.Rollback()
			return failAll(fmt.Errorf("release savepoint: %w", err))
		}
		errs = append(errs, runErr)
	}
	if err := tx.Commit(); err != nil {
		err = classify(fmt.Errorf("commit: %w", err))
		s.log.Error("store: commit failed", "requests", len(reqs), "err", err)
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
	}
	return errs
}

// wtx is the batch transaction as requests see it: a *sql.Tx with a cache
// of the statements bound to it, so a batch of thousands of inserts
// compiles each statement once.
//
// Statements are also prepared once for the life of the store, on the
// writer's only connection, and bound to each transaction without being
// compiled again (sql.Tx.StmtContext reuses a statement prepared on the
// transaction's connection): at low rates a batch holds one or two
// requests, and compiling per batch was 9% of the writer's CPU. A query met
// for the first time is prepared on the transaction, and on the connection
// once the transaction is over (the pool's one connection is busy until
// then). Used by the writer goroutine only.
type wtx struct {
	tx       *sql.Tx
	prepared map[string]*sql.Stmt // SQLite.wstmts
	stmts    map[string]*sql.Stmt // bound to tx
	fresh    []string             // queries to prepare after tx
}

func (t *wtx) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := t.stmts[query]; ok {
		return st, nil
	}
	var st *sql.Stmt
	if base, ok := t.prepared[query]; ok {
		st = t.tx.StmtContext(ctx, base)
	} else {
		var err error
		if st, err = t.tx.PrepareContext(ctx, query); err != nil {
			return nil, err
		}
		t.fresh = append(t.fresh, query)
	}
	t.stmts[query] = st
	return st, nil
}

// prepareFresh prepares, on the write connection, the queries w met for the
// first time. Call it once w's transaction is over.
func (s *SQLite) prepareFresh(w *wtx) {
	for _, q := range w.fresh {
		if _, ok := s.wstmts[q]; ok {
			continue
		}
		st, err := s.wdb.PrepareContext(context.Background(), q)
		if err != nil {
			continue // it stays prepared per transaction
		}
		s.wstmts[q] = st
	}
}

// ExecContext runs a statement that returns no rows.
func (t *wtx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, err := t.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

// QueryContext runs a query.
func (t *wtx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := t.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// QueryRowContext runs a query that returns at most one row.
func (t *wtx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := t.stmt(ctx, query)
	if err != nil {
		// Let database/sql report the error through the Row.
		return t.tx.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

// querier is what the shared read helpers need: the read pool (*sql.DB) or
// the writer's transaction (*wtx).
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

var (
	_ querier = (*sql.DB)(nil)
	_ querier = (*wtx)(nil)
)
