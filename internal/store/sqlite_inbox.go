package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"github.com/heraldhq/herald/internal/notification"
)

// The inbox-model state changes of the SQLite engine: seen marks, archive
// and preferences (issue 15). Like the other state changes they run on the
// writer, so the counters they adjust are serialised with the publishes
// that bump them.

// loadSQLitePrefs reads every stored preference into a cache.
func loadSQLitePrefs(ctx context.Context, db *sql.DB) (*prefsCache, error) {
	c := &prefsCache{}
	rows, err := db.QueryContext(ctx, `SELECT tenant, user_id, muted_categories, muted_types FROM preferences`)
	if err != nil {
		return nil, fmt.Errorf("store: open: preferences: %w", classify(err))
	}
	defer rows.Close()
	for rows.Next() {
		var t, u, cats, types string
		if err := rows.Scan(&t, &u, &cats, &types); err != nil {
			return nil, fmt.Errorf("store: open: preferences: %w", classify(err))
		}
		c.set(t, u, notification.Preferences{MutedCategories: splitMuted(cats), MutedTypes: splitMuted(types)})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: open: preferences: %w", classify(err))
	}
	return c, nil
}

// cachedPrefs is the reader's view of r's preferences.
func (s *SQLite) cachedPrefs(_ context.Context, _ rowReader, r notification.Recipient) (notification.Preferences, error) {
	return s.prefs.get(r.Tenant, r.User), nil
}

// Preferences implements Store.
func (s *SQLite) Preferences(ctx context.Context, r notification.Recipient) (notification.Preferences, error) {
	if err := s.enterRecipient(ctx, r); err != nil {
		return notification.Preferences{}, fmt.Errorf("store: preferences: %w", err)
	}
	return s.prefs.get(r.Tenant, r.User), nil
}

// SetPreferences implements Store.
func (s *SQLite) SetPreferences(ctx context.Context, r notification.Recipient, p notification.Preferences) (Change, error) {
	if err := s.enterRecipient(ctx, r); err != nil {
		return Change{}, fmt.Errorf("store: set preferences: %w", err)
	}
	if err := notification.ValidatePreferences(p); err != nil {
		return Change{}, fmt.Errorf("store: set preferences: %w: %w", ErrInvalid, err)
	}
	p = clonePrefs(p)
	c, err := submit(s, ctx, "set preferences", func(ctx context.Context, tx *wtx) (Change, error) {
		var err error
		if p.Empty() {
			_, err = tx.ExecContext(ctx, `DELETE FROM preferences WHERE tenant = ? AND user_id = ?`, r.Tenant, r.User)
		} else {
			_, err = tx.ExecContext(ctx, `INSERT INTO preferences (tenant, user_id, muted_categories, muted_types) VALUES (?, ?, ?, ?)
				ON CONFLICT (tenant, user_id) DO UPDATE SET muted_categories = excluded.muted_categories, muted_types = excluded.muted_types`,
				r.Tenant, r.User, joinMuted(p.MutedCategories), joinMuted(p.MutedTypes))
		}
		if err != nil {
			return Change{}, classify(err)
		}
		return prefsChange(r, p), nil
	})
	if err == nil {
		s.prefs.set(r.Tenant, r.User, p)
	}
	return c, err
}

