package store

import (
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/heraldhq/herald/internal/notification"
)

// Read-state changes run on the pool, each in its own transaction (several
// nodes change state concurrently anyway). Their counters stay exact
// because every counter adjustment is derived from the rows the same
// transaction changed (UPDATE/DELETE/INSERT ... RETURNING, which see the
// latest committed row version), never from an earlier read.
//
// State kept per recipient, as in SQLite:
//   - explicit notification: the inbox row (read flag); deleting removes it;
//     user_streams.unread counts unread inbox rows.
//   - broadcast: a receipts row once the user has read or deleted it;
//     receipt_counts.seen counts those rows per audience key, so
//     total - seen is the number of unread broadcasts of that key.
//
// Lock order, shared by every transaction so that they cannot deadlock
// (a deadlock is still retried, see inTx):
//
//	the recipient's advisory lock (state changes) → notification rows (by
//	id: KEY SHARE by state changes, FOR UPDATE SKIP LOCKED by the sweeper)
//	→ idempotency keys → receipts → inbox rows → tenant_streams →
//	audience_totals → user_streams → receipt_counts (each sorted by key).
//
// A state change first takes its recipient's advisory lock, so state
// changes of one recipient are serialised (their inbox updates follow
// different index orders), then locks the notifications it touches FOR KEY
// SHARE:
// the sweeper cannot remove them until it commits, and one the sweeper has
// already locked is skipped (it is gone by the time the lock is granted),
// so a receipt is never written for a notification being swept.

// pgLockVisibleSQL locks r's tenant's live notifications among $1 (sorted
// by id) and returns their audience.
const pgLockVisibleSQL = `SELECT id, audience_kind, audience_role, category, type FROM notifications
	WHERE id = ANY($1) AND tenant = $2 AND (expires_at IS NULL OR expires_at > $3)
	ORDER BY id FOR KEY SHARE`

// pgVisible is a notification r can see.
type pgVisible struct {
	id       string
	key      string // broadcast audience key; "" for an explicit notification
	category string
	typ      string
}

// lockRecipient takes r's state-change lock (a transaction-level advisory
// lock): state changes of one recipient run one at a time, so the rows of
// r they touch (inbox rows in seq or id order, receipts) are never locked
// in two orders at once.
func (s *Postgres) lockRecipient(b *pgx.Batch, r notification.Recipient) {
	h := fnv.New64a()
	for _, part := range []string{s.cfg.Schema, r.Tenant, r.User} {
		_, _ = io.WriteString(h, part)
		_, _ = h.Write([]byte{0})
	}
	b.Queue(`SELECT pg_advisory_xact_lock($1)`, int64(h.Sum64()))
}

// lockVisible takes r's state-change lock, then locks and returns the
// notifications among ids that r can see (explicit ones still need r's
// inbox row), sorted by id. One round trip.
func (s *Postgres) lockVisible(ctx context.Context, tx pgx.Tx, r notification.Recipient, ids []string) ([]pgVisible, error) {
	var (
		b    pgx.Batch
		out  []pgVisible
		id   string
		kind int16
		role string
		cat  string
		typ  string
	)
	s.lockRecipient(&b, r)
	b.Queue(pgLockVisibleSQL, ids, r.Tenant, s.clock().UnixMilli()).Query(func(rows pgx.Rows) error {
		_, err := pgx.ForEachRow(rows, []any{&id, &kind, &role, &cat, &typ}, func() error {
			a := notification.Audience{Kind: notification.AudienceKind(kind), Role: role}
			switch {
			case a.Kind == notification.AudienceUsers:
				out = append(out, pgVisible{id: id, category: cat})
			case a.Matches(r.Role):
				out = append(out, pgVisible{id: id, key: a.Key(), category: cat, typ: typ})
			}
			return nil
		})
		return err
	})
	if err := tx.SendBatch(ctx, &b).Close(); err != nil {
		return nil, err
	}
	return out, nil
}

// stateChange runs fn, the read-state change op, in a transaction and
// hands its event, once committed, to OnCommit.
func (s *Postgres) stateChange(ctx context.Context, op string, fn func(tx pgx.Tx) (Change, error)) (Change, error) {
	c, err := inTxValue(ctx, s, fn)
	if err != nil {
		return Change{}, fmt.Errorf("store: %s: %w", op, classifyPG(err))
	}
	if c.Event != nil && s.cfg.OnCommit != nil {
		s.cfg.OnCommit([]*notification.Event{c.Event})
	}
	return c, nil
}

