package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"github.com/heraldhq/herald/internal/notification"
)

// Read-state changes run on the writer, like publishes, so the counters
// they adjust are serialized with the inserts that bump them.
//
// State kept per recipient:
//   - explicit notification: the inbox row (read flag); deleting removes it;
//     user_streams.unread counts unread inbox rows.
//   - broadcast: a receipts row once the user has read or deleted it;
//     receipt_counts.seen counts those rows per audience key, so
//     total - seen is the number of unread broadcasts of that key.

// MarkRead implements Store. An empty ids list is ErrInvalid; malformed ids
// are treated as not found.
func (s *SQLite) MarkRead(ctx context.Context, r notification.Recipient, ids []string) (Change, error) {
	if err := s.enterRecipient(ctx, r); err != nil {
		return Change{}, fmt.Errorf("store: mark read: %w", err)
	}
	if len(ids) == 0 {
		return Change{}, fmt.Errorf("store: mark read: %w: no ids", ErrInvalid)
	}
	ids = slices.Clone(ids)
	return submit(s, ctx, "mark read", func(ctx context.Context, tx *wtx) (Change, error) {
		return s.markReadTx(ctx, tx, r, ids)
	})
}

func (s *SQLite) markReadTx(ctx context.Context, tx *wtx, r notification.Recipient, ids []string) (Change, error) {
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
			return Change{}, err
		}
		if !ok {
			continue
		}
		if v.explicit {
			var read, archived int64
			err := tx.QueryRowContext(ctx,
				`SELECT read, archived FROM inbox WHERE tenant = ? AND user_id = ? AND notification_id = ?`,
				r.Tenant, r.User, id).Scan(&read, &archived)
			if errors.Is(err, sql.ErrNoRows) {
				continue
			}
			if err != nil {
				return Change{}, classify(err)
			}
			found = true
			if read != 0 {
				continue
			}
			if _, err := tx.ExecContext(ctx,
				`UPDATE inbox SET read = 1 WHERE tenant = ? AND user_id = ? AND notification_id = ?`,
				r.Tenant, r.User, id); err != nil {
				return Change{}, classify(err)
			}
			if archived == 0 { // an archived item was not counted
				if err := s.adjustExplicit(ctx, tx, r, v.category, -1, 0); err != nil {
					return Change{}, classify(err)
				}
			}
			changed = append(changed, id)
			continue
		}
		rc, err := lookupReceipt(ctx, tx, r, id)
		if err != nil {
			return Change{}, err
		}
		switch {
		case rc.deleted:
			continue
		case rc.read:
			found = true
			continue
		case !rc.exists:
			if err := insertReceipt(ctx, tx, r, id, v, receipt{read: true}); err != nil {
				return Change{}, err
			}
		default: // an archived receipt, already counted
			if _, err := tx.ExecContext(ctx,
				`UPDATE receipts SET read = 1 WHERE tenant = ? AND user_id = ? AND notification_id = ?`,
				r.Tenant, r.User, id); err != nil {
				return Change{}, classify(err)
			}
		}
		found = true
		changed = append(changed, id)
	}
	if !found {
		return Change{}, ErrNotFound
	}
	return s.countsChange(ctx, tx, r, changed, notification.EventRead, false)
}

// MarkAllRead implements Store. It also marks expired notifications that
// the sweeper has not removed yet, so the unread count is zero afterwards.
func (s *SQLite) MarkAllRead(ctx context.Context, r notification.Recipient) (Change, error) {
	if err := s.enterRecipient(ctx, r); err != nil {
		return Change{}, fmt.Errorf("store: mark all read: %w", err)
	}
	return submit(s, ctx, "mark all read", func(ctx context.Context, tx *wtx) (Change, error) {
		return s.markAllReadTx(ctx, tx, r)
	})
}

