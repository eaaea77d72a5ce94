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
// after the item's seq, read and archived flags.
const pgNotificationCols = `n.id, n.tenant, n.audience_kind, n.audience_role, n.type, n.title, n.body, n.data, n.created_at, n.expires_at, n.category, n.collapse_key`

// The broadcast conditions, bound as in the SQLite statements (see
// sinceBroadcastSQL): $4 role, $5 now, $7 and $8 the muted categories and
// types (text arrays).
const (
	pgBroadcastMatch = `(n.audience_kind = 2 OR (n.audience_kind = 3 AND n.audience_role = $4))`
	pgNotExpired     = `(n.expires_at IS NULL OR n.expires_at > $5)`
	pgNotMuted       = ` AND n.category <> ALL($7::text[]) AND n.type <> ALL($8::text[])`
)

const (
	pgSinceExplicitSQL = `SELECT i.seq, i.read, i.archived, ` + pgNotificationCols + `
		FROM inbox i JOIN notifications n ON n.id = i.notification_id
		WHERE i.tenant = $1 AND i.user_id = $2 AND i.seq > $3 AND (n.expires_at IS NULL OR n.expires_at > $4) AND NOT i.archived
		ORDER BY i.seq LIMIT $5`
	pgSinceBroadcastSQL = `SELECT n.tenant_seq, COALESCE(rc.read, false), false, ` + pgNotificationCols + `
		FROM notifications n
		LEFT JOIN receipts rc ON rc.tenant = n.tenant AND rc.user_id = $1 AND rc.notification_id = n.id
		WHERE n.tenant = $2 AND n.tenant_seq IS NOT NULL AND n.tenant_seq > $3
		  AND ` + pgBroadcastMatch + ` AND ` + pgNotExpired + ` AND NOT COALESCE(rc.deleted, false) AND NOT COALESCE(rc.archived, false)` + pgNotMuted + `
		ORDER BY n.tenant_seq LIMIT $6`

	pgListExplicitHead = `SELECT i.seq, i.read, i.archived, ` + pgNotificationCols + `
		FROM inbox i JOIN notifications n ON n.id = i.notification_id
		WHERE i.tenant = $1 AND i.user_id = $2 AND i.notification_id < $3 AND (n.expires_at IS NULL OR n.expires_at > $4)
		  AND i.archived = ($7::int <> 0) AND ($6 = '' OR n.category = $6) `
	pgListExplicitSQL       = pgListExplicitHead + `ORDER BY i.notification_id DESC LIMIT $5`
	pgListExplicitUnreadSQL = pgListExplicitHead + `AND NOT i.read ORDER BY i.notification_id DESC LIMIT $5`
	pgListBroadcastHead     = `SELECT n.tenant_seq, COALESCE(rc.read, false), COALESCE(rc.archived, false), ` + pgNotificationCols + `
		FROM notifications n
		LEFT JOIN receipts rc ON rc.tenant = n.tenant AND rc.user_id = $1 AND rc.notification_id = n.id
		WHERE n.tenant = $2 AND n.tenant_seq IS NOT NULL AND n.id < $3
		  AND ` + pgBroadcastMatch + ` AND ` + pgNotExpired + ` AND NOT COALESCE(rc.deleted, false)
		  AND COALESCE(rc.archived, false) = ($10::int <> 0) AND ($9 = '' OR n.category = $9)` + pgNotMuted
	pgListBroadcastSQL       = pgListBroadcastHead + ` ORDER BY n.id DESC LIMIT $6`
	pgListBroadcastUnreadSQL = pgListBroadcastHead + ` AND NOT COALESCE(rc.read, false) ORDER BY n.id DESC LIMIT $6`

	pgHeadSQL = `SELECT ` + pgHeadExprs
	// The counts statements (see countsRow): the totals row, then the
	// category counters and unseen broadcasts. One statement, one snapshot.
	pgCountsSQL     = `SELECT 0, ` + pgPrefsExprs + `, 0::bigint, 0::bigint, ` + pgUnreadExpr + `, ` + pgUnseenExpr + pgCountsRows
	pgHeadCountsSQL = `SELECT 0, ` + pgPrefsExprs + `, ` + pgHeadExprs + `, ` + pgUnreadExpr + `, ` + pgUnseenExpr + pgCountsRows

	pgHeadExprs = `
		COALESCE((SELECT seq FROM user_streams WHERE tenant = $1 AND user_id = $2), 0),
		COALESCE((SELECT seq FROM tenant_streams WHERE tenant = $1), 0)`

	// pgUnreadExpr adds the explicit counter and, per broadcast audience key
	// the recipient matches ("*" and $3 = "role:<r>", or "" which no row
	// has), live broadcasts minus the recipient's receipts.
	pgUnreadExpr = `
		  COALESCE((SELECT unread FROM user_streams WHERE tenant = $1 AND user_id = $2), 0)
		+ COALESCE((SELECT total FROM audience_totals WHERE tenant = $1 AND audience_key = '*'), 0)
		- COALESCE((SELECT seen FROM receipt_counts WHERE tenant = $1 AND user_id = $2 AND audience_key = '*'), 0)
		+ COALESCE((SELECT total FROM audience_totals WHERE tenant = $1 AND audience_key = $3), 0)
		- COALESCE((SELECT seen FROM receipt_counts WHERE tenant = $1 AND user_id = $2 AND audience_key = $3), 0)`
	pgUnseenExpr = `COALESCE((SELECT unseen FROM user_streams WHERE tenant = $1 AND user_id = $2), 0)`
	pgPrefsExprs = `
		COALESCE((SELECT muted_categories FROM preferences WHERE tenant = $1 AND user_id = $2), ''),
		COALESCE((SELECT muted_types FROM preferences WHERE tenant = $1 AND user_id = $2), '')`

	// pgCountsRows are the category counters (explicit, then per derived
	// broadcast key in the ranges ($7, $8) and ($9, $10): totals and minus
	// the recipient's receipts), then the broadcasts after the recipient's
	// seen mark that it still has, up to $6 of them, by category and type.
	pgCountsRows = `
		UNION ALL SELECT 1, category, '', unread, 0, 0, 0 FROM category_counts WHERE tenant = $1 AND user_id = $2 AND unread <> 0
		UNION ALL SELECT 2, audience_key, '', total, 0, 0, 0 FROM audience_totals
		  WHERE tenant = $1 AND ((audience_key > $7 AND audience_key < $8) OR (audience_key > $9 AND audience_key < $10))
		UNION ALL SELECT 2, audience_key, '', -seen, 0, 0, 0 FROM receipt_counts
		  WHERE tenant = $1 AND user_id = $2 AND ((audience_key > $7 AND audience_key < $8) OR (audience_key > $9 AND audience_key < $10))
		UNION ALL SELECT 3, category, type, count(*), 0, 0, 0 FROM (
		  SELECT n.category, n.type FROM notifications n
		  LEFT JOIN receipts rc ON rc.tenant = n.tenant AND rc.user_id = $2 AND rc.notification_id = n.id
		  WHERE n.tenant = $1 AND n.tenant_seq IS NOT NULL
		    AND n.tenant_seq > COALESCE((SELECT seen_tenant_seq FROM user_streams WHERE tenant = $1 AND user_id = $2), 0)
		    AND ` + pgBroadcastMatch + ` AND ` + pgNotExpired + ` AND NOT COALESCE(rc.deleted, false) AND NOT COALESCE(rc.archived, false)
		  ORDER BY n.tenant_seq LIMIT $6) b
		GROUP BY category, type`

	pgIsUnseenExplicitSQL = `SELECT '', '', CASE WHEN NOT i.read AND NOT i.archived AND i.seq > COALESCE(u.seen_seq, 0) THEN 1 ELSE 0 END
		FROM inbox i JOIN notifications n ON n.id = i.notification_id
		LEFT JOIN user_streams u ON u.tenant = i.tenant AND u.user_id = i.user_id
		WHERE i.tenant = $1 AND i.user_id = $2 AND i.notification_id = $3 AND $4::text IS NOT NULL AND ` + pgNotExpired
	pgIsUnseenBroadcastSQL = `SELECT n.category, n.type,
		  CASE WHEN rc.notification_id IS NULL AND n.tenant_seq > COALESCE(u.seen_tenant_seq, 0) THEN 1 ELSE 0 END
		FROM notifications n
		LEFT JOIN receipts rc ON rc.tenant = n.tenant AND rc.user_id = $2 AND rc.notification_id = n.id
		LEFT JOIN user_streams u ON u.tenant = n.tenant AND u.user_id = $2
		WHERE n.id = $3 AND n.tenant = $1 AND n.tenant_seq IS NOT NULL AND ` + pgBroadcastMatch + ` AND ` + pgNotExpired
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
	headCounts:          pgHeadCountsSQL,
	counts:              pgCountsSQL,
	isUnseenExplicit:    pgIsUnseenExplicitSQL,
	isUnseenBroadcast:   pgIsUnseenBroadcastSQL,
	unseen: `SELECT i.seq, i.read, i.archived, ` + pgNotificationCols + `
		FROM inbox i JOIN notifications n ON n.id = i.notification_id
		WHERE i.tenant = $1 AND i.user_id = $2 AND i.notification_id = $3 AND (n.expires_at IS NULL OR n.expires_at > $4)
		  AND NOT i.archived
		  AND i.seq > COALESCE((SELECT u.seen_seq FROM user_streams u WHERE u.tenant = $1 AND u.user_id = $2), 0)`,
}

