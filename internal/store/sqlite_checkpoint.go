package store

import (
	"context"
	"time"
)

// checkpointInterval is the least time between two checkpoints.
const checkpointInterval = 250 * time.Millisecond

// The WAL is checkpointed in two parts.
//
// SQLite's automatic checkpoint runs inside the commit that crosses the
// threshold, on the writer, and with synchronous=FULL adds two fsyncs to
// that batch's latency (it was 14% of the writer's CPU under load). Instead,
// after commits, at most every checkpointInterval, the checkpointer
// goroutine copies the WAL back into the database on its own connection
// with a PASSIVE checkpoint, which never blocks the writer or readers.
//
// That alone never lets the WAL restart under steady writes. SQLite starts
// writing the WAL from its beginning again only when a write transaction
// begins with every frame already copied back, and the commits that land
// while the checkpointer copies leave frames behind. So the WAL grew by every
// commit up to the automatic checkpoint's threshold (64 MiB), and each
// commit's fsync had to journal the file's new size: on the ext4 disk of
// docs/benchmarks.md, 0.08-0.14 ms more per fsync at the median than
// rewriting blocks already allocated. Hence the tail: after each checkpoint, the writer,
// the next time it finds its queue empty, checkpoints the few frames
// committed since on its own connection (tailCheckpoint). Its next
// transaction then finds the WAL fully copied and restarts it.

// runCheckpointer is the checkpointer goroutine. It returns when ctx
// (cancelled by Close) ends.
func (s *SQLite) runCheckpointer(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.committed:
		}
		var busy, logPages, done int
		err := s.cdb.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &logPages, &done)
		switch {
		case err == nil:
			s.checkpoints.Add(1)
			s.tailWanted.Store(true)
		case ctx.Err() == nil:
			s.log.Warn("store: checkpoint failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.cfg.checkpointEvery):
		}
	}
}

// tailCheckpoint is the writer's idle work: after a checkpoint of the
// checkpointer, it copies back the frames committed since, so that the
// writer's next transaction restarts the WAL. It runs on the writer
// goroutine, between batches, and only when the queue is empty. A
// checkpoint the checkpointer is running meanwhile makes it a no-op
// (PASSIVE never waits for the checkpoint lock).
func (s *SQLite) tailCheckpoint() {
	if !s.tailWanted.CompareAndSwap(true, false) {
		return
	}
	if _, err := s.w.c.exec(`PRAGMA wal_checkpoint(PASSIVE)`, nil); err != nil {
		s.log.Warn("store: tail checkpoint failed", "err", err)
		return
	}
	s.tails.Add(1)
}
