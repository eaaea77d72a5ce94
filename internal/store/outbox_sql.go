package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The outbox statements are written once, with PostgreSQL's $n parameters;
// SQLite runs them with ?n (the same numbered-parameter meaning). Only the
// claim differs: PostgreSQL skips rows other nodes are claiming (FOR
// UPDATE SKIP LOCKED); SQLite has one writer.

// outboxQuerier runs statements for the outbox: the SQLite writer's
// transaction or read pool, or the PostgreSQL pool.
type outboxQuerier interface {
	exec(ctx context.Context, query string, args ...any) (int64, error)
	// each runs query and calls fn after scanning each row into dest.
	each(ctx context.Context, query string, args []any, dest []any, fn func() error) error
}

// outboxEngine is how an engine runs outbox operations: writes (the SQLite
// writer; the PostgreSQL pool), reads, and the claim statement. Static
// after construction.
type outboxEngine struct {
	write    func(ctx context.Context, op string, fn func(q outboxQuerier) error) error
	read     func(ctx context.Context, op string, fn func(q outboxQuerier) error) error
	claimSQL string
	ids      *idSource // outbox ids (apart from notification ids); has its own lock
	clock    Clock
}

const outboxCols = `id, tenant, user_id, type, notification_id, payload, created_at, due_at, attempts, lease_until`

const (
	pgClaimSQL = `UPDATE webhook_outbox SET lease_owner = $1, lease_until = $2
		WHERE id IN (SELECT id FROM webhook_outbox WHERE due_at <= $3 AND lease_until <= $3
		             ORDER BY due_at LIMIT $4 FOR UPDATE SKIP LOCKED)
		RETURNING ` + outboxCols
	sqliteClaimSQL = `UPDATE webhook_outbox SET lease_owner = ?1, lease_until = ?2
		WHERE id IN (SELECT id FROM webhook_outbox WHERE due_at <= ?3 AND lease_until <= ?3
		             ORDER BY due_at LIMIT ?4)
		RETURNING ` + outboxCols
	insertWebhookSQL = `INSERT INTO webhook_outbox (id, tenant, user_id, type, notification_id, payload, created_at, due_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`
)

// EnqueueWebhooks implements Outbox.
func (o *outboxEngine) EnqueueWebhooks(ctx context.Context, evs []WebhookEvent) error {
	if len(evs) == 0 {
		return nil
	}
	evs = slices.Clone(evs)
	if err := prepareWebhooks(o.ids, evs, o.clock()); err != nil {
		return fmt.Errorf("store: enqueue webhooks: %w", err)
	}
	return o.write(ctx, "enqueue webhooks", func(q outboxQuerier) error { return insertWebhooks(ctx, q, evs) })
}

// insertWebhooks inserts prepared rows.
func insertWebhooks(ctx context.Context, q outboxQuerier, evs []WebhookEvent) error {
	for i := range evs {
		e := &evs[i]
		if _, err := q.exec(ctx, insertWebhookSQL, e.ID, e.Tenant, e.User, e.Type, e.NotificationID,
			nullString(e.Payload), e.CreatedAt.UnixMilli(), e.DueAt.UnixMilli()); err != nil {
			return fmt.Errorf("webhook outbox: %w", err)
		}
	}
	return nil
}

func nullString(b []byte) *string {
	if b == nil {
		return nil
	}
	s := string(b)
	return &s
}

// ClaimWebhooks implements Outbox.
func (o *outboxEngine) ClaimWebhooks(ctx context.Context, owner string, lease time.Duration, limit int) ([]WebhookEvent, error) {
	if owner == "" || lease <= 0 || limit <= 0 {
		return nil, fmt.Errorf("store: claim webhooks: %w: owner, lease and limit are required", ErrInvalid)
	}
	now := o.clock()
	var out []WebhookEvent
	err := o.write(ctx, "claim webhooks", func(q outboxQuerier) error {
		out = out[:0]
		var (
			e                        WebhookEvent
			payload                  *string
			created, due, leaseUntil int64
		)
		return q.each(ctx, o.claimSQL, []any{owner, now.Add(lease).UnixMilli(), now.UnixMilli(), limit},
			[]any{&e.ID, &e.Tenant, &e.User, &e.Type, &e.NotificationID, &payload, &created, &due, &e.Attempts, &leaseUntil},
			func() error {
				v := e
				if payload != nil {
					v.Payload = []byte(*payload)
				}
				v.CreatedAt, v.DueAt, v.LeaseUntil = fromMillis(created), fromMillis(due), fromMillis(leaseUntil)
				out = append(out, v)
				return nil
			})
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b WebhookEvent) int { return a.DueAt.Compare(b.DueAt) })
	return out, nil
}