// newPGReader is the read side of s: reads run on the pool, as direct
// operations.
func newPGReader(s *Postgres) reader {
	return reader{
		readSQL:     &pgReadSQL,
		rows:        pgRows{s.pool},
		clock:       s.clock,
		mutedArg:    pgTextArray,
		prefs:       loadPrefs,
		countsPrefs: true,
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

func (q pgRows) queryEach(ctx context.Context, query string, args []any, each func(scanner) error) error {
	rows, err := q.q.Query(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := each(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// queryItems runs an item query whose columns are seq, read, archived,
// then pgNotificationCols.
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
		collapse  *string
	)
	_, err = pgx.ForEachRow(rows, []any{&it.Seq, &it.Read, &it.Archived, &it.ID, &it.Tenant, &akind, &role,
		&it.Type, &it.Title, &it.Body, &data, &createdMS, &expiresMS, &it.Category, &collapse}, func() error {
		item := it
		item.CollapseKey = ""
		if collapse != nil {
			item.CollapseKey = *collapse
		}
		// data is only valid until the next row: copy it.
		completeItem(&item, notification.AudienceKind(akind), role, bytes.Clone(data), createdMS, expiresMS)
		items = append(items, item)
		return nil
	})
	return items, err
}

// pgTextArray binds a list of strings as a text[] (never NULL).
func pgTextArray(ss []string) any {
	if ss == nil {
		return []string{}
	}
	return ss
}
