package store

import (
	"cmp"
	"context"
	"fmt"
	"math/bits"
	"slices"
	"strings"

	"github.com/heraldhq/herald/internal/notification"
)

// A run of consecutive plain publishes in one writer batch (see
// runOptimistic) is written with multi-row statements: one INSERT of the
// notification rows, one counter bump of every recipient's stream and one
// INSERT of the inbox rows, instead of three statements per recipient. At
// saturation a batch holds dozens of publishes, and the fixed cost of a
// statement (database/sql, the driver's bind and reset, the VDBE program's
// start and halt) was most of the writer's time per publish.
//
// The rows of a run are written in chunks of powers of two up to
// maxRunRows, so the writer prepares at most seven shapes of each
// statement.
const maxRunRows = 64

// runShapes is the number of chunk sizes: 1, 2, 4, … maxRunRows.
var runShapes = bits.TrailingZeros(maxRunRows) + 1

// The statements of a run, by chunk size (index: log2 of the rows).
var (
	notificationsSQL = multiRowSQL(`INSERT INTO notifications
 (id, tenant, audience_kind, audience_role, type, title, body, data, created_at, expires_at, category, collapse_key, tenant_seq) VALUES `,
		`(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, ``)
	inboxSQL = multiRowSQL(`INSERT INTO inbox (tenant, user_id, seq, notification_id, read) VALUES `,
		`(?, ?, ?, ?, 0)`, ``)
	bumpStreamsSQL = multiRowSQL(`INSERT INTO user_streams (tenant, user_id, seq, unread, unseen) VALUES `, `(?, ?, 1, 1, 1)`,
		` ON CONFLICT (tenant, user_id) DO UPDATE SET seq = seq + 1, unread = unread + 1, unseen = unseen + 1
 RETURNING tenant, user_id, seq, unread`)
	// A user named twice in one statement is bumped twice: SQLite applies
	// the upsert row by row.
	bumpCategoriesSQL = multiRowSQL(`INSERT INTO category_counts (tenant, user_id, category, unread) VALUES `, `(?, ?, ?, 1)`,
		` ON CONFLICT (tenant, user_id, category) DO UPDATE SET unread = unread + 1`)
)

// Values per row of the statements above.
const (
	notificationRowCols = 13
	inboxCols           = 4
	bumpCols            = 2
	bumpCategoryCols    = 3
)

func multiRowSQL(head, row, tail string) []string {
	out := make([]string, runShapes)
	for i := range out {
		var b strings.Builder
		b.WriteString(head)
		for r := range 1 << i {
			if r > 0 {
				b.WriteString(", ")
			}
			b.WriteString(row)
		}
		b.WriteString(tail)
		out[i] = b.String()
	}
	return out
}

// insertNotificationsSQL and insertInboxSQL are the statements for n rows,
// n a power of two up to maxRunRows.
func insertNotificationsSQL(n int) string { return notificationsSQL[bits.TrailingZeros(uint(n))] }
func insertInboxSQL(n int) string         { return inboxSQL[bits.TrailingZeros(uint(n))] }

// appendNotificationArgs appends the notificationRowCols values of n's row.
func appendNotificationArgs(args []any, n *notification.Notification, tenantSeq any) []any {
	var data, expires, collapse any
	if n.Data != nil {
		data = string(n.Data)
	}
	if !n.ExpiresAt.IsZero() {
		expires = n.ExpiresAt.UnixMilli()
	}
	if n.CollapseKey != "" {
		collapse = n.CollapseKey
	}
	return append(args, n.ID, n.Tenant, int(n.Audience.Kind), n.Audience.Role, n.Type, n.Title, n.Body,
		data, n.CreatedAt.UnixMilli(), expires, n.Category, collapse, tenantSeq)
}

// mergeable reports whether a publish may join a merged run: it has no
// idempotency key (publishTx looks keys up and records them), it names its
// users (a broadcast bumps the tenant's stream), it has no collapse key
// (which removes earlier inbox rows first), it schedules no fallback
// webhook (publishTx writes its outbox rows) and it is not solo.
func mergeable(req *PublishRequest) bool {
	if req.Key != "" || len(req.Drafts) > soloDrafts {
		return false
	}
	for i := range req.Drafts {
		if d := &req.Drafts[i]; d.Audience.Broadcast() || d.CollapseKey != "" || d.FallbackAfter > 0 {
			return false
		}
	}
	return true
}

// runDelivery locates one delivery of a run: ev.Deliveries[i].
type runDelivery struct {
	ev *notification.Event
	i  int
}

// publishRun writes the publishes of reqs (all mergeable) in the open
// transaction and sets each one's result. Results equal what publishTx
// would give the same requests one after another: a user named by several
// drafts gets consecutive sequence numbers in request and draft order.
func (s *SQLite) publishRun(ctx context.Context, reqs []*writeReq) error {
	now := s.clock()
	results := make([]PublishResult, len(reqs))
	var (
		nargs []any
		dels  []runDelivery
	)
	for k, r := range reqs {
		res := &results[k]
		res.IDs = make([]string, 0, len(r.pub.Drafts))
		res.Events = make([]*notification.Event, 0, len(r.pub.Drafts))
		for i := range r.pub.Drafts {
			d := &r.pub.Drafts[i]
			n, err := newNotification(s.ids, d, now)
			if err != nil {
				return err
			}
			ev := &notification.Event{Kind: notification.EventNotification, Tenant: d.Tenant, Notification: n,
				Deliveries: make([]notification.Delivery, 0, len(d.Audience.Users))}
			for j, u := range d.Audience.Users {
				if !slices.Contains(d.Audience.Users[:j], u) && !s.prefs.mutes(d.Tenant, u, d) {
					ev.Deliveries = append(ev.Deliveries, notification.Delivery{User: u})
				}
			}
			for i := range ev.Deliveries {
				dels = append(dels, runDelivery{ev, i})
			}
			if len(ev.Deliveries) > 0 { // else every user muted it: nothing to store
				nargs = appendNotificationArgs(nargs, n, nil)
			}
			res.IDs = append(res.IDs, n.ID)
			res.Events = append(res.Events, ev)
		}
	}
	if err := s.execChunks(ctx, insertNotificationsSQL, nargs, notificationRowCols); err != nil {
		return fmt.Errorf("notifications: %w", err)
	}
	if err := s.bumpStreams(ctx, dels); err != nil {
		return fmt.Errorf("user streams: %w", err)
	}
	iargs := make([]any, 0, len(dels)*inboxCols)
	for _, dl := range dels {
		d := &dl.ev.Deliveries[dl.i]
		iargs = append(iargs, dl.ev.Tenant, d.User, d.Seq, dl.ev.Notification.ID)
	}
	if err := s.execChunks(ctx, insertInboxSQL, iargs, inboxCols); err != nil {
		return fmt.Errorf("inbox: %w", err)
	}
	var cargs []any
	for _, dl := range dels {
		if c := dl.ev.Notification.Category; c != "" {
			cargs = append(cargs, dl.ev.Tenant, dl.ev.Deliveries[dl.i].User, c)
		}
	}
	if err := s.execChunks(ctx, func(n int) string { return bumpCategoriesSQL[bits.TrailingZeros(uint(n))] }, cargs, bumpCategoryCols); err != nil {
		return fmt.Errorf("category counts: %w", err)
	}
	for k, r := range reqs {
		*r.pubRes = results[k]
	}
	return nil
}

// chunkRows is the size of the next chunk of rows: the largest power of
// two up to maxRunRows that rows holds.
func chunkRows(rows int) int {
	n := maxRunRows
	for n > rows {
		n >>= 1
	}
	return n
}

// execChunks runs the statement sqlFor(n) over args, cols values a row, in
// chunks of chunkRows.
func (s *SQLite) execChunks(ctx context.Context, sqlFor func(int) string, args []any, cols int) error {
	for rows := len(args) / cols; rows > 0; {
		n := chunkRows(rows)
		if _, err := s.w.ExecContext(ctx, sqlFor(n), args[:n*cols]...); err != nil {
			return err
		}
		args, rows = args[n*cols:], rows-n
	}
	return nil
}

// streamBump is one row the counter bump returned.
type streamBump struct {
	tenant, user string
	seq, unread  int64
}

// bumpStreams bumps the stream of every delivery's user by one and sets
// each delivery's Seq and Unread. RETURNING gives its rows in no promised
// order; a user's rows are told apart by seq and handed out in delivery
// order, the order in which publishTx would have bumped them.
func (s *SQLite) bumpStreams(ctx context.Context, dels []runDelivery) error {
	args := make([]any, 0, len(dels)*bumpCols)
	for _, dl := range dels {
		args = append(args, dl.ev.Tenant, dl.ev.Deliveries[dl.i].User)
	}
	got := make([]streamBump, 0, len(dels))
	for rest := args; len(rest) > 0; {
		n := chunkRows(len(rest) / bumpCols)
		rows, err := s.w.QueryContext(ctx, bumpStreamsSQL[bits.TrailingZeros(uint(n))], rest[:n*bumpCols]...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var b streamBump
			if err := rows.Scan(&b.tenant, &b.user, &b.seq, &b.unread); err != nil {
				_ = rows.Close()
				return err
			}
			got = append(got, b)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rest = rest[n*bumpCols:]
	}
	if len(got) != len(dels) {
		return fmt.Errorf("counter bump returned %d rows for %d deliveries", len(got), len(dels))
	}
	// Sorted by user, then seq: each user's rows are a run, and each
	// delivery takes the next row of its user's run.
	slices.SortFunc(got, func(a, b streamBump) int {
		return cmp.Or(strings.Compare(a.tenant, b.tenant), strings.Compare(a.user, b.user), cmp.Compare(a.seq, b.seq))
	})
	next := make(map[[2]string]int, len(got))
	for i := len(got) - 1; i >= 0; i-- {
		next[[2]string{got[i].tenant, got[i].user}] = i
	}
	for _, dl := range dels {
		d := &dl.ev.Deliveries[dl.i]
		key := [2]string{dl.ev.Tenant, d.User}
		i, ok := next[key]
		if !ok || i >= len(got) || got[i].tenant != key[0] || got[i].user != key[1] {
			return fmt.Errorf("counter bump returned no row for a delivery")
		}
		d.Seq, d.Unread = got[i].seq, got[i].unread
		next[key] = i + 1
	}
	return nil
}
