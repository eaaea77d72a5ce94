package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"sync"

	"github.com/heraldhq/herald/internal/notification"
)

// Reads run on the query-only pool without a transaction, each statement
// on one committed snapshot (see read.go for the read path both engines
// share).

// notificationCols are the notification columns scanned by queryItems, after
// the item's seq, read and archived flags.
const notificationCols = `n.id, n.tenant, n.audience_kind, n.audience_role, n.type, n.title, n.body, n.data, n.created_at, n.expires_at, n.category, n.collapse_key`

// broadcastMatch selects the broadcasts visible to a role (the bound
// parameter). Role audiences never have an empty role, so "" matches only
// tenant-wide ones.
const broadcastMatch = `(n.audience_kind = 2 OR (n.audience_kind = 3 AND n.audience_role = ?4))`

// notExpired keeps notifications whose expiry (bound as Unix ms) is ahead.
const notExpired = `(n.expires_at IS NULL OR n.expires_at > ?5)`

// notMuted drops the broadcasts of the categories and types a user muted
// (bound as JSON arrays, see mutedArg).
const notMuted = ` AND n.category NOT IN (SELECT value FROM json_each(?7)) AND n.type NOT IN (SELECT value FROM json_each(?8))`

const (
	sinceExplicitSQL = `SELECT i.seq, i.read, i.archived, ` + notificationCols + `
		FROM inbox i JOIN notifications n ON n.id = i.notification_id
		WHERE i.tenant = ?1 AND i.user_id = ?2 AND i.seq > ?3 AND (n.expires_at IS NULL OR n.expires_at > ?4) AND i.archived = 0
		ORDER BY i.seq LIMIT ?5`
	// Broadcast statements bind: ?1 user, ?2 tenant, ?3 cursor, ?4 role,
	// ?5 now, ?6 limit, ?7 muted categories, ?8 muted types, and for lists
	// ?9 category ('' for all), ?10 archived (0 or 1).
	sinceBroadcastSQL = `SELECT n.tenant_seq, COALESCE(rc.read, 0), 0, ` + notificationCols + `
		FROM notifications n
		LEFT JOIN receipts rc ON rc.tenant = n.tenant AND rc.user_id = ?1 AND rc.notification_id = n.id
		WHERE n.tenant = ?2 AND n.tenant_seq IS NOT NULL AND n.tenant_seq > ?3
		  AND ` + broadcastMatch + ` AND ` + notExpired + ` AND COALESCE(rc.deleted, 0) = 0 AND COALESCE(rc.archived, 0) = 0` + notMuted + `
		ORDER BY n.tenant_seq LIMIT ?6`

	// The explicit list walks the user's primary key backwards: per user,
	// seq order is id order (see the 00003 migration). When the cursor is
	// one of the user's own items, its seq bounds the walk, so a deep page
	// costs no more than the first. Binds ?6 category ('' for all) and
	// ?7 archived (0 or 1).
	listExplicitSQL       = listExplicitHead + `ORDER BY i.seq DESC LIMIT ?5`
	listExplicitUnreadSQL = listExplicitHead + `AND i.read = 0 ORDER BY i.seq DESC LIMIT ?5`
	listExplicitHead      = `SELECT i.seq, i.read, i.archived, ` + notificationCols + `
		FROM inbox i JOIN notifications n ON n.id = i.notification_id
		WHERE i.tenant = ?1 AND i.user_id = ?2
		  AND i.seq < COALESCE((SELECT c.seq FROM inbox c
		                        WHERE c.notification_id = ?3 AND c.tenant = ?1 AND c.user_id = ?2),
		                       9223372036854775807)
		  AND i.notification_id < ?3 AND (n.expires_at IS NULL OR n.expires_at > ?4)
		  AND i.archived = ?7 AND (?6 = '' OR n.category = ?6) `
	listBroadcastHead = `SELECT n.tenant_seq, COALESCE(rc.read, 0), COALESCE(rc.archived, 0), ` + notificationCols + `
		FROM notifications n
		LEFT JOIN receipts rc ON rc.tenant = n.tenant AND rc.user_id = ?1 AND rc.notification_id = n.id
		WHERE n.tenant = ?2 AND n.tenant_seq IS NOT NULL AND n.id < ?3
		  AND ` + broadcastMatch + ` AND ` + notExpired + ` AND COALESCE(rc.deleted, 0) = 0
		  AND COALESCE(rc.archived, 0) = ?10 AND (?9 = '' OR n.category = ?9)` + notMuted
	listBroadcastSQL       = listBroadcastHead + ` ORDER BY n.id DESC LIMIT ?6`
	listBroadcastUnreadSQL = listBroadcastHead + ` AND COALESCE(rc.read, 0) = 0 ORDER BY n.id DESC LIMIT ?6`

	headSQL = `SELECT ` + headExprs
	// The counts statements (see countsRow): the totals row, then the
	// category counters and unseen broadcasts. One statement, one snapshot.
	// Preferences come from the engine's cache: their columns are ''.
	countsSQL     = `SELECT 0, '', '', 0, 0, ` + unreadExpr + `, ` + unseenExpr + countsRows
	headCountsSQL = `SELECT 0, '', '', ` + headExprs + `, ` + unreadExpr + `, ` + unseenExpr + countsRows

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
	// unseenExpr is the explicit unseen counter.
	unseenExpr = `COALESCE((SELECT unseen FROM user_streams WHERE tenant = ?1 AND user_id = ?2), 0)`

	// countsRows are the category counters (explicit, then per derived
	// broadcast key in the ranges (?7, ?8) and (?9, ?10): totals and minus
	// the recipient's receipts), then the broadcasts after the recipient's
	// seen mark that it still has, up to ?6 of them, by category and type.
	countsRows = `
		UNION ALL SELECT 1, category, '', unread, 0, 0, 0 FROM category_counts WHERE tenant = ?1 AND user_id = ?2 AND unread <> 0
		UNION ALL SELECT 2, audience_key, '', total, 0, 0, 0 FROM audience_totals
		  WHERE tenant = ?1 AND ((audience_key > ?7 AND audience_key < ?8) OR (audience_key > ?9 AND audience_key < ?10))
		UNION ALL SELECT 2, audience_key, '', -seen, 0, 0, 0 FROM receipt_counts
		  WHERE tenant = ?1 AND user_id = ?2 AND ((audience_key > ?7 AND audience_key < ?8) OR (audience_key > ?9 AND audience_key < ?10))
		UNION ALL SELECT 3, category, type, count(*), 0, 0, 0 FROM (
		  SELECT n.category, n.type FROM notifications n
		  LEFT JOIN receipts rc ON rc.tenant = n.tenant AND rc.user_id = ?2 AND rc.notification_id = n.id
		  WHERE n.tenant = ?1 AND n.tenant_seq IS NOT NULL
		    AND n.tenant_seq > COALESCE((SELECT seen_tenant_seq FROM user_streams WHERE tenant = ?1 AND user_id = ?2), 0)
		    AND ` + broadcastMatch + ` AND ` + notExpired + ` AND COALESCE(rc.deleted, 0) = 0 AND COALESCE(rc.archived, 0) = 0
		  ORDER BY n.tenant_seq LIMIT ?6)
		GROUP BY category, type`

	// isUnseenExplicitSQL and isUnseenBroadcastSQL bind ?1 tenant, ?2
	// user, ?3 id, ?4 role, ?5 now.
	isUnseenExplicitSQL = `SELECT '', '', CASE WHEN i.read = 0 AND i.archived = 0 AND i.seq > COALESCE(u.seen_seq, 0) THEN 1 ELSE 0 END
		FROM inbox i JOIN notifications n ON n.id = i.notification_id
		LEFT JOIN user_streams u ON u.tenant = i.tenant AND u.user_id = i.user_id
		WHERE i.tenant = ?1 AND i.user_id = ?2 AND i.notification_id = ?3 AND ` + notExpired
	isUnseenBroadcastSQL = `SELECT n.category, n.type,
		  CASE WHEN rc.notification_id IS NULL AND n.tenant_seq > COALESCE(u.seen_tenant_seq, 0) THEN 1 ELSE 0 END
		FROM notifications n
		LEFT JOIN receipts rc ON rc.tenant = n.tenant AND rc.user_id = ?2 AND rc.notification_id = n.id
		LEFT JOIN user_streams u ON u.tenant = n.tenant AND u.user_id = ?2
		WHERE n.id = ?3 AND n.tenant = ?1 AND n.tenant_seq IS NOT NULL AND ` + broadcastMatch + ` AND ` + notExpired
)

