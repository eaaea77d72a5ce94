package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald/internal/notification"
)

// Reads run on the pool without a transaction. Each statement sees one
// committed snapshot. Since and List run two statements (explicit and
// broadcast component) that may see different snapshots; that is safe
// because each component is complete up to its own snapshot (positions are
// assigned under counter-row locks held until commit, so they become
// visible in order) and callers track each component separately.

// pgNotificationCols are the notification columns scanned by scanPGItems,
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

// Since implements Store.
func (s *Postgres) Since(ctx context.Context, r notification.Recipient, pos notification.Position, limit int) ([]notification.Item, bool, error) {
	if err := s.enterRecipient(ctx, r); err != nil {
		return nil, false, fmt.Errorf("store: since: %w", err)
	}
	defer s.inflight.Done()
	if pos.User < 0 || pos.Tenant < 0 {
		return nil, false, fmt.Errorf("store: since: %w: negative position", ErrInvalid)
	}
	limit = sinceLimit(limit)
	now := s.clock().UnixMilli()
	explicit, err := queryPGItems(ctx, s.pool, pgSinceExplicitSQL, r.Tenant, r.User, pos.User, now, limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("store: since: %w", classifyPG(err))
	}
	broadcast, err := queryPGItems(ctx, s.pool, pgSinceBroadcastSQL, r.User, r.Tenant, pos.Tenant, r.Role, now, limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("store: since: %w", classifyPG(err))
	}
	more := len(explicit)+len(broadcast) > limit
	items := mergeItems(explicit, broadcast, limit, func(a, b *notification.Item) bool {
		if !a.CreatedAt.Equal(b.CreatedAt) {
			return a.CreatedAt.Before(b.CreatedAt)
		}
		return a.ID < b.ID
	})
	return items, more, nil
}

// Head implements Store.
func (s *Postgres) Head(ctx context.Context, r notification.Recipient) (notification.Position, error) {
	if err := s.enterRecipient(ctx, r); err != nil {
		return notification.Position{}, fmt.Errorf("store: head: %w", err)
	}
	defer s.inflight.Done()
	var p notification.Position
	if err := s.pool.QueryRow(ctx, pgHeadSQL, r.Tenant, r.User).Scan(&p.User, &p.Tenant); err != nil {
		return notification.Position{}, fmt.Errorf("store: head: %w", classifyPG(err))
	}
	return p, nil
}

// HeadUnread implements Store.
func (s *Postgres) HeadUnread(ctx context.Context, r notification.Recipient) (notification.Position, int64, error) {
	if err := s.enterRecipient(ctx, r); err != nil {
		return notification.Position{}, 0, fmt.Errorf("store: head: %w", err)
	}
	defer s.inflight.Done()
	var (
		p notification.Position
		n int64
	)
	if err := s.pool.QueryRow(ctx, pgHeadUnreadSQL, r.Tenant, r.User, roleKey(r.Role)).Scan(&p.User, &p.Tenant, &n); err != nil {
		return notification.Position{}, 0, fmt.Errorf("store: head: %w", classifyPG(err))
	}
	return p, n, nil
}

// List implements Store.
func (s *Postgres) List(ctx context.Context, r notification.Recipient, q ListQuery) (Page, error) {
	if err := s.enterRecipient(ctx, r); err != nil {
		return Page{}, fmt.Errorf("store: list: %w", err)
	}
	defer s.inflight.Done()
	before := beforeEnd
	if q.Before != "" {
		if !notification.ValidID(q.Before) {
			return Page{}, fmt.Errorf("store: list: %w: malformed before id", ErrInvalid)
		}
		before = q.Before
	}
	limit := listLimit(q.Limit)
	now := s.clock().UnixMilli()
	explicitSQL, broadcastSQL := pgListExplicitSQL, pgListBroadcastSQL
	if q.UnreadOnly {
		explicitSQL, broadcastSQL = pgListExplicitUnreadSQL, pgListBroadcastUnreadSQL
	}
	explicit, err := queryPGItems(ctx, s.pool, explicitSQL, r.Tenant, r.User, before, now, limit+1)
	if err != nil {
		return Page{}, fmt.Errorf("store: list: %w", classifyPG(err))
	}
	broadcast, err := queryPGItems(ctx, s.pool, broadcastSQL, r.User, r.Tenant, before, r.Role, now, limit+1)
	if err != nil {
		return Page{}, fmt.Errorf("store: list: %w", classifyPG(err))
	}
	var p Page
	p.Items = mergeItems(explicit, broadcast, limit, func(a, b *notification.Item) bool {
		return a.ID > b.ID
	})
	if len(explicit)+len(broadcast) > limit {
		p.Next = p.Items[len(p.Items)-1].ID
	}
	return p, nil
}

// UnreadCount implements Store. It reads counters only.
func (s *Postgres) UnreadCount(ctx context.Context, r notification.Recipient) (int64, error) {
	if err := s.enterRecipient(ctx, r); err != nil {
		return 0, fmt.Errorf("store: unread count: %w", err)
	}
	defer s.inflight.Done()
	n, err := pgUnreadCount(ctx, s.pool, r)
	if err != nil {
		return 0, fmt.Errorf("store: unread count: %w", classifyPG(err))
	}
	return n, nil
}

func pgUnreadCount(ctx context.Context, q pgQuerier, r notification.Recipient) (int64, error) {
	var n int64
	err := q.QueryRow(ctx, pgUnreadSQL, r.Tenant, r.User, roleKey(r.Role)).Scan(&n)
	return n, err
}

// enterRecipient is the entry check of every operation on r's stream. On
// success the caller must call s.inflight.Done when finished.
func (s *Postgres) enterRecipient(ctx context.Context, r notification.Recipient) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	err := validateRecipient(r)
	if err == nil && hasNUL(r.Tenant, r.User, r.Role) {
		err = fmt.Errorf("%w: recipient contains NUL", ErrInvalid)
	}
	if err != nil {
		s.inflight.Done()
	}
	return err
}

// queryPGItems runs an item query whose columns are seq, read, then
// pgNotificationCols.
func queryPGItems(ctx context.Context, q pgQuerier, query string, args ...any) ([]notification.Item, error) {
	rows, err := q.Query(ctx, query, args...)
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
		// Audience.Users is not stored: a recipient never learns who else
		// received an explicit notification.
		item.Audience = notification.Audience{Kind: notification.AudienceKind(akind), Role: role}
		if len(data) > 0 {
			item.Data = append([]byte(nil), data...)
		}
		item.CreatedAt = fromMillis(createdMS)
		if expiresMS != nil {
			item.ExpiresAt = fromMillis(*expiresMS)
		}
		items = append(items, item)
		return nil
	})
	return items, err
}
