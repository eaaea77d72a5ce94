package store

import (
	"context"
	"errors"
	"time"

	"github.com/heraldhq/herald/internal/notification"
)

// runSweeper is the sweeper goroutine: every SweepInterval it removes
// expired notifications and stale idempotency records through the writer.
// It returns when ctx (cancelled by Close) ends.
func (s *SQLite) runSweeper(ctx context.Context) {
	defer s.background.Done()
	t := time.NewTicker(s.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := s.sweepNow(ctx)
		switch {
		case err != nil && ctx.Err() == nil && !errors.Is(err, ErrClosed):
			s.log.Warn("store: sweep failed", "swept", n, "err", err)
		case n > 0:
			s.log.Debug("store: swept expired notifications", "swept", n)
		}
	}
}

// sweepNow removes every notification expired at the store's clock time,
// fixing the counters that include it, and purges idempotency records older
// than idempotencyTTL. It returns the number of notifications removed.
func (s *SQLite) sweepNow(ctx context.Context) (int, error) {
	total := 0
	for {
		n, err := submit(s, ctx, "sweep", s.sweepTx)
		total += n
		if err != nil || n < sweepBatch {
			return total, err
		}
	}
}

type expired struct {
	id       string
	tenant   string
	audience notification.Audience
}

func (s *SQLite) sweepTx(ctx context.Context, tx *wtx) (int, error) {
	now := s.clock()
	if _, err := tx.ExecContext(ctx, `DELETE FROM idempotency WHERE created_at < ?`,
		now.Add(-idempotencyTTL).UnixMilli()); err != nil {
		return 0, classify(err)
	}
	rows, err := tx.QueryContext(ctx,
		`SELECT id, tenant, audience_kind, audience_role FROM notifications
		 WHERE expires_at IS NOT NULL AND expires_at <= ? ORDER BY expires_at LIMIT ?`,
		now.UnixMilli(), sweepBatch)
	if err != nil {
		return 0, classify(err)
	}
	var list []expired
	for rows.Next() {
		var (
			e    expired
			kind int64
		)
		if err := rows.Scan(&e.id, &e.tenant, &kind, &e.audience.Role); err != nil {
			_ = rows.Close()
			return 0, classify(err)
		}
		e.audience.Kind = notification.AudienceKind(kind)
		list = append(list, e)
	}
	if err := rows.Close(); err != nil {
		return 0, classify(err)
	}
	if err := rows.Err(); err != nil {
		return 0, classify(err)
	}
	for _, e := range list {
		if err := sweepOne(ctx, tx, e); err != nil {
			return 0, err
		}
	}
	return len(list), nil
}

// sweepOne deletes one expired notification and takes it out of every
// counter that includes it.
func sweepOne(ctx context.Context, tx *wtx, e expired) error {
	var err error
	exec := func(query string, args ...any) {
		if err == nil {
			_, err = tx.ExecContext(ctx, query, args...)
		}
	}
	if e.audience.Broadcast() {
		key := e.audience.Key()
		exec(`UPDATE audience_totals SET total = total - 1 WHERE tenant = ? AND audience_key = ?`, e.tenant, key)
		exec(`UPDATE receipt_counts SET seen = seen - 1
		      WHERE tenant = ? AND audience_key = ?
		        AND user_id IN (SELECT user_id FROM receipts WHERE notification_id = ?)`, e.tenant, key, e.id)
		exec(`DELETE FROM receipts WHERE notification_id = ?`, e.id)
	} else {
		exec(`UPDATE user_streams SET unread = unread - 1
		      WHERE tenant = ?
		        AND user_id IN (SELECT user_id FROM inbox WHERE notification_id = ? AND read = 0)`, e.tenant, e.id)
		exec(`DELETE FROM inbox WHERE notification_id = ?`, e.id)
	}
	exec(`DELETE FROM notifications WHERE id = ?`, e.id)
	return classify(err)
}