// MarkRead implements Store. An empty ids list is ErrInvalid; malformed ids
// are treated as not found.
func (s *Postgres) MarkRead(ctx context.Context, r notification.Recipient, ids []string) (Change, error) {
	if err := s.enterRecipient(ctx, r); err != nil {
		return Change{}, fmt.Errorf("store: mark read: %w", err)
	}
	defer s.inflight.Done()
	if len(ids) == 0 {
		return Change{}, fmt.Errorf("store: mark read: %w: no ids", ErrInvalid)
	}
	want := make([]string, 0, len(ids)) // valid, distinct, in the caller's order
	for _, id := range distinctUsers(ids) {
		if notification.ValidID(id) {
			want = append(want, id)
		}
	}
	if len(want) == 0 {
		return Change{}, fmt.Errorf("store: mark read: %w", ErrNotFound)
	}
	return s.stateChange(ctx, "mark read", func(tx pgx.Tx) (Change, error) {
		return s.markReadTx(ctx, tx, r, want)
	})
}

func (s *Postgres) markReadTx(ctx context.Context, tx pgx.Tx, r notification.Recipient, want []string) (Change, error) {
	vis, err := s.lockVisible(ctx, tx, r, want)
	if err != nil {
		return Change{}, err
	}
	var explicit, bids, bkeys []string
	category := make(map[string]string, len(vis))
	byID := make(map[string]pgVisible, len(vis))
	for _, v := range vis {
		category[v.id] = v.category
		byID[v.id] = v
		if v.key == "" {
			explicit = append(explicit, v.id)
		} else {
			bids, bkeys = append(bids, v.id), append(bkeys, v.key)
		}
	}
	var (
		found   = make(map[string]bool, len(vis))
		changed = make(map[string]bool, len(vis))
		d       = pgDelta{seen: map[string]int64{}, cats: map[string]int64{}}
	)
	if len(bids) > 0 {
		// New receipts, then receipts that exist (read already, or
		// neither read nor deleted: not written by this code).
		rows, err := tx.Query(ctx, `INSERT INTO receipts (tenant, user_id, notification_id, audience_key, read, deleted)
			SELECT $1, $2, c.id, c.k, true, false FROM unnest($3::text[], $4::text[]) AS c(id, k) ORDER BY c.id COLLATE "C"
			ON CONFLICT (tenant, user_id, notification_id) DO NOTHING
			RETURNING notification_id, audience_key`, r.Tenant, r.User, bids, bkeys)
		if err != nil {
			return Change{}, err
		}
		var id, key string
		if _, err := pgx.ForEachRow(rows, []any{&id, &key}, func() error {
			found[id], changed[id] = true, true
			d.addSeen(key, byID[id].category, byID[id].typ, 1)
			return nil
		}); err != nil {
			return Change{}, err
		}
		var rest []string
		for _, id := range bids {
			if !changed[id] {
				rest = append(rest, id)
			}
		}
		if len(rest) > 0 {
			if err := existingMarked(ctx, tx, `WITH u AS (
					UPDATE receipts SET read = true
					WHERE tenant = $1 AND user_id = $2 AND notification_id = ANY($3) AND NOT deleted AND NOT read
					RETURNING notification_id)
				SELECT x.notification_id, false, u.notification_id IS NOT NULL FROM receipts x LEFT JOIN u USING (notification_id)
				WHERE x.tenant = $1 AND x.user_id = $2 AND x.notification_id = ANY($3) AND NOT x.deleted`,
				r, rest, found, changed, nil); err != nil {
				return Change{}, err
			}
		}
	}
	if len(explicit) > 0 {
		// Archived items did not count as unread.
		var counted map[string]bool
		if err := existingMarked(ctx, tx, `WITH u AS (
				UPDATE inbox SET read = true
				WHERE tenant = $1 AND user_id = $2 AND notification_id = ANY($3) AND NOT read
				RETURNING notification_id, archived)
			SELECT x.notification_id, u.notification_id IS NOT NULL AND NOT u.archived, u.notification_id IS NOT NULL
			FROM inbox x LEFT JOIN u USING (notification_id)
			WHERE x.tenant = $1 AND x.user_id = $2 AND x.notification_id = ANY($3)`,
			r, explicit, found, changed, &counted); err != nil {
			return Change{}, err
		}
		for id := range counted {
			d.unread--
			if c := category[id]; c != "" {
				d.cats[c]--
			}
		}
	}
	if len(found) == 0 {
		return Change{}, ErrNotFound
	}
	var ids []string // in the caller's order
	for _, id := range want {
		if changed[id] {
			ids = append(ids, id)
		}
	}
	return s.finishChange(ctx, tx, r, d, ids, notification.EventRead, false)
}

