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
// commit of the batch it joins.
func (s *SQLite) Publish(ctx context.Context, req PublishRequest) (PublishResult, error) {
	if err := entryErr(ctx, s.isClosed.Load()); err != nil {
		return PublishResult{}, fmt.Errorf("store: publish: %w", err)
	}
	if err := validateRequest(&req); err != nil {
		return PublishResult{}, fmt.Errorf("store: publish: %w", err)
	}
	var res PublishResult
	wr := &writeReq{
		ctx:  ctx,
		solo: len(req.Drafts) > soloDrafts,
		run: func(ctx context.Context, tx *wtx) error {
			r, err := s.publishTx(ctx, tx, &req)
			if err == nil {
				res = r
			}
			return err
		},
		done:   make(chan error, 1),
		events: func() []*notification.Event { return res.Events },
	}
	if mergeable(&req) {
		wr.pub, wr.pubRes = &req, &res
	}
	if err := s.await(ctx, "publish", wr); err != nil {
		return PublishResult{}, err
	}
	return res, nil
}

// publishTx writes one validated request inside the batch transaction.
func (s *SQLite) publishTx(ctx context.Context, tx *wtx, req *PublishRequest) (PublishResult, error) {
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

	res := PublishResult{
		IDs:    make([]string, 0, len(req.Drafts)),
		Events: make([]*notification.Event, 0, len(req.Drafts)),
	}
	for i := range req.Drafts {
		ev, err := s.insertDraft(ctx, tx, &req.Drafts[i], now)
		if err != nil {
			return PublishResult{}, fmt.Errorf("draft %d: %w", i, classify(err))
		}
		res.IDs = append(res.IDs, ev.Notification.ID)
		res.Events = append(res.Events, ev)
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

// insertDraft stores one draft: the notification row, then either the
// tenant sequence and audience total (broadcast) or one inbox row and
// counter bump per distinct user (explicit).
func (s *SQLite) insertDraft(ctx context.Context, tx *wtx, d *notification.Draft, now time.Time) (*notification.Event, error) {
	n, err := newNotification(s.ids, d, now)
	if err != nil {
		return nil, err
	}
	id := n.ID
	ev := &notification.Event{Kind: notification.EventNotification, Tenant: d.Tenant, Notification: n}

	var tenantSeq any
	if d.Audience.Broadcast() {
		if err := tx.QueryRowContext(ctx,
			`INSERT INTO tenant_streams (tenant, seq) VALUES (?, 1)
			 ON CONFLICT (tenant) DO UPDATE SET seq = seq + 1
			 RETURNING seq`, d.Tenant).Scan(&ev.TenantSeq); err != nil {
			return nil, fmt.Errorf("tenant stream: %w", err)
		}
		tenantSeq = ev.TenantSeq
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO audience_totals (tenant, audience_key, total) VALUES (?, ?, 1)
			 ON CONFLICT (tenant, audience_key) DO UPDATE SET total = total + 1`,
			d.Tenant, d.Audience.Key()); err != nil {
			return nil, fmt.Errorf("audience total: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, insertNotificationsSQL(1), appendNotificationArgs(nil, n, tenantSeq)...); err != nil {
		return nil, fmt.Errorf("notification: %w", err)
	}
	if d.Audience.Broadcast() {
		return ev, nil
	}

	ev.Deliveries = make([]notification.Delivery, 0, len(d.Audience.Users))
	seen := make(map[string]struct{}, len(d.Audience.Users))
	for _, u := range d.Audience.Users {
		if _, dup := seen[u]; dup {
			continue
		}
		seen[u] = struct{}{}
		dl := notification.Delivery{User: u}
		if err := tx.QueryRowContext(ctx,
			`INSERT INTO user_streams (tenant, user_id, seq, unread) VALUES (?, ?, 1, 1)
			 ON CONFLICT (tenant, user_id) DO UPDATE SET seq = seq + 1, unread = unread + 1
			 RETURNING seq, unread`, d.Tenant, u).Scan(&dl.Seq, &dl.Unread); err != nil {
			return nil, fmt.Errorf("user stream: %w", err)
		}
		if _, err := tx.ExecContext(ctx, insertInboxSQL(1), d.Tenant, u, dl.Seq, id); err != nil {
			return nil, fmt.Errorf("inbox: %w", err)
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
