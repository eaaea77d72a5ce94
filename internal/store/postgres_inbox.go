package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald/internal/notification"
)

// The inbox-model state changes of the PostgreSQL engine: seen marks,
// archive and preferences (issue 15). Each runs in its own transaction
// under the recipient's state-change lock, like the others
// (postgres_mutate.go).

// loadPrefs reads r's preferences through q (the reader's view). Several
// nodes change preferences, so nothing is cached.
func loadPrefs(ctx context.Context, q rowReader, r notification.Recipient) (notification.Preferences, error) {
	var cats, types string
	err := q.queryRow(ctx, `SELECT muted_categories, muted_types FROM preferences WHERE tenant = $1 AND user_id = $2`,
		r.Tenant, r.User).Scan(&cats, &types)
	if err == pgx.ErrNoRows {
		return notification.Preferences{}, nil
	}
	if err != nil {
		return notification.Preferences{}, err
	}
	return notification.Preferences{MutedCategories: splitMuted(cats), MutedTypes: splitMuted(types)}, nil
}

// Preferences implements Store.
func (s *Postgres) Preferences(ctx context.Context, r notification.Recipient) (notification.Preferences, error) {
	if err := s.enterRecipient(ctx, r); err != nil {
		return notification.Preferences{}, fmt.Errorf("store: preferences: %w", err)
	}
	defer s.inflight.Done()
	p, err := loadPrefs(ctx, pgRows{s.pool}, r)
	if err != nil {
		return notification.Preferences{}, fmt.Errorf("store: preferences: %w", classifyPG(err))
	}
	return p, nil
}

// SetPreferences implements Store.
func (s *Postgres) SetPreferences(ctx context.Context, r notification.Recipient, p notification.Preferences) (Change, error) {
	if err := s.enterRecipient(ctx, r); err != nil {
		return Change{}, fmt.Errorf("store: set preferences: %w", err)
	}
	defer s.inflight.Done()
	if err := notification.ValidatePreferences(p); err != nil {
		return Change{}, fmt.Errorf("store: set preferences: %w: %w", ErrInvalid, err)
	}
	return s.stateChange(ctx, "set preferences", func(tx pgx.Tx) (Change, error) {
		var err error
		if p.Empty() {
			_, err = tx.Exec(ctx, `DELETE FROM preferences WHERE tenant = $1 AND user_id = $2`, r.Tenant, r.User)
		} else {
			_, err = tx.Exec(ctx, `INSERT INTO preferences (tenant, user_id, muted_categories, muted_types) VALUES ($1, $2, $3, $4)
				ON CONFLICT (tenant, user_id) DO UPDATE SET muted_categories = excluded.muted_categories, muted_types = excluded.muted_types`,
				r.Tenant, r.User, joinMuted(p.MutedCategories), joinMuted(p.MutedTypes))
		}
		if err != nil {
			return Change{}, err
		}
		return prefsChange(r, p), nil
	})
}

// MarkSeen implements Store.
func (s *Postgres) MarkSeen(ctx context.Context, r notification.Recipient, upTo *notification.Position) (Change, error) {
	if err := s.enterRecipient(ctx, r); err != nil {
		return Change{}, fmt.Errorf("store: mark seen: %w", err)
	}
	defer s.inflight.Done()
	return s.stateChange(ctx, "mark seen", func(tx pgx.Tx) (Change, error) {
		var b pgx.Batch
		s.lockRecipient(&b, r)
		if err := tx.SendBatch(ctx, &b).Close(); err != nil {
			return Change{}, err
		}
		head, err := readHead(ctx, pgRows{tx}, &pgReadSQL, r)
		if err != nil {
			return Change{}, err
		}
		to := seenTarget(head, upTo)
		tag, err := tx.Exec(ctx, `INSERT INTO user_streams AS u (tenant, user_id, seq, unread, unseen, seen_seq, seen_tenant_seq)
			VALUES ($1, $2, 0, 0, 0, $3, $4)
			ON CONFLICT (tenant, user_id) DO UPDATE SET seen_seq = GREATEST(u.seen_seq, $3), seen_tenant_seq = GREATEST(u.seen_tenant_seq, $4)
			WHERE u.seen_seq < $3 OR u.seen_tenant_seq < $4`, r.Tenant, r.User, to.User, to.Tenant)
		if err != nil {
			return Change{}, err
		}
		moved := tag.RowsAffected() > 0
		if moved {
			if _, err := tx.Exec(ctx, `UPDATE user_streams u SET unseen = (SELECT count(*) FROM inbox i
				WHERE i.tenant = $1 AND i.user_id = $2 AND i.seq > u.seen_seq AND NOT i.archived)
				WHERE tenant = $1 AND user_id = $2`, r.Tenant, r.User); err != nil {
				return Change{}, err
			}
		}
		return s.finishChange(ctx, tx, r, pgDelta{}, nil, notification.EventSeen, moved)
	})
}