// existingMarked runs a query returning (id, counted, changed) rows for
// r's existing state rows among ids, and records them; counted, when not
// nil, collects the changed ids that counted as unread.
func existingMarked(ctx context.Context, tx pgx.Tx, query string, r notification.Recipient, ids []string, found, changed map[string]bool, counted *map[string]bool) error {
	rows, err := tx.Query(ctx, query, r.Tenant, r.User, ids)
	if err != nil {
		return err
	}
	var (
		id     string
		ch, ct bool
	)
	_, err = pgx.ForEachRow(rows, []any{&id, &ct, &ch}, func() error {
		found[id] = true
		if ch {
			changed[id] = true
		}
		if ct && counted != nil {
			if *counted == nil {
				*counted = map[string]bool{}
			}
			(*counted)[id] = true
		}
		return nil
	})
	return err
}

// pgDelta is what a state change adds to r's counters.
type pgDelta struct {
	unread, unseen int64            // explicit counters
	cats           map[string]int64 // explicit unread by category
	seen           map[string]int64 // receipts added per audience key (and derived category key)
}

// addSeen counts n receipts of a broadcast of audience key key and category.
func (d *pgDelta) addSeen(key, category, typ string, n int64) {
	if d.seen == nil {
		d.seen = map[string]int64{}
	}
	for _, k := range counterKeys(key, category, typ) {
		d.seen[k] += n
	}
}

// finishChange applies the counter adjustments d of a state change in one
// round trip, reads r's counts afterwards and builds the Change; its event
// is nil when ids is empty, unless always.
func (s *Postgres) finishChange(ctx context.Context, tx pgx.Tx, r notification.Recipient, d pgDelta,
	ids []string, kind notification.EventKind, always bool) (Change, error) {
	var b pgx.Batch
	if d.unread != 0 || d.unseen != 0 {
		b.Queue(`UPDATE user_streams SET unread = unread + $3, unseen = unseen + $4 WHERE tenant = $1 AND user_id = $2`,
			r.Tenant, r.User, d.unread, d.unseen)
	}
	cats := make(map[[3]string]int64, len(d.cats))
	for c, n := range d.cats {
		if n != 0 {
			cats[[3]string{r.Tenant, r.User, c}] = n
		}
	}
	queueCategoryCounts(&b, cats)
	queueSeen(&b, r, d.seen)
	if b.Len() > 0 {
		if err := tx.SendBatch(ctx, &b).Close(); err != nil {
			return Change{}, err
		}
	}
	_, counts, err := s.readCounts(ctx, pgRows{tx}, r, false)
	if err != nil {
		return Change{}, err
	}
	return newChange(r, ids, counts, kind, always), nil
}

// queueSeen queues the receipt_counts increments of r (sorted by key).
func queueSeen(b *pgx.Batch, r notification.Recipient, seen map[string]int64) {
	var keys []string
	var ns []int64
	for _, k := range sortedKeys(seen, strings.Compare) {
		if seen[k] != 0 {
			keys = append(keys, k)
			ns = append(ns, seen[k])
		}
	}
	if len(keys) == 0 {
		return
	}
	b.Queue(`INSERT INTO receipt_counts (tenant, user_id, audience_key, seen)
		SELECT $1, $2, c.k, c.n FROM unnest($3::text[], $4::int8[]) AS c(k, n) ORDER BY c.k COLLATE "C"
		ON CONFLICT (tenant, user_id, audience_key) DO UPDATE SET seen = receipt_counts.seen + excluded.seen`,
		r.Tenant, r.User, keys, ns)
}

