package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/heraldhq/herald/internal/notification"
)

// Publish validates req, then hands it to the writer and waits for the
// commit of the batch it joins, until ctx ends or req.Deadline passes.
func (s *SQLite) Publish(ctx context.Context, req PublishRequest) (PublishResult, error) {
	if err := entryErrBy(ctx, s.isClosed.Load(), req.Deadline); err != nil {
		return PublishResult{}, fmt.Errorf("store: publish: %w", err)
	}
	if err := validateRequest(&req); err != nil {
		return PublishResult{}, fmt.Errorf("store: publish: %w", err)
	}
	wr := &writeReq{
		ctx:      ctx,
		deadline: req.Deadline,
		solo:     len(req.Drafts) > soloDrafts,
		done:     newDone(),
		publish:  true,
		merge:    mergeable(&req),
		pub:      req,
	}
	if err := s.await(ctx, "publish", wr); err != nil {
		return PublishResult{}, err
	}
	return wr.pubRes, nil
}

// pubBufs backs the IDs and Events of a one-draft publish's result, the
// usual case, so that they need no allocation of their own: it lives in
// the request's writeReq, which is allocated anyway.
type pubBufs struct {
	id [1]string
	ev [1]*notification.Event
}

// result returns a result with empty IDs and Events that hold n drafts,
// backed by b when n is 1. A result from b is valid until the next call.
func (b *pubBufs) result(n int) PublishResult {
	if n == 1 {
		return PublishResult{IDs: b.id[:0], Events: b.ev[:0]}
	}
	return PublishResult{IDs: make([]string, 0, n), Events: make([]*notification.Event, 0, n)}
}

