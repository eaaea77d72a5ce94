package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald/internal/notification"
	"github.com/heraldhq/herald/internal/revocation"
)

// sweepNow removes every notification expired at the store's clock time,
// fixing the counters that include it, and purges idempotency records older
// than idempotencyTTL. It returns the number of notifications removed.
// Notifications locked by another transaction (a state change, another
// node's sweeper) are left for a later sweep.
func (s *Postgres) sweepNow(ctx context.Context) (int, error) {
	if err := s.enter(ctx); err != nil {
		return 0, fmt.Errorf("store: sweep: %w", err)
	}
	defer s.inflight.Done()
	now := s.clock()
	if err := s.inTx(ctx, nil, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM idempotency WHERE created_at < $1`, now.Add(-idempotencyTTL).UnixMilli())
		return err
	}); err != nil {
		return 0, fmt.Errorf("store: sweep: idempotency: %w", classifyPG(err))
	}
	return sweepBatches(func() (int, error) {
		res, err := inTxValue(ctx, s, func(tx pgx.Tx) (sweepResult, error) {
			return sweepTx(ctx, tx, now.UnixMilli())
		})
		if err != nil {
			return 0, fmt.Errorf("store: sweep: %w", classifyPG(err))
		}
		if len(res.events) > 0 && s.cfg.OnCommit != nil {
			s.cfg.OnCommit(res.events)
		}
		return res.n, nil
	})
}

// sweepTx deletes up to sweepBatch notifications expired at now and takes
// them out of every counter that includes them, following the lock order
// of postgres_mutate.go. It never waits for a notification row (SKIP
// LOCKED), so the order in which it locks them does not matter.
func sweepTx(ctx context.Context, tx pgx.Tx, now int64) (sweepResult, error) {
	rows, err := tx.Query(ctx, `SELECT id, tenant, audience_kind, audience_role, category, type FROM notifications
		WHERE expires_at IS NOT NULL AND expires_at <= $1
		ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED`, now, sweepBatch)
	if err != nil {
		return sweepResult{}, err
	}
	var (
		ids        []string
		broadcasts []expired
		totals     = map[[2]string]int64{}
		id, t      string
		kind       int16
		role       string
		category   string
		typ        string
		categories = map[string]string{}
		types      = map[string]string{}
	)
	if _, err := pgx.ForEachRow(rows, []any{&id, &t, &kind, &role, &category, &typ}, func() error {
		ids = append(ids, id)
		categories[id], types[id] = category, typ
		if a := (notification.Audience{Kind: notification.AudienceKind(kind), Role: role}); a.Broadcast() {
			for _, k := range counterKeys(a.Key(), category, typ) {
				totals[[2]string{t, k}]--
			}
			broadcasts = append(broadcasts, expired{id: id, tenant: t, audience: a, category: category, typ: typ})
		}
		return nil
	}); err != nil {
		return sweepResult{}, err
	}
	if len(ids) == 0 {
		return sweepResult{}, nil
	}
	// The rows that reference them, with what they counted.
	unread := map[[2]string]int64{}
	unseen := map[[2]string]int64{}
	cats := map[[3]string]int64{}
	rows, err = tx.Query(ctx, `DELETE FROM receipts WHERE notification_id = ANY($1) RETURNING tenant, user_id, audience_key, notification_id`, ids)
	if err != nil {
		return sweepResult{}, err
	}
	seen := map[[3]string]int64{}
	var u, key string
	if _, err := pgx.ForEachRow(rows, []any{&t, &u, &key, &id}, func() error {
		for _, k := range counterKeys(key, categories[id], types[id]) {
			seen[[3]string{t, u, k}]--
		}
		return nil
	}); err != nil {
		return sweepResult{}, err
	}
	rows, err = tx.Query(ctx, `DELETE FROM inbox i WHERE notification_id = ANY($1)
		RETURNING tenant, user_id, read, archived, notification_id,
		  i.seq > COALESCE((SELECT seen_seq FROM user_streams u WHERE u.tenant = i.tenant AND u.user_id = i.user_id), 0)`, ids)
	if err != nil {
		return sweepResult{}, err
	}
	var read, archived, after bool
	users := map[[2]string][]string{}
	if _, err := pgx.ForEachRow(rows, []any{&t, &u, &read, &archived, &id, &after}, func() error {
		k := [2]string{t, u}
		if !read && !archived {
			unread[k]--
			if c := categories[id]; c != "" {
				cats[[3]string{t, u, c}]--
			}
		}
		if after && !archived {
			unseen[k]--
		}
		users[k] = append(users[k], id)
		return nil
	}); err != nil {
		return sweepResult{}, err
	}

	// Counters, in lock order; the rows exist (they were incremented).
	var b pgx.Batch
	queueAudienceTotals(&b, totals)
	queueStreamDeltas(&b, unread, unseen)
	queueCategoryCounts(&b, cats)
	if len(seen) > 0 {
		ks := sortedKeys(seen, compareTriple)
		ts, us, as, ns := make([]string, len(ks)), make([]string, len(ks)), make([]string, len(ks)), make([]int64, len(ks))
		for i, k := range ks {
			ts[i], us[i], as[i], ns[i] = k[0], k[1], k[2], seen[k]
		}
		b.Queue(`INSERT INTO receipt_counts (tenant, user_id, audience_key, seen)
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[]) AS c(t, u, a, n)
			ORDER BY c.t COLLATE "C", c.u COLLATE "C", c.a COLLATE "C"
			ON CONFLICT (tenant, user_id, audience_key) DO UPDATE SET seen = receipt_counts.seen + excluded.seen`, ts, us, as, ns)
	}
	b.Queue(`DELETE FROM notifications WHERE id = ANY($1)`, ids)
	if err := tx.SendBatch(ctx, &b).Close(); err != nil {
		return sweepResult{}, err
	}
	return sweepResult{n: len(ids), events: expiredEvents(broadcasts, users)}, nil
}

// queueStreamDeltas queues the addition of unread and unseen (by tenant
// and user) to the user streams, in lock order.
func queueStreamDeltas(b *pgx.Batch, unread, unseen map[[2]string]int64) {
	if len(unread)+len(unseen) == 0 {
		return
	}
	for k := range unseen {
		unread[k] += 0 // every user with a delta has an entry
	}
	ts, us, ns := pairColumns(unread)
	vs := make([]int64, len(ts))
	for i := range ts {
		vs[i] = unseen[[2]string{ts[i], us[i]}]
	}
	b.Queue(`INSERT INTO user_streams (tenant, user_id, seq, unread, unseen)
		SELECT c.t, c.u, 0, c.n, c.v FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[]) AS c(t, u, n, v) ORDER BY c.t COLLATE "C", c.u COLLATE "C"
		ON CONFLICT (tenant, user_id) DO UPDATE SET unread = user_streams.unread + excluded.unread,
		  unseen = user_streams.unseen + excluded.unseen`, ts, us, ns, vs)
}

var _ revocation.Store = (*Postgres)(nil)

// SaveRevocation stores r (replacing an earlier one for the same user or token).
func (s *Postgres) SaveRevocation(ctx context.Context, r revocation.Revocation) error {
	if err := s.enter(ctx); err != nil {
		return fmt.Errorf("store: save revocation: %w", err)
	}
	defer s.inflight.Done()
	var until int64
	if !r.Until.IsZero() {
		until = r.Until.UnixMilli()
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO revocations (tenant, user_id, token_id, revoked_at, until_ms)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (tenant, user_id, token_id) DO UPDATE SET revoked_at = excluded.revoked_at, until_ms = excluded.until_ms`,
		r.Tenant, r.User, r.TokenID, r.At.UnixMilli(), until); err != nil {
		return fmt.Errorf("store: save revocation: %w", classifyPG(err))
	}
	return nil
}