// owned runs a statement on a row owner holds; none changed is ErrLeaseLost.
func (o *outboxEngine) owned(ctx context.Context, op, query string, args ...any) error {
	return o.write(ctx, op, func(q outboxQuerier) error {
		n, err := q.exec(ctx, query, args...)
		if err == nil && n == 0 {
			err = ErrLeaseLost
		}
		return err
	})
}

// SaveWebhookPayload implements Outbox.
func (o *outboxEngine) SaveWebhookPayload(ctx context.Context, id, owner string, payload []byte) error {
	return o.owned(ctx, "save webhook payload",
		`UPDATE webhook_outbox SET payload = $1 WHERE id = $2 AND lease_owner = $3`, string(payload), id, owner)
}

// ReleaseWebhook implements Outbox.
func (o *outboxEngine) ReleaseWebhook(ctx context.Context, id, owner string, due time.Time, attempted bool, lastErr string) error {
	inc := 0
	if attempted {
		inc = 1
	}
	if len(lastErr) > 1000 {
		lastErr = lastErr[:1000]
	}
	lastErr = strings.ToValidUTF8(strings.ReplaceAll(lastErr, "\x00", ""), "?")
	return o.owned(ctx, "release webhook",
		`UPDATE webhook_outbox SET due_at = $1, attempts = attempts + $2, last_error = $3, lease_owner = '', lease_until = 0
		 WHERE id = $4 AND lease_owner = $5`, due.UnixMilli(), inc, lastErr, id, owner)
}

// FinishWebhook implements Outbox.
func (o *outboxEngine) FinishWebhook(ctx context.Context, id, owner string) error {
	return o.owned(ctx, "finish webhook", `DELETE FROM webhook_outbox WHERE id = $1 AND lease_owner = $2`, id, owner)
}

// ReleaseWebhookLeases implements Outbox.
func (o *outboxEngine) ReleaseWebhookLeases(ctx context.Context, owner string) error {
	return o.write(ctx, "release webhook leases", func(q outboxQuerier) error {
		_, err := q.exec(ctx, `UPDATE webhook_outbox SET lease_owner = '', lease_until = 0
			WHERE lease_owner <> '' AND (lease_owner = $1 OR $1 = '')`, owner)
		return err
	})
}

// WebhookBacklog implements Outbox.
func (o *outboxEngine) WebhookBacklog(ctx context.Context) (WebhookBacklog, error) {
	var (
		b      WebhookBacklog
		oldest *int64
	)
	err := o.read(ctx, "webhook backlog", func(q outboxQuerier) error {
		return q.each(ctx, `SELECT COUNT(*), MIN(created_at) FROM webhook_outbox WHERE due_at <= $1`,
			[]any{o.clock().UnixMilli()}, []any{&b.Depth, &oldest}, func() error { return nil })
	})
	if oldest != nil {
		b.Oldest = fromMillis(*oldest)
	}
	return b, err
}

// PutWebhookEndpoint implements Outbox.
func (o *outboxEngine) PutWebhookEndpoint(ctx context.Context, e WebhookEndpoint) error {
	if err := validateEndpoint(e); err != nil {
		return fmt.Errorf("store: put webhook endpoint: %w", err)
	}
	return o.write(ctx, "put webhook endpoint", func(q outboxQuerier) error {
		_, err := q.exec(ctx, `INSERT INTO webhook_endpoints (tenant, url, secret, updated_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (tenant) DO UPDATE SET url = excluded.url, secret = excluded.secret, updated_at = excluded.updated_at`,
			e.Tenant, e.URL, e.Secret, o.clock().UnixMilli())
		return err
	})
}

