package store

import (
	"context"

	"github.com/heraldhq/herald/internal/notification"
)

// sweepNow removes every notification expired at the store's clock time,
// fixing the counters that include it, and purges idempotency records older
// than idempotencyTTL, through the writer. It returns the number of
// notifications removed.
func (s *SQLite) sweepNow(ctx context.Context) (int, error) {
	return sweepBatches(func() (int, error) {
		res, err := submit(s, ctx, "sweep", s.sweepTx)
		return res.n, err
	})
}

// sweepTx removes up to sweepBatch expired notifications inside the batch
// transaction (and the stale idempotency records).
func (s *SQLite) sweepTx(ctx context.Context, tx *wtx) (sweepResult, error) {
	now := s.clock()
	if _, err := tx.ExecContext(ctx, `DELETE FROM idempotency WHERE created_at < ?`,
		now.Add(-idempotencyTTL).UnixMilli()); err != nil {
		return sweepResult{}, classify(err)
	}
	rows, err := tx.QueryContext(ctx,
		`SELECT id, tenant, audience_kind, audience_role, category, type FROM notifications
		 WHERE expires_at IS NOT NULL AND expires_at <= ? ORDER BY expires_at LIMIT ?`,
		now.UnixMilli(), sweepBatch)
	if err != nil {
		return sweepResult{}, classify(err)
	}
	var list []expired
	for rows.Next() {
		var (
			e    expired
			kind int64
		)
		if err := rows.Scan(&e.id, &e.tenant, &kind, &e.audience.Role, &e.category, &e.typ); err != nil {
			_ = rows.Close()
			return sweepResult{}, classify(err)
		}
		e.audience.Kind = notification.AudienceKind(kind)
		list = append(list, e)
	}
	if err := rows.Close(); err != nil {
		return sweepResult{}, classify(err)
	}
	if err := rows.Err(); err != nil {
		return sweepResult{}, classify(err)
	}
	var broadcasts []expired
	users := map[[2]string][]string{}
	for _, e := range list {
		recipients, err := sweepOne(ctx, tx, e)
		if err != nil {
			return sweepResult{}, err
		}
		if e.audience.Broadcast() {
			broadcasts = append(broadcasts, e)
		}
		for _, u := range recipients {
			k := [2]string{e.tenant, u}
			users[k] = append(users[k], e.id)
		}
	}
	return sweepResult{n: len(list), events: expiredEvents(broadcasts, users)}, nil
}

// sweepOne deletes one expired notification and takes it out of every
// counter that includes it. For an explicit-user notification it returns
// the users whose inbox held it.
func sweepOne(ctx context.Context, tx *wtx, e expired) ([]string, error) {
	var err error
	exec := func(query string, args ...any) {
		if err == nil {
			_, err = tx.ExecContext(ctx, query, args...)
		}
	}
	var users []string
	if e.audience.Broadcast() {
		for _, key := range counterKeys(e.audience.Key(), e.category, e.typ) {
			exec(`UPDATE audience_totals SET total = total - 1 WHERE tenant = ? AND audience_key = ?`, e.tenant, key)
			exec(`UPDATE receipt_counts SET seen = seen - 1
			      WHERE tenant = ? AND audience_key = ?
			        AND user_id IN (SELECT user_id FROM receipts WHERE notification_id = ?)`, e.tenant, key, e.id)
		}
		exec(`DELETE FROM receipts WHERE notification_id = ?`, e.id)
	} else {
		exec(`UPDATE user_streams SET
		        unread = unread - (SELECT count(*) FROM inbox i WHERE i.notification_id = ?2 AND i.tenant = ?1
		                             AND i.user_id = user_streams.user_id AND i.read = 0 AND i.archived = 0),
		        unseen = unseen - (SELECT count(*) FROM inbox i WHERE i.notification_id = ?2 AND i.tenant = ?1
		                             AND i.user_id = user_streams.user_id AND i.archived = 0 AND i.seq > user_streams.seen_seq)
		      WHERE tenant = ?1 AND user_id IN (SELECT user_id FROM inbox WHERE notification_id = ?2 AND archived = 0)`, e.tenant, e.id)
		if e.category != "" {
			exec(`UPDATE category_counts SET unread = unread - 1
			      WHERE tenant = ?1 AND category = ?3
			        AND user_id IN (SELECT user_id FROM inbox WHERE notification_id = ?2 AND read = 0 AND archived = 0)`, e.tenant, e.id, e.category)
		}
		if err == nil {
			users, err = deleteInboxRows(ctx, tx, e.id)
		}
	}
	exec(`DELETE FROM notifications WHERE id = ?`, e.id)
	return users, classify(err)
}

// deleteInboxRows deletes a notification's inbox rows and returns their users.
func deleteInboxRows(ctx context.Context, tx *wtx, id string) ([]string, error) {
	rows, err := tx.QueryContext(ctx, `DELETE FROM inbox WHERE notification_id = ? RETURNING user_id`, id)
	if err != nil {
		return nil, err
	}
	var users []string
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			_ = rows.Close()
			return nil, err
		}
		users = append(users, u)
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	return users, rows.Err()
}