// IsUnseen implements Store.
func (s *Postgres) IsUnseen(ctx context.Context, r notification.Recipient, id string) (bool, error) {
	if err := s.enterRecipient(ctx, r); err != nil {
		return false, fmt.Errorf("store: is unseen: %w", err)
	}
	defer s.inflight.Done()
	if !notification.ValidID(id) {
		return false, nil
	}
	p, err := loadPrefs(ctx, pgRows{s.pool}, r)
	if err == nil {
		var ok bool
		if ok, err = isUnseen(ctx, pgRows{s.pool}, &pgReadSQL, r, id, p, s.clock().UnixMilli()); err == nil {
			return ok, nil
		}
	}
	return false, fmt.Errorf("store: is unseen: %w", classifyPG(err))
}

// Archive implements Store.
func (s *Postgres) Archive(ctx context.Context, r notification.Recipient, ids []string, all bool) (Change, error) {
	return s.archive(ctx, r, ids, all, true)
}

// Unarchive implements Store.
func (s *Postgres) Unarchive(ctx context.Context, r notification.Recipient, ids []string, all bool) (Change, error) {
	return s.archive(ctx, r, ids, all, false)
}

func (s *Postgres) archive(ctx context.Context, r notification.Recipient, ids []string, all, on bool) (Change, error) {
	op, kind := "archive", notification.EventArchived
	if !on {
		op, kind = "unarchive", notification.EventUnarchived
	}
	if err := s.enterRecipient(ctx, r); err != nil {
		return Change{}, fmt.Errorf("store: %s: %w", op, err)
	}
	defer s.inflight.Done()
	if all {
		return s.stateChange(ctx, op, func(tx pgx.Tx) (Change, error) {
			n, d, err := s.archiveAllTx(ctx, tx, r, on)
			if err != nil {
				return Change{}, err
			}
			c, err := s.finishChange(ctx, tx, r, d, nil, kind, false)
			if err == nil && n > 0 {
				c.Event = allEvent(r, kind, c.Counts)
			}
			return c, err
		})
	}
	if err := checkIDs(ids); err != nil {
		return Change{}, fmt.Errorf("store: %s: %w", op, err)
	}
	want := make([]string, 0, len(ids))
	for _, id := range distinctUsers(ids) {
		if notification.ValidID(id) {
			want = append(want, id)
		}
	}
	if len(want) == 0 {
		return Change{}, fmt.Errorf("store: %s: %w", op, ErrNotFound)
	}
	return s.stateChange(ctx, op, func(tx pgx.Tx) (Change, error) {
		vis, err := s.lockVisible(ctx, tx, r, want)
		if err != nil {
			return Change{}, err
		}
		var (
			d       pgDelta
			found   bool
			changed = map[string]bool{}
		)
		for _, v := range vis {
			var ch, f bool
			if v.key == "" {
				ch, f, err = pgArchiveExplicit(ctx, tx, r, v, on, &d)
			} else {
				ch, f, err = pgArchiveBroadcast(ctx, tx, r, v, on, &d)
			}
			if err != nil {
				return Change{}, err
			}
			found = found || f
			changed[v.id] = ch
		}
		if !found {
			return Change{}, ErrNotFound
		}
		var out []string // in the caller's order
		for _, id := range want {
			if changed[id] {
				out = append(out, id)
			}
		}
		return s.finishChange(ctx, tx, r, d, out, kind, false)
	})
}

// pgArchiveExplicit flips r's inbox row of v; it reports whether it
// changed and whether it exists, and adds the counter change to d.
func pgArchiveExplicit(ctx context.Context, tx pgx.Tx, r notification.Recipient, v pgVisible, on bool, d *pgDelta) (changed, found bool, err error) {
	var read, after bool
	err = tx.QueryRow(ctx, `UPDATE inbox i SET archived = $4 WHERE tenant = $1 AND user_id = $2 AND notification_id = $3 AND archived <> $4
		RETURNING read, i.seq > COALESCE((SELECT seen_seq FROM user_streams u WHERE u.tenant = $1 AND u.user_id = $2), 0)`,
		r.Tenant, r.User, v.id, on).Scan(&read, &after)
	if err == pgx.ErrNoRows {
		var one int
		err = tx.QueryRow(ctx, `SELECT 1 FROM inbox WHERE tenant = $1 AND user_id = $2 AND notification_id = $3`,
			r.Tenant, r.User, v.id).Scan(&one)
		if err == pgx.ErrNoRows {
			return false, false, nil
		}
		return false, err == nil, err
	}
	if err != nil {
		return false, false, err
	}
	sign := int64(1)
	if on {
		sign = -1
	}
	if !read {
		d.unread += sign
		if v.category != "" {
			if d.cats == nil {
				d.cats = map[string]int64{}
			}
			d.cats[v.category] += sign
		}
	}
	if after {
		d.unseen += sign
	}
	return true, true, nil
}

