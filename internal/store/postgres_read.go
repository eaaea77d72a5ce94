package store

import (
	"bytes"
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald/internal/notification"
)

// Reads run on the pool without a transaction, each statement on one
// committed snapshot (see read.go for the read path both engines share).
// Positions are assigned under counter-row locks held until commit, so
// they become visible in order.

// pgNotificationCols are the notification columns scanned by queryItems,
// after the item's seq and read flag.
const pgNotificationCols = `n.id, n.tenant, n.audience_kind, n.audience_role, n.type, n.title, n.body, n.data, n.created_at, n.expires_at`

const (
	pgSinceExplicitSQL = `SELECT i.seq, i.read, ` + pgNotificationCols + `
		FROM inbox i JOIN notifications n ON n.id = i.notification_id
		WHERE i.tenant = $1 AND i.user_id = $2 AND i.seq > $3 AND (n.expires_at IS NULL OR n.expires_at > $4)
		ORDER BY i.seq LIMIT $5`
	pgSinceBroadcastSQL = `SELECT n.tenant_seq, COALESCE(rc.read, false), ` + pgNotificationCols + `
		FROM notifications n
		LEFT JOIN receipts rc ON rc.tenant = n.tenant AND rc.user_id = $1 AND rc.notification_id = n.id
		WHERE n.tenant = $2 AND n.tenant_seq IS NOT NULL AND n.tenant_seq > $3
		  AND (n.audience_kind = 2 OR (n.audience_kind = 3 AND n.audience_role = $4))
		  AND (n.expires_at IS NULL OR n.expires_at > $5) AND NOT COALESCE(rc.deleted, false)
		ORDER BY n.tenant_seq LIMIT $6`

	pgListExplicitSQL = `SELECT i.seq, i.read, ` + pgNotificationCols + `
		FROM inbox i JOIN notifications n ON n.id = i.notification_id
		WHERE i.tenant = $1 AND i.user_id = $2 AND i.notification_id < $3 AND (n.expires_at IS NULL OR n.expires_at > $4)
		ORDER BY i.notification_id DESC LIMIT $5`
	pgListExplicitUnreadSQL = `SELECT i.seq, i.read, ` + pgNotificationCols + `
		FROM inbox i JOIN notifications n ON n.id = i.notification_id
		WHERE i.tenant = $1 AND i.user_id = $2 AND NOT i.read AND i.notification_id < $3 AND (n.expires_at IS NULL OR n.expires_at > $4)
		ORDER BY i.notification_id DESC LIMIT $5`
	pgListBroadcastSQL = `SELECT n.tenant_seq, COALESCE(rc.read, false), ` + pgNotificationCols + `
		FROM notifications n
		LEFT JOIN receipts rc ON rc.tenant = n.tenant AND rc.user_id = $1 AND rc.notification_id = n.id
		WHERE n.tenant = $2 AND n.tenant_seq IS NOT NULL AND n.id < $3
		  AND (n.audience_kind = 2 OR (n.audience_kind = 3 AND n.audience_role = $4))
		  AND (n.expires_at IS NULL OR n.expires_at > $5) AND NOT COALESCE(rc.deleted, false)
		ORDER BY n.id DESC LIMIT $6`
	pgListBroadcastUnreadSQL = `SELECT n.tenant_seq, false, ` + pgNotificationCols + `
		FROM notifications n
		LEFT JOIN receipts rc ON rc.tenant = n.tenant AND rc.user_id = $1 AND rc.notification_id = n.id
		WHERE n.tenant = $2 AND n.tenant_seq IS NOT NULL AND n.id < $3
		  AND (n.audience_kind = 2 OR (n.audience_kind = 3 AND n.audience_role = $4))
		  AND (n.expires_at IS NULL OR n.expires_at > $5) AND rc.notification_id IS NULL
		ORDER BY n.id DESC LIMIT $6`

	pgHeadSQL       = `SELECT ` + pgHeadExprs
	pgUnreadSQL     = `SELECT ` + pgUnreadExpr
	pgHeadUnreadSQL = `SELECT ` + pgHeadExprs + `, ` + pgUnreadExpr // one statement, one snapshot

	pgHeadExprs = `
		COALESCE((SELECT seq FROM user_streams WHERE tenant = $1 AND user_id = $2), 0),
		COALESCE((SELECT seq FROM tenant_streams WHERE tenant = $1), 0)`

	// pgUnreadExpr adds the explicit counter and, per broadcast audience key
	// the recipient matches ("*" and $3 = "role:<r>", or "" which no row
	// has), live broadcasts minus the recipient's receipts. One statement,
	// so one snapshot.
	pgUnreadExpr = `
		  COALESCE((SELECT unread FROM user_streams WHERE tenant = $1 AND user_id = $2), 0)
		+ COALESCE((SELECT total FROM audience_totals WHERE tenant = $1 AND audience_key = '*'), 0)
		- COALESCE((SELECT seen FROM receipt_counts WHERE tenant = $1 AND user_id = $2 AND audience_key = '*'), 0)
		+ COALESCE((SELECT total FROM audience_totals WHERE tenant = $1 AND audience_key = $3), 0)
		- COALESCE((SELECT seen FROM receipt_counts WHERE tenant = $1 AND user_id = $2 AND audience_key = $3), 0)`
)