// MarkSeen implements Store.
func (s *SQLite) MarkSeen(ctx context.Context, r notification.Recipient, upTo *notification.Position) (Change, error) {
	if err := s.enterRecipient(ctx, r); err != nil {
		return Change{}, fmt.Errorf("store: mark seen: %w", err)
	}
	return submit(s, ctx, "mark seen", func(ctx context.Context, tx *wtx) (Change, error) {
		head, err := readHead(ctx, sqlRows{tx}, &sqliteReadSQL, r)
		if err != nil {
			return Change{}, classify(err)
		}
		to := seenTarget(head, upTo)
		n, err := execCount(ctx, tx, `INSERT INTO user_streams (tenant, user_id, seq, unread, unseen, seen_seq, seen_tenant_seq)
			VALUES (?1, ?2, 0, 0, 0, ?3, ?4)
			ON CONFLICT (tenant, user_id) DO UPDATE SET seen_seq = max(seen_seq, ?3), seen_tenant_seq = max(seen_tenant_seq, ?4)
			WHERE seen_seq < ?3 OR seen_tenant_seq < ?4`, r.Tenant, r.User, to.User, to.Tenant)
		if err != nil {
			return Change{}, err
		}
		if n > 0 {
			if _, err := tx.ExecContext(ctx, `UPDATE user_streams SET unseen = (SELECT count(*) FROM inbox i
				WHERE i.tenant = ?1 AND i.user_id = ?2 AND i.seq > user_streams.seen_seq AND i.archived = 0)
				WHERE tenant = ?1 AND user_id = ?2`, r.Tenant, r.User); err != nil {
				return Change{}, classify(err)
			}
		}
		return s.countsChange(ctx, tx, r, nil, notification.EventSeen, n > 0)
	})
}

// seenTarget is where a seen mark moves: upTo, never past head (nil: head).
func seenTarget(head notification.Position, upTo *notification.Position) notification.Position {
	if upTo == nil {
		return head
	}
	return notification.Position{User: min(upTo.User, head.User), Tenant: min(upTo.Tenant, head.Tenant)}
}

// countsChange is the result of a state change of r with r's counts read
// in the transaction; its event (of kind) is nil unless changed.
func (s *SQLite) countsChange(ctx context.Context, tx *wtx, r notification.Recipient, ids []string, kind notification.EventKind, changed bool) (Change, error) {
	_, counts, err := s.readCounts(ctx, sqlRows{tx}, r, false)
	if err != nil {
		return Change{}, classify(err)
	}
	return newChange(r, ids, counts, kind, changed), nil
}

// IsUnseen implements Store.
func (s *SQLite) IsUnseen(ctx context.Context, r notification.Recipient, id string) (bool, error) {
	if err := s.enterRecipient(ctx, r); err != nil {
		return false, fmt.Errorf("store: is unseen: %w", err)
	}
	if !notification.ValidID(id) {
		return false, nil
	}
	ok, err := isUnseen(ctx, sqlRows{&s.reads}, &sqliteReadSQL, r, id, s.prefs.get(r.Tenant, r.User), s.clock().UnixMilli())
	if err != nil {
		return false, fmt.Errorf("store: is unseen: %w", classify(err))
	}
	return ok, nil
}

// Archive implements Store.
func (s *SQLite) Archive(ctx context.Context, r notification.Recipient, ids []string, all bool) (Change, error) {
	return s.archive(ctx, r, ids, all, true)
}

// Unarchive implements Store.
func (s *SQLite) Unarchive(ctx context.Context, r notification.Recipient, ids []string, all bool) (Change, error) {
	return s.archive(ctx, r, ids, all, false)
}

func (s *SQLite) archive(ctx context.Context, r notification.Recipient, ids []string, all, on bool) (Change, error) {
	op, kind := "archive", notification.EventArchived
	if !on {
		op, kind = "unarchive", notification.EventUnarchived
	}
	if err := s.enterRecipient(ctx, r); err != nil {
		return Change{}, fmt.Errorf("store: %s: %w", op, err)
	}
	if all {
		return submit(s, ctx, op, func(ctx context.Context, tx *wtx) (Change, error) {
			n, err := s.archiveAllTx(ctx, tx, r, on)
			if err != nil {
				return Change{}, err
			}
			c, err := s.countsChange(ctx, tx, r, nil, kind, false)
			if err == nil && n > 0 {
				c.Event = allEvent(r, kind, c.Counts)
			}
			return c, err
		})
	}
	if err := checkIDs(ids); err != nil {
		return Change{}, fmt.Errorf("store: %s: %w", op, err)
	}
	ids = slices.Clone(ids)
	return submit(s, ctx, op, func(ctx context.Context, tx *wtx) (Change, error) {
		changed, err := s.archiveTx(ctx, tx, r, ids, on)
		if err != nil {
			return Change{}, err
		}
		return s.countsChange(ctx, tx, r, changed, kind, false)
	})
}