// MarkAllRead implements Store. It also marks expired notifications that
// the sweeper has not removed yet, so the unread count is zero afterwards.
func (s *Postgres) MarkAllRead(ctx context.Context, r notification.Recipient) (Change, error) {
	if err := s.enterRecipient(ctx, r); err != nil {
		return Change{}, fmt.Errorf("store: mark all read: %w", err)
	}
	defer s.inflight.Done()
	return s.stateChange(ctx, "mark all read", func(tx pgx.Tx) (Change, error) {
		return s.markAllReadTx(ctx, tx, r)
	})
}

func (s *Postgres) markAllReadTx(ctx context.Context, tx pgx.Tx, r notification.Recipient) (Change, error) {
	var b pgx.Batch
	s.lockRecipient(&b, r)
	if err := tx.SendBatch(ctx, &b).Close(); err != nil {
		return Change{}, err
	}
	d, total, err := pgReceiptAll(ctx, tx, r, true, false)
	if err != nil {
		return Change{}, err
	}
	// Archived receipts become read too (they are counted already).
	if _, err := tx.Exec(ctx, `UPDATE receipts SET read = true WHERE tenant = $1 AND user_id = $2 AND NOT read`, r.Tenant, r.User); err != nil {
		return Change{}, err
	}
	// The unread inbox rows, after their notifications (KEY SHARE, by id):
	// the sweeper deletes inbox rows in notification order, and this
	// update could otherwise lock them in another (heap) order. A
	// notification the sweeper holds is waited for and then gone.
	rows, err := tx.Query(ctx, `WITH locked AS (
			SELECT n.id, n.category FROM notifications n
			WHERE n.id IN (SELECT notification_id FROM inbox WHERE tenant = $1 AND user_id = $2 AND NOT read)
			ORDER BY n.id FOR KEY SHARE OF n)
		UPDATE inbox i SET read = true FROM locked l
		WHERE i.tenant = $1 AND i.user_id = $2 AND i.notification_id = l.id AND NOT i.read
		RETURNING i.archived, l.category`, r.Tenant, r.User)
	if err != nil {
		return Change{}, err
	}
	// Deltas, not a reset to zero: a publish may commit meanwhile.
	var (
		explicit int64
		archived bool
		cat      string
	)
	if _, err := pgx.ForEachRow(rows, []any{&archived, &cat}, func() error {
		explicit++
		if !archived { // archived items did not count
			d.unread--
			if cat != "" {
				if d.cats == nil {
					d.cats = map[string]int64{}
				}
				d.cats[cat]--
			}
		}
		return nil
	}); err != nil {
		return Change{}, err
	}
	c, err := s.finishChange(ctx, tx, r, d, nil, notification.EventRead, false)
	if err != nil {
		return Change{}, err
	}
	if explicit+total > 0 {
		c.Event = allEvent(r, notification.EventRead, c.Counts)
	}
	return c, nil
}

// pgReceiptAll adds a receipt (read, archived) for every broadcast r can
// see and has none for, locking those notifications (KEY SHARE, by id)
// like every state change, and returns their counter delta and number.
func pgReceiptAll(ctx context.Context, tx pgx.Tx, r notification.Recipient, read, archived bool) (pgDelta, int64, error) {
	rows, err := tx.Query(ctx, `WITH ins AS (
		INSERT INTO receipts (tenant, user_id, notification_id, audience_key, read, deleted, archived)
		SELECT n.tenant, $2, n.id, CASE n.audience_kind WHEN 2 THEN '*' ELSE 'role:' || n.audience_role END, $4, false, $5
		FROM notifications n
		WHERE n.tenant = $1 AND n.tenant_seq IS NOT NULL
		  AND (n.audience_kind = 2 OR (n.audience_kind = 3 AND n.audience_role = $3))
		  AND NOT EXISTS (SELECT 1 FROM receipts x WHERE x.tenant = n.tenant AND x.user_id = $2 AND x.notification_id = n.id)
		ORDER BY n.id FOR KEY SHARE OF n
		ON CONFLICT (tenant, user_id, notification_id) DO NOTHING
		RETURNING notification_id, audience_key)
		SELECT ins.audience_key, n.category, n.type FROM ins JOIN notifications n ON n.id = ins.notification_id`,
		r.Tenant, r.User, r.Role, read, archived)
	if err != nil {
		return pgDelta{}, 0, err
	}
	var (
		d             pgDelta
		key, cat, typ string
		total         int64
	)
	if _, err := pgx.ForEachRow(rows, []any{&key, &cat, &typ}, func() error {
		d.addSeen(key, cat, typ, 1)
		total++
		return nil
	}); err != nil {
		return pgDelta{}, 0, err
	}
	return d, total, nil
}

