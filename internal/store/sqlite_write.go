package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldhq/herald/internal/notification"
)

// writeReq is one request to the writer goroutine, run inside the batch
// transaction, under its own savepoint: a publish (publish set) or a
// function (run).
type writeReq struct {
	// ctx is the caller's context and deadline a publish's Deadline (zero:
	// none). A request whose ctx has ended, whose deadline has passed or
	// whose caller has given up (gaveUp, set by await) when the writer
	// picks it up is not run (see abandoned). Once it runs, they no longer
	// matter: SQL runs under the writer's context so one caller's
	// cancellation cannot abort a transaction shared with others.
	ctx      context.Context
	deadline time.Time
	gaveUp   atomic.Bool
	// run executes a request that is not a publish. It stores its result
	// in its closure; the caller reads it only after receiving a nil error
	// from done.
	run func(ctx context.Context, tx *wtx) error
	// done receives exactly one value, the request's outcome: run's error,
	// or the commit error, or nil once committed. Buffered, so the writer
	// never blocks on a caller that has gone away. From newDone; await
	// recycles it once it has received the value (see doneChans).
	done chan error
	// solo requests are large: they get a transaction of their own,
	// without a savepoint (see commitBatch).
	solo bool
	// events returns the events of a request that is not a publish after
	// a successful run.
	events func() []*notification.Event
	// publish marks a publish: the writer runs pub with publishTx (see
	// runReq), or in a merged run of publishes when merge is set
	// (sqlite_publish_run.go), and stores its result in pubRes, written by
	// the writer goroutine and read by the caller only after receiving a
	// nil error from done.
	publish bool
	merge   bool
	pub     PublishRequest
	pubRes  PublishResult
	pubBufs pubBufs
	// err is the request's outcome: run's error, or the commit error, or
	// nil once committed. Written by the writer goroutine only.
	err error
}

// The writer's view of a request (see writeRequest).
func (r *writeReq) answer(err error) { r.done <- err }
func (r *writeReq) commitErr() error { return r.err }

func (r *writeReq) abandoned() error {
	if err := r.ctx.Err(); err != nil {
		return err
	}
	if err := pastDeadline(r.deadline); err != nil {
		return err
	}
	if r.gaveUp.Load() {
		// The caller gives up only when ctx ends or the deadline passes,
		// which the checks above see; this is a safety net.
		return context.DeadlineExceeded
	}
	return nil
}

func (r *writeReq) weight() int {
	if r.solo {
		return sqliteSoloWeight
	}
	return 0
}

func (r *writeReq) commitEvents() []*notification.Event {
	if r.publish {
		return r.pubRes.Events
	}
	if r.events == nil {
		return nil
	}
	return r.events()
}

// A batch of the SQLite writer has a budget of one, which ordinary
// requests do not use: a solo request weighs more than that, so it is
// always committed alone (see writer).
const (
	sqliteBatchBudget = 1
	sqliteSoloWeight  = sqliteBatchBudget + 1
)

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
		done:   newDone(),
		events: func() []*notification.Event { return eventsOf(out) },
	}
	if err := s.await(ctx, op, req); err != nil {
		return zero, err
	}
	return out, nil
}

// await queues req and waits for its outcome, until ctx ends or
// req.deadline passes; the caller reads the result only after a nil error.
// The deadline is kept by a pooled timer, not a context, which would cost
// several allocations per request.
func (s *SQLite) await(ctx context.Context, op string, req *writeReq) error {
	t, expired := startDeadline(req.deadline)
	defer stopDeadline(t)
	if err := s.enqueue(ctx, expired, req); err != nil {
		return fmt.Errorf("store: %s: %w", op, err)
	}
	select {
	case err := <-req.done:
		return answered(op, req, err)
	case <-ctx.Done():
		return giveUp(op, req, ctx.Err())
	case <-expired:
		return giveUp(op, req, context.DeadlineExceeded)
	}
}

// giveUp ends the wait for req, whose caller stops waiting because of
// cause: unless its outcome has arrived meanwhile, req is marked so that the
// writer does not run it if it has not picked it up yet, and the result is
// ErrUnavailable.
func giveUp(op string, req *writeReq, cause error) error {
	req.gaveUp.Store(true)
	// Prefer an outcome that arrived at the same time.
	select {
	case err := <-req.done:
		return answered(op, req, err)
	default:
	}
	// The writer may still answer: req.done is not recycled.
	return fmt.Errorf("store: %s: %w: %w", op, ErrUnavailable, cause)
}

// doneChans recycles the done channels of requests whose caller received
// the answer. The writer answers a request exactly once and never touches
// it afterwards (writer.finishBatch, runWriter), so such a channel is
// empty and no one else sends on it. A channel whose caller gave up
// (ctx ended) is never recycled: the writer may still send on it.
var doneChans = sync.Pool{New: func() any { return make(chan error, 1) }}