// checkIDs rejects an empty list of ids.
func checkIDs(ids []string) error {
	if len(ids) == 0 {
		return fmt.Errorf("%w: no ids", ErrInvalid)
	}
	return nil
}

// archiveTx archives (on) or unarchives ids for r and returns the ids
// that changed.
func (s *SQLite) archiveTx(ctx context.Context, tx *wtx, r notification.Recipient, ids []string, on bool) ([]string, error) {
	now := s.clock().UnixMilli()
	var (
		found   bool
		changed []string
		done    = make(map[string]struct{}, len(ids))
	)
	for _, id := range ids {
		if _, dup := done[id]; dup || !notification.ValidID(id) {
			continue
		}
		done[id] = struct{}{}
		v, ok, err := lookupVisible(ctx, tx, r, id, now)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		var ch, f bool
		if v.explicit {
			ch, f, err = s.archiveExplicit(ctx, tx, r, id, v.category, on)
		} else {
			ch, f, err = s.archiveBroadcast(ctx, tx, r, id, v, on)
		}
		if err != nil {
			return nil, err
		}
		found = found || f
		if ch {
			changed = append(changed, id)
		}
	}
	if !found {
		return nil, ErrNotFound
	}
	return changed, nil
}

// archiveExplicit flips r's inbox row of id; it reports whether it
// changed and whether it exists.
func (s *SQLite) archiveExplicit(ctx context.Context, tx *wtx, r notification.Recipient, id, category string, on bool) (changed, found bool, err error) {
	var read, seq, seenSeq int64
	err = tx.QueryRowContext(ctx, `UPDATE inbox SET archived = ?4 WHERE tenant = ?1 AND user_id = ?2 AND notification_id = ?3 AND archived <> ?4
		RETURNING read, seq, (SELECT seen_seq FROM user_streams WHERE tenant = ?1 AND user_id = ?2)`,
		r.Tenant, r.User, id, boolInt(on)).Scan(&read, &seq, &seenSeq)
	if errors.Is(err, sql.ErrNoRows) {
		var one int
		err = tx.QueryRowContext(ctx, `SELECT 1 FROM inbox WHERE tenant = ? AND user_id = ? AND notification_id = ?`,
			r.Tenant, r.User, id).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return false, false, nil
		}
		return false, err == nil, classify(err)
	}
	if err != nil {
		return false, false, classify(err)
	}
	sign := int64(1)
	if on {
		sign = -1
	}
	return true, true, classify(s.adjustExplicit(ctx, tx, r, category, sign*boolInt64(read == 0), sign*boolInt64(seq > seenSeq)))
}

// archiveBroadcast sets or clears r's receipt of broadcast id as archived.
// A receipt exists only while it is read, deleted or archived, and every
// receipt counts as not unread (see receipt_counts).
func (s *SQLite) archiveBroadcast(ctx context.Context, tx *wtx, r notification.Recipient, id string, v visible, on bool) (changed, found bool, err error) {
	rc, err := lookupReceipt(ctx, tx, r, id)
	switch {
	case err != nil:
		return false, false, err
	case rc.deleted:
		return false, false, nil
	case on && rc.archived:
		return false, true, nil
	case on && rc.exists:
		_, err = tx.ExecContext(ctx, `UPDATE receipts SET archived = 1 WHERE tenant = ? AND user_id = ? AND notification_id = ?`,
			r.Tenant, r.User, id)
	case on:
		err = insertReceipt(ctx, tx, r, id, v, receipt{archived: true})
	case !rc.archived:
		return false, rc.exists, nil
	case rc.read:
		_, err = tx.ExecContext(ctx, `UPDATE receipts SET archived = 0 WHERE tenant = ? AND user_id = ? AND notification_id = ?`,
			r.Tenant, r.User, id)
	default: // archived only: the broadcast is unread again
		if _, err = tx.ExecContext(ctx, `DELETE FROM receipts WHERE tenant = ? AND user_id = ? AND notification_id = ?`,
			r.Tenant, r.User, id); err == nil {
			err = addSeenKeys(ctx, tx, r, v.key, v.category, v.typ, -1)
		}
	}
	return true, true, classify(err)
}