// publishTx writes one validated request inside the batch transaction;
// its result's IDs and Events come from bufs.
func (s *SQLite) publishTx(ctx context.Context, tx *wtx, req *PublishRequest, bufs *pubBufs) (PublishResult, error) {
	now := s.clock()
	if req.Key != "" {
		var hash, ids string
		err := tx.QueryRowContext(ctx,
			`SELECT request_hash, ids FROM idempotency WHERE scope = ? AND key = ?`,
			req.Scope, req.Key).Scan(&hash, &ids)
		switch {
		case err == nil:
			if hash != req.RequestHash {
				return PublishResult{}, ErrIdempotencyMismatch
			}
			res := PublishResult{Replayed: true}
			if err := json.Unmarshal([]byte(ids), &res.IDs); err != nil {
				return PublishResult{}, fmt.Errorf("idempotency record: %w", err)
			}
			return res, nil
		case !errors.Is(err, sql.ErrNoRows):
			return PublishResult{}, classify(err)
		}
	}

	res := bufs.result(len(req.Drafts))
	for i := 0; i < len(req.Drafts); {
		j := i
		for j < len(req.Drafts) && mergeableDraft(&req.Drafts[j]) {
			j++
		}
		if j-i > 1 {
			if err := s.publishMerged(req.Drafts[i:j], i, now, &res); err != nil {
				return PublishResult{}, err
			}
			i = j
			continue
		}
		ev, err := s.insertDraft(ctx, tx, &req.Drafts[i], now)
		if err != nil {
			return PublishResult{}, fmt.Errorf("draft %d: %w", i, classify(err))
		}
		res.IDs = append(res.IDs, ev.Notification.ID)
		res.Events = append(res.Events, ev)
		i++
	}
	if req.Key != "" {
		ids, err := json.Marshal(res.IDs)
		if err != nil {
			return PublishResult{}, err
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO idempotency (scope, key, request_hash, ids, created_at) VALUES (?, ?, ?, ?, ?)`,
			req.Scope, req.Key, req.RequestHash, string(ids), now.UnixMilli()); err != nil {
			return PublishResult{}, fmt.Errorf("idempotency record: %w", classify(err))
		}
	}
	return res, nil
}

// publishMerged writes drafts, consecutive mergeableDraft drafts of one
// request from index first, as one merged run (see writeRun), and appends
// their ids and events to res: the same rows and results as insertDraft
// one draft after another, with a few multi-row statements instead of
// four statements per recipient.
func (s *SQLite) publishMerged(drafts []notification.Draft, first int, now time.Time, res *PublishResult) error {
	var m mergedRun
	for i := range drafts {
		ev, err := m.add(s, &drafts[i], now)
		if err != nil {
			return fmt.Errorf("draft %d: %w", first+i, classify(err))
		}
		res.IDs = append(res.IDs, ev.Notification.ID)
		res.Events = append(res.Events, ev)
	}
	if err := s.writeRun(&m); err != nil {
		return fmt.Errorf("drafts %d-%d: %w", first, first+len(drafts)-1, classify(err))
	}
	return nil
}

// insertDraft stores one draft: the notification row, then either the
// tenant sequence and audience totals (broadcast) or, per distinct user
// who does not mute it, the removal of the user's earlier notification
// with the same collapse key, one inbox row and the counter bumps
// (explicit).
func (s *SQLite) insertDraft(ctx context.Context, tx *wtx, d *notification.Draft, now time.Time) (*notification.Event, error) {
	n, err := newNotification(s.ids, d, now)
	if err != nil {
		return nil, err
	}
	id := n.ID
	if d.Audience.Broadcast() {
		ev := &notification.Event{Kind: notification.EventNotification, Tenant: d.Tenant, Notification: n}
		if ev.TenantSeq, err = tx.c.queryInt64Texts(
			`INSERT INTO tenant_streams (tenant, seq) VALUES (?, 1)
			 ON CONFLICT (tenant) DO UPDATE SET seq = seq + 1
			 RETURNING seq`, d.Tenant); err != nil {
			return nil, fmt.Errorf("tenant stream: %w", err)
		}
		for _, key := range counterKeys(d.Audience.Key(), d.Category, d.Type) {
			if _, err := tx.c.execTexts(
				`INSERT INTO audience_totals (tenant, audience_key, total) VALUES (?, ?, 1)
				 ON CONFLICT (tenant, audience_key) DO UPDATE SET total = total + 1`,
				d.Tenant, key); err != nil {
				return nil, fmt.Errorf("audience total: %w", err)
			}
		}
		if err := tx.insertNotification(n, &ev.TenantSeq); err != nil {
			return nil, fmt.Errorf("notification: %w", err)
		}
		return ev, nil
	}

	ev := usersEvent(d, n)
	seen := make(map[string]struct{}, len(d.Audience.Users))
	for _, u := range d.Audience.Users {
		if _, dup := seen[u]; dup || s.prefs.mutes(d.Tenant, u, d) {
			continue
		}
		seen[u] = struct{}{}
		if len(ev.Deliveries) == 0 {
			if err := tx.insertNotification(n, nil); err != nil {
				return nil, fmt.Errorf("notification: %w", err)
			}
		}
		dl := notification.Delivery{User: u}
		if d.CollapseKey != "" {
			if err := s.collapse(ctx, tx, notification.Recipient{Tenant: d.Tenant, User: u}, d.CollapseKey, id, &dl); err != nil {
				return nil, fmt.Errorf("collapse: %w", err)
			}
		}
		if err := tx.bumpStream(d.Tenant, u, &dl); err != nil {
			return nil, fmt.Errorf("user stream: %w", err)
		}
		if err := tx.insertInbox(d.Tenant, u, dl.Seq, id); err != nil {
			return nil, fmt.Errorf("inbox: %w", err)
		}
		if d.Category != "" {
			if err := tx.bumpCategory(d.Tenant, u, d.Category); err != nil {
				return nil, fmt.Errorf("category count: %w", err)
			}
		}
		ev.Deliveries = append(ev.Deliveries, dl)
	}
	if d.FallbackAfter > 0 {
		users := make([]string, len(ev.Deliveries))
		for i := range ev.Deliveries {
			users[i] = ev.Deliveries[i].User
		}
		wh, err := unseenEvents(s.outboxEngine.ids, n, d, users)
		if err == nil {
			err = insertWebhooks(ctx, sqliteOutbox{tx}, wh)
		}
		if err != nil {
			return nil, err
		}
	}
	return ev, nil
}

// oneUserEvent is an event with room for one delivery, allocated at once.
type oneUserEvent struct {
	ev notification.Event
	dl [1]notification.Delivery
}

// usersEvent returns the event of n, an explicit-user draft d's
// notification, with empty Deliveries that hold every user of d. For one
// user (the usual case) the deliveries share the event's allocation.
func usersEvent(d *notification.Draft, n *notification.Notification) *notification.Event {
	if len(d.Audience.Users) == 1 {
		e := &oneUserEvent{ev: notification.Event{Kind: notification.EventNotification, Tenant: d.Tenant, Notification: n}}
		e.ev.Deliveries = e.dl[:0]
		return &e.ev
	}
	return &notification.Event{Kind: notification.EventNotification, Tenant: d.Tenant, Notification: n,
		Deliveries: make([]notification.Delivery, 0, len(d.Audience.Users))}
}

// bumpStreamSQL bumps one user's stream (as bumpStreamsSQL does many).
const bumpStreamSQL = `INSERT INTO user_streams (tenant, user_id, seq, unread, unseen) VALUES (?, ?, 1, 1, 1)
 ON CONFLICT (tenant, user_id) DO UPDATE SET seq = seq + 1, unread = unread + 1, unseen = unseen + 1
 RETURNING seq, unread`

// insertNotification inserts n's row; tenantSeq (a broadcast's) is NULL
// when nil.
func (t *wtx) insertNotification(n *notification.Notification, tenantSeq *int64) error {
	st, err := t.c.prepare(notificationsSQL[0])
	if err != nil {
		return err
	}
	if err := bindNotification(st, 1, n, tenantSeq); err != nil {
		st.reset()
		return err
	}
	_, err = st.run()
	return err
}

// bumpStream bumps the stream of user by one and sets dl's Seq and Unread.
func (t *wtx) bumpStream(tenant, user string, dl *notification.Delivery) error {
	st, err := t.c.bindTexts(bumpStreamSQL, []string{tenant, user})
	if err != nil {
		return err
	}
	defer st.reset()
	switch row, err := st.step(); {
	case err != nil:
		return err
	case !row:
		return sql.ErrNoRows
	}
	dl.Seq, dl.Unread = st.colInt64(0), st.colInt64(1)
	return nil
}

// insertInbox inserts one inbox row.
func (t *wtx) insertInbox(tenant, user string, seq int64, id string) error {
	st, err := t.c.prepare(inboxSQL[0])
	if err != nil {
		return err
	}
	if err := bindInbox(st, 1, tenant, user, seq, id); err != nil {
		st.reset()
		return err
	}
	_, err = st.run()
	return err
}

// bumpCategory adds one to user's unread count of category.
func (t *wtx) bumpCategory(tenant, user, category string) error {
	_, err := t.c.execTexts(bumpCategoriesSQL[0], tenant, user, category)
	return err
}

// collapse removes from r's inbox the notifications with collapse key
// key (other than id), as deleting them would, and records the latest in
// dl.
func (s *SQLite) collapse(ctx context.Context, tx *wtx, r notification.Recipient, key, id string, dl *notification.Delivery) error {
	rows, err := tx.QueryContext(ctx,
		`SELECT i.notification_id, i.read, i.archived, i.seq, n.category
		 FROM notifications n JOIN inbox i ON i.notification_id = n.id AND i.tenant = n.tenant AND i.user_id = ?2
		 WHERE n.tenant = ?1 AND n.collapse_key = ?3 AND n.id <> ?4 ORDER BY i.seq`, r.Tenant, r.User, key, id)
	if err != nil {
		return err
	}
	var olds []inboxRow
	for rows.Next() {
		var o inboxRow
		if err := rows.Scan(&o.id, &o.read, &o.archived, &o.seq, &o.category); err != nil {
			_ = rows.Close()
			return err
		}
		olds = append(olds, o)
	}
	if err := rows.Close(); err != nil {
		return err
	}
	for _, o := range olds {
		unseen, err := s.removeInboxRow(ctx, tx, r, o)
		if err != nil {
			return err
		}
		dl.Replaces, dl.ReplacedUnread, dl.ReplacedUnseen = o.id, !o.read && !o.archived, unseen
	}
	return nil
}

// inboxRow is the state of one of a user's inbox rows.
type inboxRow struct {
	id             string
	read, archived bool
	seq            int64
	category       string
}

// removeInboxRow deletes r's inbox row o, takes it out of r's counters,
// and deletes the notification when o was its last recipient. It reports
// whether o counted as unseen.
func (s *SQLite) removeInboxRow(ctx context.Context, tx *wtx, r notification.Recipient, o inboxRow) (unseen bool, err error) {
	if _, err := tx.ExecContext(ctx, `DELETE FROM inbox WHERE tenant = ? AND user_id = ? AND notification_id = ?`,
		r.Tenant, r.User, o.id); err != nil {
		return false, err
	}
	var seenSeq int64
	if err := tx.QueryRowContext(ctx, `SELECT seen_seq FROM user_streams WHERE tenant = ? AND user_id = ?`,
		r.Tenant, r.User).Scan(&seenSeq); err != nil {
		return false, err
	}
	unseen = !o.archived && o.seq > seenSeq
	if err := s.adjustExplicit(ctx, tx, r, o.category, -boolInt64(!o.read && !o.archived), -boolInt64(unseen)); err != nil {
		return false, err
	}
	_, err = tx.ExecContext(ctx,
		`DELETE FROM notifications WHERE id = ? AND NOT EXISTS (SELECT 1 FROM inbox WHERE notification_id = ?)`, o.id, o.id)
	return unseen, err
}

// adjustExplicit adds unread and unseen to r's explicit counters, and
// unread to r's counter of category (when set).
func (s *SQLite) adjustExplicit(ctx context.Context, tx *wtx, r notification.Recipient, category string, unread, unseen int64) error {
	if unread == 0 && unseen == 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `UPDATE user_streams SET unread = unread + ?, unseen = unseen + ? WHERE tenant = ? AND user_id = ?`,
		unread, unseen, r.Tenant, r.User); err != nil {
		return err
	}
	if category == "" || unread == 0 {
		return nil
	}
	_, err := tx.ExecContext(ctx,
		`INSERT INTO category_counts (tenant, user_id, category, unread) VALUES (?, ?, ?, ?)
		 ON CONFLICT (tenant, user_id, category) DO UPDATE SET unread = unread + excluded.unread`,
		r.Tenant, r.User, category, unread)
	return err
}

func boolInt64(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