// newDone returns an empty done channel.
func newDone() chan error { return doneChans.Get().(chan error) }

// answered recycles req.done, from which the caller just received err,
// the request's outcome, and returns err prefixed with op.
func answered(op string, req *writeReq, err error) error {
	doneChans.Put(req.done)
	req.done = nil
	if err != nil {
		return fmt.Errorf("store: %s: %w", op, err)
	}
	return nil
}

// enqueue puts req on the writer queue, waiting for room until ctx ends or
// expired, req's deadline, fires.
func (s *SQLite) enqueue(ctx context.Context, expired <-chan time.Time, req *writeReq) error {
	if err := entryErrBy(ctx, s.isClosed.Load(), req.deadline); err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	return s.enqueueWait(ctx, expired, req)
}

// wakeCheckpointer gives the checkpointer a token after a commit.
func (s *SQLite) wakeCheckpointer() {
	select {
	case s.committed <- struct{}{}:
	default:
	}
}

// commitBatch runs reqs in one transaction, commits, and sets each
// request's outcome.
//
// A failing request must roll back only itself. The batch first runs
// optimistically, every request straight in the transaction: requests are
// validated before they are queued, so they almost never fail, and a
// savepoint costs two more statements per request (SAVEPOINT, RELEASE), a
// fifth of the writer's time per publish. Should one fail, the batch rolls
// back and runs again with a savepoint per request (commitSavepoints);
// requests keep no state outside the transaction but their result, so
// running one twice is safe. A lone request never needs one: the
// transaction is its savepoint. That matters for large requests: SQLite
// journals every page a savepoint touches and rewinds that in-memory journal
// at the end of every statement, which made a 1000-draft request spend a
// third of its time there and grows quadratically with the request; so
// large requests are solo (see writeReq.weight) and never pay for it.
func (s *SQLite) commitBatch(reqs []*writeReq) {
	ctx := context.Background()
	failAll := func(err error) {
		err = classify(err)
		s.log.Error("store: write transaction failed", "requests", len(reqs), "err", err)
		for _, r := range reqs {
			r.err = err
		}
	}
	if err := s.begin(ctx); err != nil {
		failAll(fmt.Errorf("begin: %w", err))
		return
	}
	if s.runOptimistic(ctx, reqs) {
		s.commit(ctx, reqs)
		return
	}
	s.rollback(ctx)
	if len(reqs) == 1 {
		return // the request's error stands
	}
	for _, r := range reqs {
		r.err = nil
	}
	if err := s.begin(ctx); err != nil {
		failAll(fmt.Errorf("begin: %w", err))
		return
	}
	s.commitSavepoints(ctx, reqs, failAll)
}

// runOptimistic runs reqs in the open transaction without savepoints, a
// run of two or more consecutive plain publishes as one merged write
// (publishRun), and reports whether all succeeded. On false the caller
// must roll back: the transaction holds part of the batch.
func (s *SQLite) runOptimistic(ctx context.Context, reqs []*writeReq) bool {
	for i := 0; i < len(reqs); {
		j := i
		for j < len(reqs) && reqs[j].merge {
			j++
		}
		if j-i > 1 {
			if err := s.publishRun(ctx, reqs[i:j]); err != nil {
				reqs[i].err = err
				return false
			}
			i = j
			continue
		}
		r := reqs[i]
		if r.err = s.runReq(ctx, r); r.err != nil {
			return false
		}
		i++
	}
	return true
}

// runReq runs r alone in the open transaction and records its result. A
// request may run again after a rollback (see commitBatch): a publish's
// result is reset first, so that a failed rerun leaves none.
func (s *SQLite) runReq(ctx context.Context, r *writeReq) error {
	if !r.publish {
		return r.run(ctx, &s.w)
	}
	r.pubRes = PublishResult{}
	res, err := s.publishTx(ctx, &s.w, &r.pub, &r.pubBufs)
	if err == nil {
		r.pubRes = res
	}
	return err
}

// commitSavepoints runs reqs in the open transaction, each under its own
// savepoint, and commits.
func (s *SQLite) commitSavepoints(ctx context.Context, reqs []*writeReq, failAll func(error)) {
	w := &s.w
	for _, r := range reqs {
		if err := w.exec(ctx, `SAVEPOINT req`); err != nil {
			s.rollback(ctx)
			failAll(fmt.Errorf("savepoint: %w", err))
			return
		}
		runErr := s.runReq(ctx, r)
		if runErr != nil {
			if err := w.exec(ctx, `ROLLBACK TO req`); err != nil {
				s.rollback(ctx)
				failAll(fmt.Errorf("rollback to savepoint after %v: %w", runErr, err))
				return
			}
		}
		if err := w.exec(ctx, `RELEASE req`); err != nil {
			s.rollback(ctx)
			failAll(fmt.Errorf("release savepoint: %w", err))
			return
		}
		r.err = runErr
	}
	s.commit(ctx, reqs)
}