// archiveAllTx archives (on) or unarchives everything r can see and
// returns the number of items that changed. Archiving zeroes r's explicit
// counters; unarchiving and the broadcast side recount r's own rows (a
// request of r, bounded by r's inbox, never a count per publish).
func (s *SQLite) archiveAllTx(ctx context.Context, tx *wtx, r notification.Recipient, on bool) (int64, error) {
	if on {
		n, err := execCount(ctx, tx, `UPDATE inbox SET archived = 1 WHERE tenant = ? AND user_id = ? AND archived = 0`, r.Tenant, r.User)
		if err != nil {
			return 0, err
		}
		m, err := execCount(ctx, tx, `UPDATE receipts SET archived = 1 WHERE tenant = ? AND user_id = ? AND archived = 0 AND deleted = 0`, r.Tenant, r.User)
		if err != nil {
			return 0, err
		}
		k, err := receiptAll(ctx, tx, r, receipt{archived: true})
		if err != nil {
			return 0, err
		}
		return n + m + k, s.recountExplicit(ctx, tx, r)
	}
	n, err := execCount(ctx, tx, `UPDATE inbox SET archived = 0 WHERE tenant = ? AND user_id = ? AND archived = 1`, r.Tenant, r.User)
	if err != nil {
		return 0, err
	}
	m, err := execCount(ctx, tx, `UPDATE receipts SET archived = 0 WHERE tenant = ? AND user_id = ? AND archived = 1`, r.Tenant, r.User)
	if err != nil {
		return 0, err
	}
	if _, err := execCount(ctx, tx, `DELETE FROM receipts WHERE tenant = ? AND user_id = ? AND read = 0 AND deleted = 0 AND archived = 0`, r.Tenant, r.User); err != nil {
		return 0, err
	}
	if err := s.recountExplicit(ctx, tx, r); err != nil {
		return 0, err
	}
	return n + m, recountReceipts(ctx, tx, r)
}

// recountExplicit sets r's explicit counters (unread, unseen, by category)
// from r's inbox rows.
func (s *SQLite) recountExplicit(ctx context.Context, tx *wtx, r notification.Recipient) error {
	if _, err := tx.ExecContext(ctx, `UPDATE user_streams SET
		unread = (SELECT count(*) FROM inbox i WHERE i.tenant = ?1 AND i.user_id = ?2 AND i.read = 0 AND i.archived = 0),
		unseen = (SELECT count(*) FROM inbox i WHERE i.tenant = ?1 AND i.user_id = ?2 AND i.seq > user_streams.seen_seq AND i.archived = 0)
		WHERE tenant = ?1 AND user_id = ?2`, r.Tenant, r.User); err != nil {
		return classify(err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM category_counts WHERE tenant = ? AND user_id = ?`, r.Tenant, r.User); err != nil {
		return classify(err)
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO category_counts (tenant, user_id, category, unread)
		SELECT i.tenant, i.user_id, n.category, count(*) FROM inbox i JOIN notifications n ON n.id = i.notification_id
		WHERE i.tenant = ?1 AND i.user_id = ?2 AND i.read = 0 AND i.archived = 0 AND n.category <> ''
		GROUP BY n.category`, r.Tenant, r.User)
	return classify(err)
}

// recountReceipts sets r's receipt counts (per audience key and derived
// category key) from r's receipts.
func recountReceipts(ctx context.Context, tx *wtx, r notification.Recipient) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM receipt_counts WHERE tenant = ? AND user_id = ?`, r.Tenant, r.User); err != nil {
		return classify(err)
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO receipt_counts (tenant, user_id, audience_key, seen)
		SELECT ?1, ?2, k, count(*) FROM (
		  SELECT rc.audience_key AS k FROM receipts rc WHERE rc.tenant = ?1 AND rc.user_id = ?2
		  UNION ALL
		  SELECT rc.audience_key || char(31) || 't' || char(31) || n.type FROM receipts rc JOIN notifications n ON n.id = rc.notification_id
		  WHERE rc.tenant = ?1 AND rc.user_id = ?2
		  UNION ALL
		  SELECT rc.audience_key || char(31) || 'c' || char(31) || n.category FROM receipts rc JOIN notifications n ON n.id = rc.notification_id
		  WHERE rc.tenant = ?1 AND rc.user_id = ?2 AND n.category <> ''
		  UNION ALL
		  SELECT rc.audience_key || char(31) || 'ct' || char(31) || n.category || char(31) || n.type
		  FROM receipts rc JOIN notifications n ON n.id = rc.notification_id
		  WHERE rc.tenant = ?1 AND rc.user_id = ?2 AND n.category <> '')
		GROUP BY k`, r.Tenant, r.User)
	return classify(err)
}