// sqliteReadSQL are the read statements of the SQLite engine.
var sqliteReadSQL = readSQL{
	sinceExplicit:       sinceExplicitSQL,
	sinceBroadcast:      sinceBroadcastSQL,
	listExplicit:        listExplicitSQL,
	listExplicitUnread:  listExplicitUnreadSQL,
	listBroadcast:       listBroadcastSQL,
	listBroadcastUnread: listBroadcastUnreadSQL,
	head:                headSQL,
	headCounts:          headCountsSQL,
	counts:              countsSQL,
	isUnseenExplicit:    isUnseenExplicitSQL,
	isUnseenBroadcast:   isUnseenBroadcastSQL,
	unseen: `SELECT i.seq, i.read, i.archived, ` + notificationCols + `
		FROM inbox i JOIN notifications n ON n.id = i.notification_id
		WHERE i.notification_id = ?3 AND i.tenant = ?1 AND i.user_id = ?2 AND (n.expires_at IS NULL OR n.expires_at > ?4)
		  AND i.archived = 0
		  AND i.seq > COALESCE((SELECT u.seen_seq FROM user_streams u WHERE u.tenant = ?1 AND u.user_id = ?2), 0)`,
}

// newSQLiteReader is the read side of s: reads run on the query-only pool.
func newSQLiteReader(s *SQLite) reader {
	return reader{
		readSQL:     &sqliteReadSQL,
		rows:        sqlRows{&s.reads},
		clock:       s.clock,
		mutedArg:    jsonArray,
		prefs:       s.cachedPrefs,
		enterRead:   s.enterRecipient,
		exitRead:    func() {},
		classifyErr: classify,
	}
}