func (s *SQLite) markAllReadTx(ctx context.Context, tx *wtx, r notification.Recipient) (Change, error) {
	explicit, err := execCount(ctx, tx,
		`UPDATE inbox SET read = 1 WHERE tenant = ? AND user_id = ? AND read = 0`, r.Tenant, r.User)
	if err != nil {
		return Change{}, err
	}
	if explicit > 0 {
		// Every unarchived item is read now (archived ones did not count).
		if _, err := tx.ExecContext(ctx, `UPDATE user_streams SET unread = 0 WHERE tenant = ? AND user_id = ?`, r.Tenant, r.User); err != nil {
			return Change{}, classify(err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM category_counts WHERE tenant = ? AND user_id = ?`, r.Tenant, r.User); err != nil {
			return Change{}, classify(err)
		}
	}
	// Archived receipts become read too (they are counted already).
	if _, err := tx.ExecContext(ctx, `UPDATE receipts SET read = 1 WHERE tenant = ? AND user_id = ? AND read = 0`, r.Tenant, r.User); err != nil {
		return Change{}, classify(err)
	}
	n, err := receiptAll(ctx, tx, r, receipt{read: true})
	if err != nil {
		return Change{}, err
	}
	c, err := s.countsChange(ctx, tx, r, nil, notification.EventRead, false)
	if err == nil && explicit+n > 0 {
		c.Event = allEvent(r, notification.EventRead, c.Counts)
	}
	return c, err
}

// Delete implements Store.
func (s *SQLite) Delete(ctx context.Context, r notification.Recipient, id string) (Change, error) {
	if err := s.enterRecipient(ctx, r); err != nil {
		return Change{}, fmt.Errorf("store: delete: %w", err)
	}
	if !notification.ValidID(id) {
		return Change{}, fmt.Errorf("store: delete: %w", ErrNotFound)
	}
	return submit(s, ctx, "delete", func(ctx context.Context, tx *wtx) (Change, error) {
		return s.deleteTx(ctx, tx, r, id)
	})
}

func (s *SQLite) deleteTx(ctx context.Context, tx *wtx, r notification.Recipient, id string) (Change, error) {
	v, ok, err := lookupVisible(ctx, tx, r, id, s.clock().UnixMilli())
	if err != nil {
		return Change{}, err
	}
	if !ok {
		return Change{}, ErrNotFound
	}
	if v.explicit {
		o := inboxRow{id: id, category: v.category}
		err := tx.QueryRowContext(ctx,
			`SELECT read, archived, seq FROM inbox WHERE tenant = ? AND user_id = ? AND notification_id = ?`,
			r.Tenant, r.User, id).Scan(&o.read, &o.archived, &o.seq)
		if errors.Is(err, sql.ErrNoRows) {
			return Change{}, ErrNotFound
		}
		if err != nil {
			return Change{}, classify(err)
		}
		// The last recipient gone, nobody can see the notification again.
		if _, err := s.removeInboxRow(ctx, tx, r, o); err != nil {
			return Change{}, classify(err)
		}
	} else {
		rc, err := lookupReceipt(ctx, tx, r, id)
		if err != nil {
			return Change{}, err
		}
		switch {
		case rc.deleted:
			return Change{}, ErrNotFound
		case rc.exists:
			if _, err := tx.ExecContext(ctx,
				`UPDATE receipts SET deleted = 1 WHERE tenant = ? AND user_id = ? AND notification_id = ?`,
				r.Tenant, r.User, id); err != nil {
				return Change{}, classify(err)
			}
		default:
			if err := insertReceipt(ctx, tx, r, id, v, receipt{deleted: true}); err != nil {
				return Change{}, err
			}
		}
	}
	return s.countsChange(ctx, tx, r, []string{id}, notification.EventDeleted, true)
}

// execCount runs a statement and returns the number of rows it changed.
func execCount(ctx context.Context, tx *wtx, query string, args ...any) (int64, error) {
	res, err := tx.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, classify(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, classify(err)
	}
	return n, nil
}

// visible describes a notification r can see.
type visible struct {
	explicit bool   // addressed to users by name (state in inbox)
	key      string // broadcast audience key (state in receipts)
	category string
	typ      string
}

// lookupVisible finds id among the live notifications of r's tenant whose
// audience includes r. For explicit notifications the caller still has to
// check r's inbox row.
func lookupVisible(ctx context.Context, q querier, r notification.Recipient, id string, now int64) (visible, bool, error) {
	var (
		kind          int64
		role          string
		category, typ string
	)
	err := q.QueryRowContext(ctx,
		`SELECT audience_kind, audience_role, category, type FROM notifications
		 WHERE id = ? AND tenant = ? AND (expires_at IS NULL OR expires_at > ?)`,
		id, r.Tenant, now).Scan(&kind, &role, &category, &typ)
	if errors.Is(err, sql.ErrNoRows) {
		return visible{}, false, nil
	}
	if err != nil {
		return visible{}, false, classify(err)
	}
	a := notification.Audience{Kind: notification.AudienceKind(kind), Role: role}
	if a.Kind == notification.AudienceUsers {
		return visible{explicit: true, category: category}, true, nil
	}
	if !a.Matches(r.Role) {
		return visible{}, false, nil
	}
	return visible{key: a.Key(), category: category, typ: typ}, true, nil
}

// receipt is r's receipt of a broadcast.
type receipt struct{ exists, read, deleted, archived bool }

func lookupReceipt(ctx context.Context, q querier, r notification.Recipient, id string) (receipt, error) {
	var read, deleted, archived int64
	err := q.QueryRowContext(ctx,
		`SELECT read, deleted, archived FROM receipts WHERE tenant = ? AND user_id = ? AND notification_id = ?`,
		r.Tenant, r.User, id).Scan(&read, &deleted, &archived)
	if errors.Is(err, sql.ErrNoRows) {
		return receipt{}, nil
	}
	if err != nil {
		return receipt{}, classify(err)
	}
	return receipt{exists: true, read: read != 0, deleted: deleted != 0, archived: archived != 0}, nil
}

// insertReceipt adds r's receipt of broadcast id in state st and counts
// it as not unread (under v's audience key and derived category key).
func insertReceipt(ctx context.Context, tx *wtx, r notification.Recipient, id string, v visible, st receipt) error {
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO receipts (tenant, user_id, notification_id, audience_key, read, deleted, archived) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		r.Tenant, r.User, id, v.key, boolInt(st.read), boolInt(st.deleted), boolInt(st.archived)); err != nil {
		return classify(err)
	}
	return addSeenKeys(ctx, tx, r, v.key, v.category, v.typ, 1)
}

// addSeenKeys adds n to r's receipt counts of the counter keys of a
// broadcast (audience key key, category, typ; see counterKeys).
func addSeenKeys(ctx context.Context, tx *wtx, r notification.Recipient, key, category, typ string, n int64) error {
	for _, k := range counterKeys(key, category, typ) {
		if err := addSeen(ctx, tx, r, k, n); err != nil {
			return err
		}
	}
	return nil
}

func addSeen(ctx context.Context, tx *wtx, r notification.Recipient, key string, n int64) error {
	_, err := tx.ExecContext(ctx,
		`INSERT INTO receipt_counts (tenant, user_id, audience_key, seen) VALUES (?, ?, ?, ?)
		 ON CONFLICT (tenant, user_id, audience_key) DO UPDATE SET seen = seen + excluded.seen`,
		r.Tenant, r.User, key, n)
	return classify(err)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
