package store

import (
	"context"
	"fmt"

	"github.com/heraldhq/herald/internal/notification"
)

// The read path, as both engines run it. A read runs two statements, one
// per component of the stream (explicit: the user's inbox; broadcast: the
// tenant's), and merges them. The statements may see different snapshots;
// that is safe because each component is complete up to its own snapshot
// (positions are assigned in commit order) and callers track each
// component separately. The engines differ in their SQL and in how they
// run it (sqlite_read.go, postgres_read.go); both bind the same arguments
// in the same order, as documented on readSQL.

// readSQL are an engine's read statements.
type readSQL struct {
	// Item queries, whose columns are seq, read, then the notification.
	// Explicit: tenant, user, cursor, now, limit. Broadcast: user, tenant,
	// cursor, role, now, limit. The cursor is a position component (since)
	// or an id (list).
	sinceExplicit, sinceBroadcast      string
	listExplicit, listExplicitUnread   string
	listBroadcast, listBroadcastUnread string
	head, headUnread, unread           string // tenant, user[, role key]
	// unseen: the explicit item of tenant, user, notification id, now
	// (Outbox.Unseen).
	unseen string
}

// scanner is a row of a single-row query: *sql.Row or pgx.Row.
type scanner interface {
	Scan(dest ...any) error
}

// rowReader runs an engine's read statements.
type rowReader interface {
	queryItems(ctx context.Context, query string, args ...any) ([]notification.Item, error)
	queryRow(ctx context.Context, query string, args ...any) scanner
}

// reader implements the read methods of Store (Since, Head, HeadUnread,
// List, UnreadCount) for an engine, which embeds it. Static after
// construction.
type reader struct {
	readSQL *readSQL
	rows    rowReader
	clock   Clock
	// enterRead is the engine's entry check of a read of r; exitRead is
	// called when a read that entered is done.
	enterRead func(ctx context.Context, r notification.Recipient) error
	exitRead  func()
	// classifyErr wraps the engine's errors with ErrUnavailable where they
	// are transient.
	classifyErr func(error) error
}

// read runs fn, the read op of r, between the entry check and its exit,
// and wraps its error with the operation.
func (x *reader) read(ctx context.Context, op string, r notification.Recipient, fn func() error) error {
	if err := x.enterRead(ctx, r); err != nil {
		return fmt.Errorf("store: %s: %w", op, err)
	}
	defer x.exitRead()
	if err := fn(); err != nil {
		return fmt.Errorf("store: %s: %w", op, x.classifyErr(err))
	}
	return nil
}

// Since implements Store.
func (x *reader) Since(ctx context.Context, r notification.Recipient, pos notification.Position, limit int) (items []notification.Item, more bool, err error) {
	err = x.read(ctx, "since", r, func() (err error) {
		items, more, err = readSince(ctx, x.rows, x.readSQL, r, pos, limit, x.clock().UnixMilli())
		return err
	})
	return items, more, err
}

// List implements Store.
func (x *reader) List(ctx context.Context, r notification.Recipient, q ListQuery) (p Page, err error) {
	err = x.read(ctx, "list", r, func() (err error) {
		p, err = readList(ctx, x.rows, x.readSQL, r, q, x.clock().UnixMilli())
		return err
	})
	return p, err
}

// Head implements Store.
func (x *reader) Head(ctx context.Context, r notification.Recipient) (p notification.Position, err error) {
	err = x.read(ctx, "head", r, func() (err error) {
		p, err = readHead(ctx, x.rows, x.readSQL, r)
		return err
	})
	return p, err
}

// HeadUnread implements Store.
func (x *reader) HeadUnread(ctx context.Context, r notification.Recipient) (p notification.Position, n int64, err error) {
	err = x.read(ctx, "head", r, func() (err error) {
		p, n, err = readHeadUnread(ctx, x.rows, x.readSQL, r)
		return err
	})
	return p, n, err
}

