package store

import (
	"context"
	"fmt"
	"time"

	"github.com/heraldhq/herald/internal/revocation"
)

var _ revocation.Store = (*SQLite)(nil)

// SaveRevocation stores r (replacing an earlier one for the same user or token).
func (s *SQLite) SaveRevocation(ctx context.Context, r revocation.Revocation) error {
	var until int64
	if !r.Until.IsZero() {
		until = r.Until.UnixMilli()
	}
	_, err := submit(s, ctx, "save revocation", func(ctx context.Context, tx *wtx) (struct{}, error) {
		_, err := tx.ExecContext(ctx, `INSERT INTO revocations (tenant, user_id, token_id, revoked_at, until_ms)
			VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (tenant, user_id, token_id) DO UPDATE SET revoked_at = excluded.revoked_at, until_ms = excluded.until_ms`,
			r.Tenant, r.User, r.TokenID, r.At.UnixMilli(), until)
		return struct{}{}, classify(err)
	})
	return err
}

// DeleteUserRevocation lifts a user revocation.
func (s *SQLite) DeleteUserRevocation(ctx context.Context, tenant, user string) error {
	_, err := submit(s, ctx, "lift revocation", func(ctx context.Context, tx *wtx) (struct{}, error) {
		_, err := tx.ExecContext(ctx, `DELETE FROM revocations WHERE tenant = ? AND user_id = ? AND token_id = ''`, tenant, user)
		return struct{}{}, classify(err)
	})
	return err
}

// Revocations lists the revocations still in force (expired token
// revocations are skipped).
func (s *SQLite) Revocations(ctx context.Context) ([]revocation.Revocation, error) {
	if err := s.readable(ctx); err != nil {
		return nil, fmt.Errorf("store: revocations: %w", err)
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT tenant, user_id, token_id, revoked_at, until_ms FROM revocations
		WHERE token_id = '' OR until_ms > ?`, s.clock().UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("store: revocations: %w", classify(err))
	}
	defer rows.Close()
	var out []revocation.Revocation
	for rows.Next() {
		var r revocation.Revocation
		var at, until int64
		if err := rows.Scan(&r.Tenant, &r.User, &r.TokenID, &at, &until); err != nil {
			return nil, fmt.Errorf("store: revocations: %w", err)
		}
		r.At = time.UnixMilli(at)
		if until != 0 {
			r.Until = time.UnixMilli(until)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: revocations: %w", classify(err))
	}
	return out, nil
}