// receiptAll adds a receipt in state st for every broadcast r can see and
// has none for, counts them, and returns how many it added.
func receiptAll(ctx context.Context, tx *wtx, r notification.Recipient, st receipt) (int64, error) {
	keys := []notification.Audience{{Kind: notification.AudienceTenant}}
	if r.Role != "" {
		keys = append(keys, notification.Audience{Kind: notification.AudienceRole, Role: r.Role})
	}
	const match = ` FROM notifications n
		WHERE n.tenant = ?3 AND n.tenant_seq IS NOT NULL AND n.audience_kind = ?4 AND n.audience_role = ?5
		  AND NOT EXISTS (SELECT 1 FROM receipts x WHERE x.tenant = n.tenant AND x.user_id = ?1 AND x.notification_id = n.id)`
	var total int64
	for _, a := range keys {
		// The single writer runs both statements: the counts match the rows.
		rows, err := tx.QueryContext(ctx, `SELECT n.category, n.type, count(*)`+match+` GROUP BY n.category, n.type`,
			r.User, a.Key(), r.Tenant, int(a.Kind), a.Role)
		if err != nil {
			return 0, classify(err)
		}
		byCat := map[[2]string]int64{}
		for rows.Next() {
			var (
				c, ty string
				n     int64
			)
			if err := rows.Scan(&c, &ty, &n); err != nil {
				_ = rows.Close()
				return 0, classify(err)
			}
			byCat[[2]string{c, ty}] = n
		}
		if err := rows.Close(); err != nil {
			return 0, classify(err)
		}
		if len(byCat) == 0 {
			continue
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO receipts (tenant, user_id, notification_id, audience_key, read, deleted, archived)
			SELECT n.tenant, ?1, n.id, ?2, ?6, 0, ?7`+match, r.User, a.Key(), r.Tenant, int(a.Kind), a.Role,
			boolInt(st.read), boolInt(st.archived)); err != nil {
			return 0, classify(err)
		}
		for c, n := range byCat {
			if err := addSeenKeys(ctx, tx, r, a.Key(), c[0], c[1], n); err != nil {
				return 0, err
			}
			total += n
		}
	}
	return total, nil
}

// prefsChange is the result of a preference change of r.
func prefsChange(r notification.Recipient, p notification.Preferences) Change {
	pp := clonePrefs(p)
	return Change{Event: &notification.Event{Kind: notification.EventPreferences, Tenant: r.Tenant, User: r.User, Prefs: &pp}}
}

func clonePrefs(p notification.Preferences) notification.Preferences {
	return notification.Preferences{MutedCategories: slices.Clone(p.MutedCategories), MutedTypes: slices.Clone(p.MutedTypes)}
}
