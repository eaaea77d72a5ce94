package store

import (
	"context"
	"database/sql"
	"fmt"
	"sync"

	"github.com/heraldhq/herald/internal/notification"
)

// Reads run on the query-only pool without a transaction. Each statement
// sees one committed snapshot. Since and List run two statements (explicit
// and broadcast component) that may see different snapshots; that is safe
// because each component is complete up to its own snapshot (positions are
// assigned in commit order) and callers track each component separately.

// notificationCols are the notification columns scanned by scanItem, after
// the item's seq and read flag.
const notificationCols = `n.id, n.tenant, n.audience_kind, n.audience_role, n.type, n.title, n.body, n.data, n.created_at, n.expires_at`

// broadcastMatch selects the broadcasts visible to a role (the bound
// parameter). Role audiences never have an empty role, so "" matches only
// tenant-wide ones.
const broadcastMatch = `(n.audience_kind = 2 OR (n.audience_kind = 3 AND n.audience_role = ?))`

// notExpired keeps notifications whose expiry (bound as Unix ms) is ahead.
const notExpired = `(n.expires_at IS NULL OR n.expires_at > ?)`

const (
	sinceExplicitSQL = `SELECT i.seq, i.read, ` + notificationCols + `
		FROM inbox i JOIN notifications n ON n.id = i.notification_id
		WHERE i.tenant = ? AND i.user_id = ? AND i.seq > ? AND ` + notExpired + `
		ORDER BY i.seq LIMIT ?`
	sinceBroadcastSQL = `SELECT n.tenant_seq, COALESCE(rc.read, 0), ` + notificationCols + `
		FROM notifications n
		LEFT JOIN receipts rc ON rc.tenant = n.tenant AND rc.user_id = ? AND rc.notification_id = n.id
		WHERE n.tenant = ? AND n.tenant_seq IS NOT NULL AND n.tenant_seq > ?
		  AND ` + broadcastMatch + ` AND ` + notExpired + ` AND COALESCE(rc.deleted, 0) = 0
		ORDER BY n.tenant_seq LIMIT ?`

	// The explicit list walks the user's primary key backwards: per user,
	// seq order is id order (see the 00003 migration). When the cursor is
	// one of the user's own items, its seq bounds the walk, so a deep page
	// costs no more than the first.
	listExplicitSQL       = listExplicitHead + `ORDER BY i.seq DESC LIMIT ?5`
	listExplicitUnreadSQL = listExplicitHead + `AND i.read = 0 ORDER BY i.seq DESC LIMIT ?5`
	listExplicitHead      = `SELECT i.seq, i.read, ` + notificationCols + `
		FROM inbox i JOIN notifications n ON n.id = i.notification_id
		WHERE i.tenant = ?1 AND i.user_id = ?2
		  AND i.seq < COALESCE((SELECT c.seq FROM inbox c
		                        WHERE c.notification_id = ?3 AND c.tenant = ?1 AND c.user_id = ?2),
		                       9223372036854775807)
		  AND i.notification_id < ?3 AND (n.expires_at IS NULL OR n.expires_at > ?4) `
	listBroadcastSQL = `SELECT n.tenant_seq, COALESCE(rc.read, 0), ` + notificationCols + `
		FROM notifications n
		LEFT JOIN receipts rc ON rc.tenant = n.tenant AND rc.user_id = ? AND rc.notification_id = n.id
		WHERE n.tenant = ? AND n.tenant_seq IS NOT NULL AND n.id < ?
		  AND ` + broadcastMatch + ` AND ` + notExpired + ` AND COALESCE(rc.deleted, 0) = 0
		ORDER BY n.id DESC LIMIT ?`
	listBroadcastUnreadSQL = `SELECT n.tenant_seq, 0, ` + notificationCols + `
		FROM notifications n
		LEFT JOIN receipts rc ON rc.tenant = n.tenant AND rc.user_id = ? AND rc.notification_id = n.id
		WHERE n.tenant = ? AND n.tenant_seq IS NOT NULL AND n.id < ?
		  AND ` + broadcastMatch + ` AND ` + notExpired + ` AND rc.notification_id IS NULL
		ORDER BY n.id DESC LIMIT ?`

	headSQL       = `SELECT ` + headExprs
	unreadSQL     = `SELECT ` + unreadExpr
	headUnreadSQL = `SELECT ` + headExprs + `, ` + unreadExpr // one statement, one snapshot

	headExprs = `
		COALESCE((SELECT seq FROM user_streams WHERE tenant = ?1 AND user_id = ?2), 0),
		COALESCE((SELECT seq FROM tenant_streams WHERE tenant = ?1), 0)`

	// unreadExpr adds the explicit counter and, per broadcast audience key
	// the recipient matches ("*" and ?3 = "role:<r>", or "" which no row
	// has), live broadcasts minus the recipient's receipts.
	unreadExpr = `
		  COALESCE((SELECT unread FROM user_streams WHERE tenant = ?1 AND user_id = ?2), 0)
		+ COALESCE((SELECT total FROM audience_totals WHERE tenant = ?1 AND audience_key = '*'), 0)
		- COALESCE((SELECT seen FROM receipt_counts WHERE tenant = ?1 AND user_id = ?2 AND audience_key = '*'), 0)
		+ COALESCE((SELECT total FROM audience_totals WHERE tenant = ?1 AND audience_key = ?3), 0)
		- COALESCE((SELECT seen FROM receipt_counts WHERE tenant = ?1 AND user_id = ?2 AND audience_key = ?3), 0)`
)

