package store

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldhq/herald/internal/notification"
)

// The group-commit writer, as both engines run it: callers put requests on
// a bounded queue (enqueueWait) and wait for their outcome; one writer
// goroutine takes one request, drains those already queued into the same
// batch, commits the batch in one transaction and answers every request.
// The engines differ in what a request is and how a batch commits
// (sqlite_write.go, postgres_write.go).

// writeRequest is what the shared writer loop needs of a queued request.
type writeRequest interface {
	// abandoned is non-nil once the request's caller has given up or can
	// no longer wait for it (its context ended, its deadline passed): a
	// request abandoned when the writer picks it up is answered
	// ErrUnavailable (wrapping the error) and not run.
	abandoned() error
	// weight is the request's share of a batch's budget (see writer).
	weight() int
	// commitErr is the request's outcome once its batch has run: nil when
	// committed.
	commitErr() error
	// commitEvents are the events of a committed request, for OnCommit.
	commitEvents() []*notification.Event
	// answer sends the request's outcome to its caller. It never blocks.
	answer(err error)
}

// writer is the group-commit writer of an engine, which embeds it. A
// batch takes requests while it holds fewer than batchMax and weighs less
// than budget; a request that would take its weight beyond budget waits for
// the next batch, so a request that weighs more than budget is always
// committed alone.
type writer[R writeRequest] struct {
	// Static after construction.
	queue    chan R // closed by the engine's Close under lifecycle.mu
	batchMax int
	budget   int
	// commit runs the live requests of a batch in one transaction and
	// records each one's outcome.
	commit func(live []R)
	// afterCommit, when set, is called after each commit, before OnCommit.
	afterCommit func()
	// idle, when set, is called when the writer has answered a batch and
	// finds the queue empty: work that must run on the writer, but not in
	// any request's latency.
	idle     func()
	onCommit func([]*notification.Event)

	// Statistics: batches committed (or failed) and the requests in them.
	// Written by the writer goroutine, read by anyone.
	batches  atomic.Int64
	batchReq atomic.Int64
}

// newWriter returns a writer with a queue of queueSize requests.
func newWriter[R writeRequest](queueSize, batchMax, budget int, commit func([]R), onCommit func([]*notification.Event)) writer[R] {
	return writer[R]{queue: make(chan R, queueSize), batchMax: batchMax, budget: budget, commit: commit, onCommit: onCommit}
}

// runWriter is the writer goroutine: it takes one request, drains those
// already queued into its batch, and commits the batch. It returns when the
// queue is closed and drained.
func (w *writer[R]) runWriter() {
	batch := make([]R, 0, w.batchMax)
	live := make([]R, 0, w.batchMax)
	var (
		next    R // a request that did not fit the previous batch
		hasNext bool
	)
	for {
		first := next
		if hasNext {
			var zero R
			next, hasNext = zero, false
		} else {
			var ok bool
			if first, ok = <-w.queue; !ok {
				return
			}
		}
		batch = append(batch[:0], first)
		next, hasNext = w.drainQueue(&batch, first.weight())
		live = live[:0]
		for _, r := range batch {
			if err := r.abandoned(); err != nil {
				r.answer(fmt.Errorf("%w: %w", ErrUnavailable, err))
				continue
			}
			live = append(live, r)
		}
		if len(live) > 0 {
			w.finishBatch(live)
		}
		clear(batch)
		clear(live)
		if w.idle != nil && !hasNext && len(w.queue) == 0 {
			w.idle()
		}
	}
}

// drainQueue appends to batch the requests already queued, without
// waiting, while the batch has room. It returns the request that did not
// fit, if any.
func (w *writer[R]) drainQueue(batch *[]R, weight int) (next R, ok bool) {
	for len(*batch) < w.batchMax && weight < w.budget {
		select {
		case r, open := <-w.queue:
			if !open {
				return next, false
			}
			if weight+r.weight() > w.budget {
				return r, true
			}
			*batch = append(*batch, r)
			weight += r.weight()
		default:
			return next, false
		}
	}
	return next, false
}

// finishBatch commits live, counts the batch, hands the events of the
// requests that succeeded to OnCommit (in request order, before any caller
// is answered) and answers every request.
func (w *writer[R]) finishBatch(live []R) {
	w.commit(live)
	w.batches.Add(1)
	w.batchReq.Add(int64(len(live)))
	if w.afterCommit != nil {
		w.afterCommit()
	}
	if w.onCommit != nil {
		var evs []*notification.Event
		for _, r := range live {
			if r.commitErr() == nil {
				evs = append(evs, r.commitEvents()...)
			}
		}
		if len(evs) > 0 {
			w.onCommit(evs)
		}
	}
	for _, r := range live {
		r.answer(r.commitErr())
	}
}

// enqueueWait puts r on the queue, waiting for room until ctx ends or
// expired (nil: never) fires. The caller holds the lock that keeps the
// queue open.
func (w *writer[R]) enqueueWait(ctx context.Context, expired <-chan time.Time, r R) error {
	select {
	case w.queue <- r:
		return nil
	default:
	}
	select {
	case w.queue <- r:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: writer queue full: %w", ErrUnavailable, ctx.Err())
	case <-expired:
		return fmt.Errorf("%w: writer queue full: %w", ErrUnavailable, context.DeadlineExceeded)
	}
}

// entryErr is the entry check of an operation: ErrClosed once the store is
// closed, ErrUnavailable (wrapped) when ctx has already ended.
func entryErr(ctx context.Context, closed bool) error {
	if closed {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil
}

// entryErrBy is entryErr for an operation with a deadline (zero: none):
// ErrUnavailable (wrapped) also once the deadline has passed.
func entryErrBy(ctx context.Context, closed bool, deadline time.Time) error {
	if err := entryErr(ctx, closed); err != nil {
		return err
	}
	if err := pastDeadline(deadline); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil
}

// pastDeadline is context.DeadlineExceeded once deadline (zero: none) has
// passed, as a context with that deadline would report it.
func pastDeadline(deadline time.Time) error {
	if !deadline.IsZero() && !time.Now().Before(deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// deadlineTimers recycles the timers that bound a wait by a request's
// Deadline (see startDeadline). As of Go 1.23 a stopped timer's channel
// holds no stale value, so a timer can be Reset and reused safely.
var deadlineTimers = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}}

// startDeadline returns a timer that fires at deadline, and its channel;
// both are nil when deadline is zero. Stop it with stopDeadline.
func startDeadline(deadline time.Time) (*time.Timer, <-chan time.Time) {
	if deadline.IsZero() {
		return nil, nil
	}
	t := deadlineTimers.Get().(*time.Timer)
	t.Reset(time.Until(deadline))
	return t, t.C
}

// stopDeadline stops t, from startDeadline, and recycles it.
func stopDeadline(t *time.Timer) {
	if t != nil {
		t.Stop()
		deadlineTimers.Put(t)
	}
}