// enterRecipient is the entry check of every operation on r's stream.
func (s *SQLite) enterRecipient(ctx context.Context, r notification.Recipient) error {
	if err := s.readable(ctx); err != nil {
		return err
	}
	return validateRecipient(r)
}

// sqlRows runs read statements on q: the read pool's statements, or the
// writer's transaction.
type sqlRows struct{ q querier }

var _ rowReader = sqlRows{}

func (q sqlRows) queryRow(ctx context.Context, query string, args ...any) scanner {
	return q.q.QueryRowContext(ctx, query, args...)
}

func (q sqlRows) queryEach(ctx context.Context, query string, args []any, each func(scanner) error) error {
	rows, err := q.q.QueryContext(ctx, query, args...)
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
// then notificationCols.
func (q sqlRows) queryItems(ctx context.Context, query string, args ...any) ([]notification.Item, error) {
	rows, err := q.q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var items []notification.Item
	for rows.Next() {
		var (
			it        notification.Item
			read      int64
			archived  int64
			collapse  sql.NullString
			akind     int64
			role      string
			data      []byte
			createdMS int64
			expiresMS sql.NullInt64
		)
		if err := rows.Scan(&it.Seq, &read, &archived, &it.ID, &it.Tenant, &akind, &role,
			&it.Type, &it.Title, &it.Body, &data, &createdMS, &expiresMS, &it.Category, &collapse); err != nil {
			return nil, err
		}
		it.Read, it.Archived, it.CollapseKey = read != 0, archived != 0, collapse.String
		var expires *int64
		if expiresMS.Valid {
			expires = &expiresMS.Int64
		}
		completeItem(&it, notification.AudienceKind(akind), role, data, createdMS, expires)
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
func (r *readStmts) QueryContext(ctx context.Context, query string, args ...any) (rowsIter, error) {
	rows, err := queryStmt(ctx, r, query, args)
	if err != nil {
		return nil, err
	}
	return rows, nil
}

// QueryRowContext implements querier.
func (r *readStmts) QueryRowContext(ctx context.Context, query string, args ...any) scanner {
	return queryRowStmt(ctx, r, r.db.QueryRowContext, query, args)
}

// close closes every prepared statement.
func (r *readStmts) close() {
	r.m.Range(func(_, st any) bool {
		_ = st.(*sql.Stmt).Close()
		return true
	})
}

// jsonArray binds a list of strings as the JSON array json_each reads.
func jsonArray(ss []string) any {
	if len(ss) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(ss)
	return string(b)
}