// pgQuerier is what the read helpers need: the pool or a transaction.
type pgQuerier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// pgReadSQL are the read statements of the PostgreSQL engine.
var pgReadSQL = readSQL{
	sinceExplicit:       pgSinceExplicitSQL,
	sinceBroadcast:      pgSinceBroadcastSQL,
	listExplicit:        pgListExplicitSQL,
	listExplicitUnread:  pgListExplicitUnreadSQL,
	listBroadcast:       pgListBroadcastSQL,
	listBroadcastUnread: pgListBroadcastUnreadSQL,
	head:                pgHeadSQL,
	headUnread:          pgHeadUnreadSQL,
	unread:              pgUnreadSQL,
	unseen: `SELECT i.seq, i.read, ` + pgNotificationCols + `
		FROM inbox i JOIN notifications n ON n.id = i.notification_id
		WHERE i.tenant = $1 AND i.user_id = $2 AND i.notification_id = $3 AND (n.expires_at IS NULL OR n.expires_at > $4)`,
}

// newPGReader is the read side of s: reads run on the pool, as direct
// operations.
func newPGReader(s *Postgres) reader {
	return reader{
		readSQL:     &pgReadSQL,
		rows:        pgRows{s.pool},
		clock:       s.clock,
		enterRead:   s.enterRecipient,
		exitRead:    s.inflight.Done,
		classifyErr: classifyPG,
	}
}

// enterRecipient is the entry check of every operation on r's stream. On
// success the caller must call s.inflight.Done when finished.
func (s *Postgres) enterRecipient(ctx context.Context, r notification.Recipient) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	err := validateRecipient(r) // which excludes NUL, which PostgreSQL cannot store
	if err != nil {
		s.inflight.Done()
	}
	return err
}

// pgRows runs read statements on q: the pool or a transaction.
type pgRows struct{ q pgQuerier }

var _ rowReader = pgRows{}

func (q pgRows) queryRow(ctx context.Context, query string, args ...any) scanner {
	return q.q.QueryRow(ctx, query, args...)
}

// queryItems runs an item query whose columns are seq, read, then
// pgNotificationCols.
func (q pgRows) queryItems(ctx context.Context, query string, args ...any) ([]notification.Item, error) {
	rows, err := q.q.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	var (
		items     []notification.Item
		it        notification.Item
		akind     int16
		role      string
		data      []byte
		createdMS int64
		expiresMS *int64
	)
	_, err = pgx.ForEachRow(rows, []any{&it.Seq, &it.Read, &it.ID, &it.Tenant, &akind, &role,
		&it.Type, &it.Title, &it.Body, &data, &createdMS, &expiresMS}, func() error {
		item := it
		// data is only valid until the next row: copy it.
		completeItem(&item, notification.AudienceKind(akind), role, bytes.Clone(data), createdMS, expiresMS)
		items = append(items, item)
		return nil
	})
	return items, err
}