// DeleteUserRevocation lifts a user revocation.
func (s *Postgres) DeleteUserRevocation(ctx context.Context, tenant, user string) error {
	if err := s.enter(ctx); err != nil {
		return fmt.Errorf("store: lift revocation: %w", err)
	}
	defer s.inflight.Done()
	if _, err := s.pool.Exec(ctx, `DELETE FROM revocations WHERE tenant = $1 AND user_id = $2 AND token_id = ''`, tenant, user); err != nil {
		return fmt.Errorf("store: lift revocation: %w", classifyPG(err))
	}
	return nil
}

// Revocations lists the revocations still in force (expired token
// revocations are skipped).
func (s *Postgres) Revocations(ctx context.Context) ([]revocation.Revocation, error) {
	if err := s.enter(ctx); err != nil {
		return nil, fmt.Errorf("store: revocations: %w", err)
	}
	defer s.inflight.Done()
	rows, err := s.pool.Query(ctx, `SELECT tenant, user_id, token_id, revoked_at, until_ms FROM revocations
		WHERE token_id = '' OR until_ms > $1`, s.clock().UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("store: revocations: %w", classifyPG(err))
	}
	var (
		out       []revocation.Revocation
		r         revocation.Revocation
		at, until int64
	)
	if _, err := pgx.ForEachRow(rows, []any{&r.Tenant, &r.User, &r.TokenID, &at, &until}, func() error {
		v := r
		v.At = time.UnixMilli(at)
		if until != 0 {
			v.Until = time.UnixMilli(until)
		}
		out = append(out, v)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("store: revocations: %w", classifyPG(err))
	}
	return out, nil
}