// UnreadCount implements Store. It reads counters only.
func (x *reader) UnreadCount(ctx context.Context, r notification.Recipient) (n int64, err error) {
	err = x.read(ctx, "unread count", r, func() (err error) {
		n, err = readUnread(ctx, x.rows, x.readSQL, r)
		return err
	})
	return n, err
}

// readSince is Since after the engine's entry check. now is the clock's
// time in Unix milliseconds. Errors are the engine's own, unclassified.
func readSince(ctx context.Context, q rowReader, sql *readSQL, r notification.Recipient, pos notification.Position, limit int, now int64) ([]notification.Item, bool, error) {
	if pos.User < 0 || pos.Tenant < 0 {
		return nil, false, fmt.Errorf("%w: negative position", ErrInvalid)
	}
	limit = sinceLimit(limit)
	explicit, err := q.queryItems(ctx, sql.sinceExplicit, r.Tenant, r.User, pos.User, now, limit+1)
	if err != nil {
		return nil, false, err
	}
	broadcast, err := q.queryItems(ctx, sql.sinceBroadcast, r.User, r.Tenant, pos.Tenant, r.Role, now, limit+1)
	if err != nil {
		return nil, false, err
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

// readList is List after the engine's entry check.
func readList(ctx context.Context, q rowReader, sql *readSQL, r notification.Recipient, lq ListQuery, now int64) (Page, error) {
	before := beforeEnd
	if lq.Before != "" {
		if !notification.ValidID(lq.Before) {
			return Page{}, fmt.Errorf("%w: malformed before id", ErrInvalid)
		}
		before = lq.Before
	}
	limit := listLimit(lq.Limit)
	explicitSQL, broadcastSQL := sql.listExplicit, sql.listBroadcast
	if lq.UnreadOnly {
		explicitSQL, broadcastSQL = sql.listExplicitUnread, sql.listBroadcastUnread
	}
	explicit, err := q.queryItems(ctx, explicitSQL, r.Tenant, r.User, before, now, limit+1)
	if err != nil {
		return Page{}, err
	}
	broadcast, err := q.queryItems(ctx, broadcastSQL, r.User, r.Tenant, before, r.Role, now, limit+1)
	if err != nil {
		return Page{}, err
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

// readHead is Head after the engine's entry check.
func readHead(ctx context.Context, q rowReader, sql *readSQL, r notification.Recipient) (notification.Position, error) {
	var p notification.Position
	if err := q.queryRow(ctx, sql.head, r.Tenant, r.User).Scan(&p.User, &p.Tenant); err != nil {
		return notification.Position{}, err
	}
	return p, nil
}

// readHeadUnread is HeadUnread after the engine's entry check: one
// statement, so one snapshot.
func readHeadUnread(ctx context.Context, q rowReader, sql *readSQL, r notification.Recipient) (notification.Position, int64, error) {
	var (
		p notification.Position
		n int64
	)
	if err := q.queryRow(ctx, sql.headUnread, r.Tenant, r.User, roleKey(r.Role)).Scan(&p.User, &p.Tenant, &n); err != nil {
		return notification.Position{}, 0, err
	}
	return p, n, nil
}

// readUnread is UnreadCount after the engine's entry check. It reads
// counters only.
func readUnread(ctx context.Context, q rowReader, sql *readSQL, r notification.Recipient) (int64, error) {
	var n int64
	if err := q.queryRow(ctx, sql.unread, r.Tenant, r.User, roleKey(r.Role)).Scan(&n); err != nil {
		return 0, err
	}
	return n, nil
}

// completeItem sets the columns of an item row that are not scanned
// straight into it: the audience, the data (kept as given), the creation
// and expiry times (Unix ms; expiresMS nil for never).
func completeItem(it *notification.Item, kind notification.AudienceKind, role string, data []byte, createdMS int64, expiresMS *int64) {
	// Audience.Users is not stored: a recipient never learns who else
	// received an explicit notification.
	it.Audience = notification.Audience{Kind: kind, Role: role}
	if len(data) > 0 {
		it.Data = data
	}
	it.CreatedAt = fromMillis(createdMS)
	if expiresMS != nil {
		it.ExpiresAt = fromMillis(*expiresMS)
	}
}