// WebhookEndpoints implements Outbox.
func (o *outboxEngine) WebhookEndpoints(ctx context.Context) ([]WebhookEndpoint, error) {
	var (
		out     []WebhookEndpoint
		e       WebhookEndpoint
		updated int64
	)
	err := o.read(ctx, "webhook endpoints", func(q outboxQuerier) error {
		out = out[:0]
		return q.each(ctx, `SELECT tenant, url, secret, updated_at FROM webhook_endpoints ORDER BY tenant`, nil,
			[]any{&e.Tenant, &e.URL, &e.Secret, &updated}, func() error {
				v := e
				v.UpdatedAt = fromMillis(updated)
				out = append(out, v)
				return nil
			})
	})
	return out, err
}

// DeleteWebhookEndpoint implements Outbox.
func (o *outboxEngine) DeleteWebhookEndpoint(ctx context.Context, tenant string) error {
	return o.write(ctx, "delete webhook endpoint", func(q outboxQuerier) error {
		n, err := q.exec(ctx, `DELETE FROM webhook_endpoints WHERE tenant = $1`, tenant)
		if err == nil && n == 0 {
			err = ErrNotFound
		}
		return err
	})
}

// sqliteOutbox runs outbox statements on a database/sql querier.
type sqliteOutbox struct {
	q interface {
		ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
		QueryContext(ctx context.Context, query string, args ...any) (rowsIter, error)
	}
}

// sqliteParams turns $n parameters into SQLite's ?n.
func sqliteParams(query string) string { return strings.ReplaceAll(query, "$", "?") }

func (s sqliteOutbox) exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := s.q.ExecContext(ctx, sqliteParams(query), args...)
	if err != nil {
		return 0, classify(err)
	}
	return res.RowsAffected()
}

func (s sqliteOutbox) each(ctx context.Context, query string, args []any, dest []any, fn func() error) error {
	rows, err := s.q.QueryContext(ctx, sqliteParams(query), args...)
	if err != nil {
		return classify(err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		if err := fn(); err != nil {
			return err
		}
	}
	return classify(rows.Err())
}

// newSQLiteOutbox is the outbox of s: writes through the writer, reads on
// the read pool.
func newSQLiteOutbox(s *SQLite) outboxEngine {
	return outboxEngine{
		write: func(ctx context.Context, op string, fn func(q outboxQuerier) error) error {
			_, err := submit(s, ctx, op, func(ctx context.Context, tx *wtx) (struct{}, error) {
				return struct{}{}, fn(sqliteOutbox{tx})
			})
			return err
		},
		read: func(ctx context.Context, op string, fn func(q outboxQuerier) error) error {
			if err := s.readable(ctx); err != nil {
				return fmt.Errorf("store: %s: %w", op, err)
			}
			if err := fn(sqliteOutbox{poolQuerier{s.rdb}}); err != nil {
				return fmt.Errorf("store: %s: %w", op, err)
			}
			return nil
		},
		claimSQL: sqliteClaimSQL,
		ids:      newIDSource(),
		clock:    s.clock,
	}
}

// pgOutbox runs outbox statements on a pgx pool or transaction.
type pgOutbox struct {
	q interface {
		Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
		Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	}
}

func (p pgOutbox) exec(ctx context.Context, query string, args ...any) (int64, error) {
	tag, err := p.q.Exec(ctx, query, args...)
	if err != nil {
		return 0, classifyPG(err)
	}
	return tag.RowsAffected(), nil
}

func (p pgOutbox) each(ctx context.Context, query string, args []any, dest []any, fn func() error) error {
	rows, err := p.q.Query(ctx, query, args...)
	if err != nil {
		return classifyPG(err)
	}
	_, err = pgx.ForEachRow(rows, dest, fn)
	return classifyPG(err)
}

// newPGOutbox is the outbox of s: every statement on the pool.
func newPGOutbox(s *Postgres) outboxEngine {
	run := func(ctx context.Context, op string, fn func(q outboxQuerier) error) error {
		if err := s.enter(ctx); err != nil {
			return fmt.Errorf("store: %s: %w", op, err)
		}
		defer s.inflight.Done()
		if err := fn(pgOutbox{s.pool}); err != nil {
			return fmt.Errorf("store: %s: %w", op, err)
		}
		return nil
	}
	return outboxEngine{write: run, read: run, claimSQL: pgClaimSQL, ids: newIDSource(), clock: s.clock}
}