// Since implements Store.
func (s *SQLite) Since(ctx context.Context, r notification.Recipient, pos notification.Position, limit int) ([]notification.Item, bool, error) {
	if err := s.readArgs(ctx, r); err != nil {
		return nil, false, fmt.Errorf("store: since: %w", err)
	}
	if pos.User < 0 || pos.Tenant < 0 {
		return nil, false, fmt.Errorf("store: since: %w: negative position", ErrInvalid)
	}
	limit = sinceLimit(limit)
	now := s.clock().UnixMilli()
	explicit, err := queryItems(ctx, &s.reads, sinceExplicitSQL,
		r.Tenant, r.User, pos.User, now, limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("store: since: %w", classify(err))
	}
	broadcast, err := queryItems(ctx, &s.reads, sinceBroadcastSQL,
		r.User, r.Tenant, pos.Tenant, r.Role, now, limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("store: since: %w", classify(err))
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
func (s *SQLite) Head(ctx context.Context, r notification.Recipient) (notification.Position, error) {
	if err := s.readArgs(ctx, r); err != nil {
		return notification.Position{}, fmt.Errorf("store: head: %w", err)
	}
	var p notification.Position
	if err := s.reads.QueryRowContext(ctx, headSQL, r.Tenant, r.User).Scan(&p.User, &p.Tenant); err != nil {
		return notification.Position{}, fmt.Errorf("store: head: %w", classify(err))
	}
	return p, nil
}

// HeadUnread implements Store.
func (s *SQLite) HeadUnread(ctx context.Context, r notification.Recipient) (notification.Position, int64, error) {
	if err := s.readArgs(ctx, r); err != nil {
		return notification.Position{}, 0, fmt.Errorf("store: head: %w", err)
	}
	var (
		p notification.Position
		n int64
	)
	if err := s.reads.QueryRowContext(ctx, headUnreadSQL, r.Tenant, r.User, roleKey(r.Role)).Scan(&p.User, &p.Tenant, &n); err != nil {
		return notification.Position{}, 0, fmt.Errorf("store: head: %w", classify(err))
	}
	return p, n, nil
}

// List implements Store.
func (s *SQLite) List(ctx context.Context, r notification.Recipient, q ListQuery) (Page, error) {
	if err := s.readArgs(ctx, r); err != nil {
		return Page{}, fmt.Errorf("store: list: %w", err)
	}
	before := beforeEnd
	if q.Before != "" {
		if !notification.ValidID(q.Before) {
			return Page{}, fmt.Errorf("store: list: %w: malformed before id", ErrInvalid)
		}
		before = q.Before
	}
	limit := listLimit(q.Limit)
	now := s.clock().UnixMilli()
	explicitSQL, broadcastSQL := listExplicitSQL, listBroadcastSQL
	if q.UnreadOnly {
		explicitSQL, broadcastSQL = listExplicitUnreadSQL, listBroadcastUnreadSQL
	}
	explicit, err := queryItems(ctx, &s.reads, explicitSQL,
		r.Tenant, r.User, before, now, limit+1)
	if err != nil {
		return Page{}, fmt.Errorf("store: list: %w", classify(err))
	}
	broadcast, err := queryItems(ctx, &s.reads, broadcastSQL,
		r.User, r.Tenant, before, r.Role, now, limit+1)
	if err != nil {
		return Page{}, fmt.Errorf("store: list: %w", classify(err))
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
func (s *SQLite) UnreadCount(ctx context.Context, r notification.Recipient) (int64, error) {
	if err := s.readArgs(ctx, r); err != nil {
		return 0, fmt.Errorf("store: unread count: %w", err)
	}
	n, err := unreadCount(ctx, &s.reads, r)
	if err != nil {
		return 0, fmt.Errorf("store: unread count: %w", classify(err))
	}
	return n, nil
}

func unreadCount(ctx context.Context, q querier, r notification.Recipient) (int64, error) {
	var n int64
	err := q.QueryRowContext(ctx, unreadSQL, r.Tenant, r.User, roleKey(r.Role)).Scan(&n)
	return n, err
}

// readArgs is the entry check of every read.
func (s *SQLite) readArgs(ctx context.Context, r notification.Recipient) error {
	if err := s.readable(ctx); err != nil {
		return err
	}
	return validateRecipient(r)
}

// queryItems runs an item query whose columns are seq, read, then
// notificationCols.
func queryItems(ctx context.Context, q querier, query string, args ...any) ([]notification.Item, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var items []notification.Item
	for rows.Next() {
		var (
			it        notification.Item
			read      int64
			akind     int64
			role      string
			data      []byte
			createdMS int64
			expiresMS sql.NullInt64
		)
		if err := rows.Scan(&it.Seq, &read, &it.ID, &it.Tenant, &akind, &role,
			&it.Type, &it.Title, &it.Body, &data, &createdMS, &expiresMS); err != nil {
			return nil, err
		}
		it.Read = read != 0
		// Audience.Users is not stored: a recipient never learns who else
		// received an explicit notification.
		it.Audience = notification.Audience{Kind: notification.AudienceKind(akind), Role: role}
		if len(data) > 0 {
			it.Data = data
		}
		it.CreatedAt = fromMillis(createdMS)
		if expiresMS.Valid {
			it.ExpiresAt = fromMillis(expiresMS.Int64)
		}
		items = append(items, it)
	}
	return items, rows.Err()
}

// readStmts runs queries on the read pool as prepared statements, prepared
// once per query. database/sql keeps a prepared copy per pooled connection,
// so a hot query (the unread count and head every connect reads, the
// replay) is parsed once per connection instead of on every call: parsing
// was a fifth of a connect's CPU.
type readStmts struct {
	db *sql.DB
	m  sync.Map // query string -> *sql.Stmt
}

var _ querier = (*readStmts)(nil)

func (r *readStmts) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := r.m.Load(query); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := r.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if prev, loaded := r.m.LoadOrStore(query, st); loaded {
		_ = st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

// QueryContext implements querier.
func (r *readStmts) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := r.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// QueryRowContext implements querier.
func (r *readStmts) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := r.stmt(ctx, query)
	if err != nil {
		// Let database/sql report the error through the Row.
		return r.db.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

// close closes every prepared statement.
func (r *readStmts) close() {
	r.m.Range(func(_, st any) bool {
		_ = st.(*sql.Stmt).Close()
		return true
	})
}