// Delete implements Store.
func (s *Postgres) Delete(ctx context.Context, r notification.Recipient, id string) (Change, error) {
	if err := s.enterRecipient(ctx, r); err != nil {
		return Change{}, fmt.Errorf("store: delete: %w", err)
	}
	defer s.inflight.Done()
	if !notification.ValidID(id) {
		return Change{}, fmt.Errorf("store: delete: %w", ErrNotFound)
	}
	return s.stateChange(ctx, "delete", func(tx pgx.Tx) (Change, error) {
		return s.deleteTx(ctx, tx, r, id)
	})
}

func (s *Postgres) deleteTx(ctx context.Context, tx pgx.Tx, r notification.Recipient, id string) (Change, error) {
	vis, err := s.lockVisible(ctx, tx, r, []string{id})
	if err != nil {
		return Change{}, err
	}
	if len(vis) == 0 {
		return Change{}, ErrNotFound
	}
	var d pgDelta
	if key := vis[0].key; key == "" {
		var read, archived, after bool
		err := tx.QueryRow(ctx, `DELETE FROM inbox i WHERE tenant = $1 AND user_id = $2 AND notification_id = $3
			RETURNING read, archived, i.seq > COALESCE((SELECT seen_seq FROM user_streams u WHERE u.tenant = $1 AND u.user_id = $2), 0)`,
			r.Tenant, r.User, id).Scan(&read, &archived, &after)
		if err == pgx.ErrNoRows {
			return Change{}, ErrNotFound
		}
		if err != nil {
			return Change{}, err
		}
		if !read && !archived {
			d.unread = -1
			if c := vis[0].category; c != "" {
				d.cats = map[string]int64{c: -1}
			}
		}
		if after && !archived {
			d.unseen = -1
		}
		// The last recipient gone, nobody can see the notification again.
		// Skipped when another transaction holds it (another recipient
		// deleting it too, the sweeper): never wait on them here.
		if _, err := tx.Exec(ctx, `DELETE FROM notifications WHERE id = (
				SELECT id FROM notifications WHERE id = $1
				  AND NOT EXISTS (SELECT 1 FROM inbox WHERE notification_id = $1)
				FOR UPDATE SKIP LOCKED)`, id); err != nil {
			return Change{}, err
		}
	} else {
		// Mark r's receipt deleted, or add a deleted one (which counts as
		// seen). A receipt inserted meanwhile by another transaction makes
		// the INSERT do nothing; the second UPDATE then finds it.
		const update = `UPDATE receipts SET deleted = true
			WHERE tenant = $1 AND user_id = $2 AND notification_id = $3 AND NOT deleted`
		done := false
		for step := 0; step < 3 && !done; step++ {
			var tag pgconn.CommandTag
			if step == 1 {
				tag, err = tx.Exec(ctx, `INSERT INTO receipts (tenant, user_id, notification_id, audience_key, read, deleted)
					VALUES ($1, $2, $3, $4, false, true) ON CONFLICT (tenant, user_id, notification_id) DO NOTHING`,
					r.Tenant, r.User, id, key)
				if err == nil && tag.RowsAffected() == 1 {
					d.addSeen(key, vis[0].category, vis[0].typ, 1)
				}
			} else {
				tag, err = tx.Exec(ctx, update, r.Tenant, r.User, id)
			}
			if err != nil {
				return Change{}, err
			}
			done = tag.RowsAffected() == 1
		}
		if !done {
			return Change{}, ErrNotFound // r deleted it before
		}
	}
	return s.finishChange(ctx, tx, r, d, []string{id}, notification.EventDeleted, true)
}
