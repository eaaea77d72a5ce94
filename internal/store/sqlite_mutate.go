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
		found    bool
		changed  []string
		explicit int64 // explicit items that became read
		done     = make(map[string]struct{}, len(ids))
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
			var read int64
			err := tx.QueryRowContext(ctx,
				`SELECT read FROM inbox WHERE tenant = ? AND user_id = ? AND notification_id = ?`,
				r.Tenant, r.User, id).Scan(&read)
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
			explicit++
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
			if err := insertReceipt(ctx, tx, r, id, v.key, true, false); err != nil {
				return Change{}, err
			}
		default: // a receipt that is neither read nor deleted: not written by this code
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
	if explicit > 0 {
		if err := addUnread(ctx, tx, r, -explicit); err != nil {
			return Change{}, err
		}
	}
	return s.change(ctx, tx, r, changed, notification.EventRead, false)
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
		if err := addUnread(ctx, tx, r, -explicit); err != nil {
			return Change{}, err
		}
	}
	total := explicit
	keys := []notification.Audience{{Kind: notification.AudienceTenant}}
	if r.Role != "" {
		keys = append(keys, notification.Audience{Kind: notification.AudienceRole, Role: r.Role})
	}
	for _, a := range keys {
		n, err := execCount(ctx, tx,
			`INSERT INTO receipts (tenant, user_id, notification_id, audience_key, read, deleted)
			 SELECT n.tenant, ?, n.id, ?, 1, 0 FROM notifications n
			 WHERE n.tenant = ? AND n.tenant_seq IS NOT NULL AND n.audience_kind = ? AND n.audience_role = ?
			   AND NOT EXISTS (SELECT 1 FROM receipts x
			                   WHERE x.tenant = n.tenant AND x.user_id = ? AND x.notification_id = n.id)`,
			r.User, a.Key(), r.Tenant, int(a.Kind), a.Role, r.User)
		if err != nil {
			return Change{}, err
		}
		if n > 0 {
			if err := addSeen(ctx, tx, r, a.Key(), n); err != nil {
				return Change{}, err
			}
		}
		total += n
	}
	unread, err := readUnread(ctx, sqlRows{tx}, &sqliteReadSQL, r)
	if err != nil {
		return Change{}, classify(err)
	}
	c := Change{Unread: unread}
	if total > 0 {
		c.Event = allReadEvent(r, unread)
	}
	return c, nil
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
		var read int64
		err := tx.QueryRowContext(ctx,
			`DELETE FROM inbox WHERE tenant = ? AND user_id = ? AND notification_id = ? RETURNING read`,
			r.Tenant, r.User, id).Scan(&read)
		if errors.Is(err, sql.ErrNoRows) {
			return Change{}, ErrNotFound
		}
		if err != nil {
			return Change{}, classify(err)
		}
		if read == 0 {
			if err := addUnread(ctx, tx, r, -1); err != nil {
				return Change{}, err
			}
		}
		// The last recipient gone, nobody can see the notification again.
		if _, err := tx.ExecContext(ctx,
			`DELETE FROM notifications WHERE id = ? AND NOT EXISTS (SELECT 1 FROM inbox WHERE notification_id = ?)`,
			id, id); err != nil {
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
			if err := insertReceipt(ctx, tx, r, id, v.key, false, true); err != nil {
				return Change{}, err
			}
		}
	}
	return s.change(ctx, tx, r, []string{id}, notification.EventDeleted, true)
}

// change builds the result of a read-state change with r's unread count
// after it; the event is nil when ids is empty (nothing changed).
func (s *SQLite) change(ctx context.Context, tx *wtx, r notification.Recipient, ids []string, kind notification.EventKind, always bool) (Change, error) {
	unread, err := readUnread(ctx, sqlRows{tx}, &sqliteReadSQL, r)
	if err != nil {
		return Change{}, classify(err)
	}
	return newChange(r, ids, unread, kind, always), nil
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
}

// lookupVisible finds id among the live notifications of r's tenant whose
// audience includes r. For explicit notifications the caller still has to
// check r's inbox row.
func lookupVisible(ctx context.Context, q querier, r notification.Recipient, id string, now int64) (visible, bool, error) {
	var (
		kind int64
		role string
	)
	err := q.QueryRowContext(ctx,
		`SELECT audience_kind, audience_role FROM notifications
		 WHERE id = ? AND tenant = ? AND (expires_at IS NULL OR expires_at > ?)`,
		id, r.Tenant, now).Scan(&kind, &role)
	if errors.Is(err, sql.ErrNoRows) {
		return visible{}, false, nil
	}
	if err != nil {
		return visible{}, false, classify(err)
	}
	a := notification.Audience{Kind: notification.AudienceKind(kind), Role: role}
	if a.Kind == notification.AudienceUsers {
		return visible{explicit: true}, true, nil
	}
	if !a.Matches(r.Role) {
		return visible{}, false, nil
	}
	return visible{key: a.Key()}, true, nil
}

// receipt is r's receipt of a broadcast.
type receipt struct{ exists, read, deleted bool }

func lookupReceipt(ctx context.Context, q querier, r notification.Recipient, id string) (receipt, error) {
	var read, deleted int64
	err := q.QueryRowContext(ctx,
		`SELECT read, deleted FROM receipts WHERE tenant = ? AND user_id = ? AND notification_id = ?`,
		r.Tenant, r.User, id).Scan(&read, &deleted)
	if errors.Is(err, sql.ErrNoRows) {
		return receipt{}, nil
	}
	if err != nil {
		return receipt{}, classify(err)
	}
	return receipt{exists: true, read: read != 0, deleted: deleted != 0}, nil
}

// insertReceipt adds r's receipt of broadcast id and counts it as seen.
func insertReceipt(ctx context.Context, tx *wtx, r notification.Recipient, id, key string, read, deleted bool) error {
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO receipts (tenant, user_id, notification_id, audience_key, read, deleted) VALUES (?, ?, ?, ?, ?, ?)`,
		r.Tenant, r.User, id, key, boolInt(read), boolInt(deleted)); err != nil {
		return classify(err)
	}
	return addSeen(ctx, tx, r, key, 1)
}

func addSeen(ctx context.Context, tx *wtx, r notification.Recipient, key string, n int64) error {
	_, err := tx.ExecContext(ctx,
		`INSERT INTO receipt_counts (tenant, user_id, audience_key, seen) VALUES (?, ?, ?, ?)
		 ON CONFLICT (tenant, user_id, audience_key) DO UPDATE SET seen = seen + excluded.seen`,
		r.Tenant, r.User, key, n)
	return classify(err)
}

func addUnread(ctx context.Context, tx *wtx, r notification.Recipient, n int64) error {
	_, err := tx.ExecContext(ctx,
		`UPDATE user_streams SET unread = unread + ? WHERE tenant = ? AND user_id = ?`, n, r.Tenant, r.User)
	return classify(err)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