// commit commits the open transaction; when that fails, it rolls back and
// sets the error on every request that had succeeded.
func (s *SQLite) commit(ctx context.Context, reqs []*writeReq) {
	if err := s.w.exec(ctx, `COMMIT`); err != nil {
		s.rollback(ctx)
		err = classify(fmt.Errorf("commit: %w", err))
		s.log.Error("store: commit failed", "requests", len(reqs), "err", err)
		for _, r := range reqs {
			if r.err == nil {
				r.err = err
			}
		}
	}
}

// begin opens the writer's transaction. Should one still be open (a
// ROLLBACK that failed), it is rolled back first, so that one failure
// cannot fail every later batch.
func (s *SQLite) begin(ctx context.Context) error {
	err := s.w.exec(ctx, `BEGIN IMMEDIATE`)
	if err != nil && strings.Contains(err.Error(), "within a transaction") {
		s.rollback(ctx)
		err = s.w.exec(ctx, `BEGIN IMMEDIATE`)
	}
	return err
}

// rollback ends the writer's open transaction, if any (a failed COMMIT
// can leave it open).
func (s *SQLite) rollback(ctx context.Context) {
	if err := s.w.exec(ctx, `ROLLBACK`); err != nil && !strings.Contains(err.Error(), "no transaction is active") {
		s.log.Error("store: rollback failed", "err", err)
	}
}

// wtx is the writer's transaction as requests see it: the writer's one
// connection (native, see sqlite_native.go), on which commitBatch runs
// BEGIN IMMEDIATE … COMMIT, with statements prepared once for the life of
// the store. Its methods mirror database/sql's so the shared helpers take
// either it or the read pool (querier). Used by the writer goroutine only.
type wtx struct {
	c *nconn
}

// exec runs a statement without arguments that returns no rows.
func (t *wtx) exec(_ context.Context, query string) error {
	_, err := t.c.exec(query, nil)
	return err
}

// ExecContext runs a statement that returns no rows. The writer runs under
// its own context (see writeReq.ctx), so ctx is not consulted.
func (t *wtx) ExecContext(_ context.Context, query string, args ...any) (sql.Result, error) {
	n, err := t.c.exec(query, args)
	if err != nil {
		return nil, err
	}
	return execResult(n), nil
}

// QueryContext runs a query.
func (t *wtx) QueryContext(_ context.Context, query string, args ...any) (rowsIter, error) {
	rows, err := t.c.query(query, args)
	if err != nil {
		return nil, err
	}
	return rows, nil
}

// QueryRowContext runs a query that returns at most one row.
func (t *wtx) QueryRowContext(_ context.Context, query string, args ...any) scanner {
	return t.c.queryRow(query, args)
}

// execResult is the sql.Result of a native statement: the rows it changed.
type execResult int64

func (r execResult) RowsAffected() (int64, error) { return int64(r), nil }
func (r execResult) LastInsertId() (int64, error) {
	return 0, errors.New("store: LastInsertId is not supported")
}

// rowsIter is what the shared read helpers use of a query's rows:
// *sql.Rows or the writer's *nrows.
type rowsIter interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close() error
}

var (
	_ rowsIter = (*sql.Rows)(nil)
	_ rowsIter = (*nrows)(nil)
)

// stmtSource hands out a prepared statement for a query: the read pool's
// cache (readStmts).
type stmtSource interface {
	stmt(ctx context.Context, query string) (*sql.Stmt, error)
}

// queryStmt runs query as a prepared statement of src.
func queryStmt(ctx context.Context, src stmtSource, query string, args []any) (*sql.Rows, error) {
	st, err := src.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// queryRowStmt runs query as a prepared statement of src. When the query
// cannot be prepared, unprepared runs it, so that database/sql reports the
// error through the Row.
func queryRowStmt(ctx context.Context, src stmtSource, unprepared func(context.Context, string, ...any) *sql.Row, query string, args []any) *sql.Row {
	st, err := src.stmt(ctx, query)
	if err != nil {
		return unprepared(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

// querier is what the shared read helpers need: the read pool (readStmts,
// poolQuerier) or the writer's transaction (*wtx).
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (rowsIter, error)
	QueryRowContext(ctx context.Context, query string, args ...any) scanner
}

// poolQuerier is the read pool as a querier, without prepared statements.
type poolQuerier struct{ *sql.DB }

func (q poolQuerier) QueryContext(ctx context.Context, query string, args ...any) (rowsIter, error) {
	rows, err := q.DB.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return rows, nil
}

func (q poolQuerier) QueryRowContext(ctx context.Context, query string, args ...any) scanner {
	return q.DB.QueryRowContext(ctx, query, args...)
}

var (
	_ querier = poolQuerier{}
	_ querier = (*wtx)(nil)
)
