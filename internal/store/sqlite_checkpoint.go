package store

import (
	"context"
	"time"
)

// checkpointInterval is the least time between two checkpoints.
const checkpointInterval = 250 * time.Millisecond

// runCheckpointer is the checkpointer goroutine. SQLite's automatic
// checkpoint runs inside the commit that crosses the threshold, on the
// writer, and with synchronous=FULL adds two fsyncs to that batch's latency
// (it was 14% of the writer's CPU under load). Instead, after commits, at
// most every checkpointInterval, this goroutine copies the WAL back into the
// database on its own connection with a PASSIVE checkpoint, which never
// blocks the writer or readers. It returns when ctx (cancelled by Close)
// ends.
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
		case ctx.Err() == nil:
			s.log.Warn("store: checkpoint failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(checkpointInterval):
		}
	}
}