// pgArchiveBroadcast sets or clears r's receipt of broadcast v as
// archived (see archiveBroadcast in sqlite_inbox.go for the states).
func pgArchiveBroadcast(ctx context.Context, tx pgx.Tx, r notification.Recipient, v pgVisible, on bool, d *pgDelta) (changed, found bool, err error) {
	var exists, read, deleted, archived bool
	err = tx.QueryRow(ctx, `SELECT read, deleted, archived FROM receipts WHERE tenant = $1 AND user_id = $2 AND notification_id = $3`,
		r.Tenant, r.User, v.id).Scan(&read, &deleted, &archived)
	switch {
	case err == pgx.ErrNoRows:
		err = nil
	case err != nil:
		return false, false, err
	default:
		exists = true
	}
	const setArchived = `UPDATE receipts SET archived = $4 WHERE tenant = $1 AND user_id = $2 AND notification_id = $3`
	switch {
	case deleted:
		return false, false, nil
	case on && archived:
		return false, true, nil
	case on && exists:
		_, err = tx.Exec(ctx, setArchived, r.Tenant, r.User, v.id, true)
	case on:
		_, err = tx.Exec(ctx, `INSERT INTO receipts (tenant, user_id, notification_id, audience_key, read, deleted, archived)
			VALUES ($1, $2, $3, $4, false, false, true)`, r.Tenant, r.User, v.id, v.key)
		d.addSeen(v.key, v.category, v.typ, 1)
	case !archived:
		return false, exists, nil
	case read:
		_, err = tx.Exec(ctx, setArchived, r.Tenant, r.User, v.id, false)
	default: // archived only: the broadcast is unread again
		_, err = tx.Exec(ctx, `DELETE FROM receipts WHERE tenant = $1 AND user_id = $2 AND notification_id = $3`, r.Tenant, r.User, v.id)
		d.addSeen(v.key, v.category, v.typ, -1)
	}
	return true, true, err
}

// archiveAllTx archives (on) or unarchives everything r can see and
// returns the number of items that changed and the counter change to apply,
// derived from the rows it changed (a publish may commit meanwhile).
func (s *Postgres) archiveAllTx(ctx context.Context, tx pgx.Tx, r notification.Recipient, on bool) (int64, pgDelta, error) {
	var b pgx.Batch
	s.lockRecipient(&b, r)
	if err := tx.SendBatch(ctx, &b).Close(); err != nil {
		return 0, pgDelta{}, err
	}
	var (
		d     pgDelta
		total int64
	)
	sign := int64(1)
	if on {
		sign = -1
	}
	// The inbox rows, after their notifications (KEY SHARE, by id), as
	// MarkAllRead does.
	rows, err := tx.Query(ctx, `WITH locked AS (
			SELECT n.id, n.category FROM notifications n
			WHERE n.id IN (SELECT notification_id FROM inbox WHERE tenant = $1 AND user_id = $2 AND archived <> $3)
			ORDER BY n.id FOR KEY SHARE OF n)
		UPDATE inbox i SET archived = $3 FROM locked l
		WHERE i.tenant = $1 AND i.user_id = $2 AND i.notification_id = l.id AND i.archived <> $3
		RETURNING i.read, l.category,
		  i.seq > COALESCE((SELECT seen_seq FROM user_streams u WHERE u.tenant = $1 AND u.user_id = $2), 0)`, r.Tenant, r.User, on)
	if err != nil {
		return 0, d, err
	}
	var (
		read, after bool
		cat         string
	)
	if _, err := pgx.ForEachRow(rows, []any{&read, &cat, &after}, func() error {
		total++
		if !read {
			d.unread += sign
			if cat != "" {
				if d.cats == nil {
					d.cats = map[string]int64{}
				}
				d.cats[cat] += sign
			}
		}
		if after {
			d.unseen += sign
		}
		return nil
	}); err != nil {
		return 0, d, err
	}
	if on {
		tag, err := tx.Exec(ctx, `UPDATE receipts SET archived = true WHERE tenant = $1 AND user_id = $2 AND NOT archived AND NOT deleted`, r.Tenant, r.User)
		if err != nil {
			return 0, d, err
		}
		added, k, err := pgReceiptAll(ctx, tx, r, false, true)
		if err != nil {
			return 0, d, err
		}
		for key, n := range added.seen {
			if d.seen == nil {
				d.seen = map[string]int64{}
			}
			d.seen[key] += n
		}
		return total + tag.RowsAffected() + k, d, nil
	}
	// Receipts that were archived only go (the broadcast is unread again);
	// the others stay, read.
	rows, err = tx.Query(ctx, `DELETE FROM receipts rc USING notifications n
		WHERE rc.tenant = $1 AND rc.user_id = $2 AND rc.archived AND NOT rc.read AND NOT rc.deleted AND n.id = rc.notification_id
		RETURNING rc.audience_key, n.category, n.type`, r.Tenant, r.User)
	if err != nil {
		return 0, d, err
	}
	var key, typ string
	if _, err := pgx.ForEachRow(rows, []any{&key, &cat, &typ}, func() error {
		total++
		d.addSeen(key, cat, typ, -1)
		return nil
	}); err != nil {
		return 0, d, err
	}
	tag, err := tx.Exec(ctx, `UPDATE receipts SET archived = false WHERE tenant = $1 AND user_id = $2 AND archived`, r.Tenant, r.User)
	if err != nil {
		return 0, d, err
	}
	return total + tag.RowsAffected(), d, nil
}
