package store

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strings"
	"time"
	"unsafe"

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

// sqlFor is the statement of shapes (one of the above) for n rows, n a
// power of two up to maxRunRows.
func sqlFor(shapes []string, n int) string { return shapes[bits.TrailingZeros(uint(n))] }

// bindNotification binds n's notificationRowCols values from parameter
// base; tenantSeq (a broadcast's) is NULL when nil.
func bindNotification(st *nstmt, base int, n *notification.Notification, tenantSeq *int64) error {
	errs := [...]error{
		st.bindText(base, n.ID),
		st.bindText(base+1, n.Tenant),
		st.bindInt64(base+2, int64(n.Audience.Kind)),
		st.bindText(base+3, n.Audience.Role),
		st.bindText(base+4, n.Type),
		st.bindText(base+5, n.Title),
		st.bindText(base+6, n.Body),
		bindOptText(st, base+7, n.Data != nil, unsafe.String(unsafe.SliceData(n.Data), len(n.Data))),
		st.bindInt64(base+8, n.CreatedAt.UnixMilli()),
		bindOptInt(st, base+9, !n.ExpiresAt.IsZero(), n.ExpiresAt.UnixMilli()),
		st.bindText(base+10, n.Category),
		bindOptText(st, base+11, n.CollapseKey != "", n.CollapseKey),
		bindOptInt(st, base+12, tenantSeq != nil, derefInt(tenantSeq)),
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func bindOptText(st *nstmt, i int, ok bool, v string) error {
	if !ok {
		return st.bindNull(i)
	}
	return st.bindText(i, v)
}

func bindOptInt(st *nstmt, i int, ok bool, v int64) error {
	if !ok {
		return st.bindNull(i)
	}
	return st.bindInt64(i, v)
}

func derefInt(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

// bindInbox binds one row of inboxSQL from parameter base.
func bindInbox(st *nstmt, base int, tenant, user string, seq int64, id string) error {
	return errors.Join(st.bindText(base, tenant), st.bindText(base+1, user), st.bindInt64(base+2, seq), st.bindText(base+3, id))
}

// mergeable reports whether a publish may join a merged run: it has no
// idempotency key (publishTx looks keys up and records them), every draft
// is mergeableDraft, and it is not solo.
func mergeable(req *PublishRequest) bool {
	if req.Key != "" || len(req.Drafts) > soloDrafts {
		return false
	}
	for i := range req.Drafts {
		if !mergeableDraft(&req.Drafts[i]) {
			return false
		}
	}
	return true
}

// mergeableDraft reports whether a draft may be written by a merged run:
// it names its users (a broadcast bumps the tenant's stream), it has no
// collapse key (which removes earlier inbox rows first) and it schedules no
// fallback webhook (insertDraft writes its outbox rows).
func mergeableDraft(d *notification.Draft) bool {
	return !d.Audience.Broadcast() && d.CollapseKey == "" && d.FallbackAfter <= 0
}

// runDelivery locates one delivery of a run: ev.Deliveries[i].
type runDelivery struct {
	ev *notification.Event
	i  int
}

// mergedRun is the drafts a run writes together (see writeRun).
type mergedRun struct {
	notifs []*notification.Notification // those with a delivery
	dels   []runDelivery
}

// add issues d's notification and its deliveries into m (d is
// mergeableDraft) and returns its event, complete once writeRun has run.
func (m *mergedRun) add(s *SQLite, d *notification.Draft, now time.Time) (*notification.Event, error) {
	n, err := newNotification(s.ids, d, now)
	if err != nil {
		return nil, err
	}
	ev := usersEvent(d, n)
	for j, u := range d.Audience.Users {
		if !slices.Contains(d.Audience.Users[:j], u) && !s.prefs.mutes(d.Tenant, u, d) {
			ev.Deliveries = append(ev.Deliveries, notification.Delivery{User: u})
		}
	}
	for i := range ev.Deliveries {
		m.dels = append(m.dels, runDelivery{ev, i})
	}
	if len(ev.Deliveries) > 0 { // else every user muted it: nothing to store
		m.notifs = append(m.notifs, n)
	}
	return ev, nil
}

// publishRun writes the publishes of reqs (all mergeable) in the open
// transaction and sets each one's result. Results equal what publishTx
// would give the same requests one after another: a user named by several
// drafts gets consecutive sequence numbers in request and draft order.
func (s *SQLite) publishRun(_ context.Context, reqs []*writeReq) error {
	now := s.clock()
	results := make([]PublishResult, len(reqs))
	var m mergedRun
	for k, r := range reqs {
		res := &results[k]
		*res = r.pubBufs.result(len(r.pub.Drafts))
		for i := range r.pub.Drafts {
			ev, err := m.add(s, &r.pub.Drafts[i], now)
			if err != nil {
				return err
			}
			res.IDs = append(res.IDs, ev.Notification.ID)
			res.Events = append(res.Events, ev)
		}
	}
	if err := s.writeRun(&m); err != nil {
		return err
	}
	for k, r := range reqs {
		r.pubRes = results[k]
	}
	return nil
}

// writeRun writes m with multi-row statements: the notification rows, the
// counter bump of every recipient's stream, the inbox rows and the
// category counts, and sets each delivery's Seq and Unread.
func (s *SQLite) writeRun(m *mergedRun) error {
	c := s.w.c
	if err := runChunks(c, notificationsSQL, len(m.notifs), notificationRowCols, func(st *nstmt, r, base int) error {
		return bindNotification(st, base, m.notifs[r], nil)
	}); err != nil {
		return fmt.Errorf("notifications: %w", err)
	}
	if err := s.bumpStreams(m.dels); err != nil {
		return fmt.Errorf("user streams: %w", err)
	}
	if err := runChunks(c, inboxSQL, len(m.dels), inboxCols, func(st *nstmt, r, base int) error {
		dl := m.dels[r]
		return bindInbox(st, base, dl.ev.Tenant, dl.ev.Deliveries[dl.i].User, dl.ev.Deliveries[dl.i].Seq, dl.ev.Notification.ID)
	}); err != nil {
		return fmt.Errorf("inbox: %w", err)
	}
	var cats []runDelivery
	for _, dl := range m.dels {
		if dl.ev.Notification.Category != "" {
			cats = append(cats, dl)
		}
	}
	if err := runChunks(c, bumpCategoriesSQL, len(cats), bumpCategoryCols, func(st *nstmt, r, base int) error {
		dl := cats[r]
		return errors.Join(st.bindText(base, dl.ev.Tenant), st.bindText(base+1, dl.ev.Deliveries[dl.i].User),
			st.bindText(base+2, dl.ev.Notification.Category))
	}); err != nil {
		return fmt.Errorf("category counts: %w", err)
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

// runChunks runs the statement of shapes over rows rows, cols values a
// row, in chunks of chunkRows; bind binds row r from parameter base.
func runChunks(c *nconn, shapes []string, rows, cols int, bind func(st *nstmt, r, base int) error) error {
	for done := 0; done < rows; {
		n := chunkRows(rows - done)
		st, err := c.prepare(sqlFor(shapes, n))
		if err != nil {
			return err
		}
		for r := range n {
			if err := bind(st, done+r, r*cols+1); err != nil {
				st.reset()
				return err
			}
		}
		if _, err := st.run(); err != nil {
			return err
		}
		done += n
	}
	return nil
}

// bumpStreams bumps the stream of every delivery's user by one and sets
// each delivery's Seq and Unread, in chunks of chunkRows. RETURNING gives
// its rows in no promised order; a user's rows are handed out in delivery
// order by seq (see assignBump), the order in which insertDraft would have
// bumped them.
func (s *SQLite) bumpStreams(dels []runDelivery) error {
	c := s.w.c
	for done := 0; done < len(dels); {
		n := chunkRows(len(dels) - done)
		chunk := dels[done : done+n]
		st, err := c.prepare(sqlFor(bumpStreamsSQL, n))
		if err != nil {
			return err
		}
		if err := bumpChunk(st, chunk); err != nil {
			return err
		}
		done += n
	}
	return nil
}

// bumpChunk runs st, the counter bump of chunk's deliveries, and resets it.
func bumpChunk(st *nstmt, chunk []runDelivery) error {
	defer st.reset()
	for r, dl := range chunk {
		if err := errors.Join(st.bindText(r*bumpCols+1, dl.ev.Tenant), st.bindText(r*bumpCols+2, dl.ev.Deliveries[dl.i].User)); err != nil {
			return err
		}
	}
	got := 0
	for {
		row, err := st.step()
		if err != nil {
			return err
		}
		if !row {
			break
		}
		if !assignBump(chunk, st.colBytes(0), st.colBytes(1), st.colInt64(2), st.colInt64(3)) {
			return fmt.Errorf("counter bump returned no row for a delivery")
		}
		got++
	}
	if got != len(chunk) {
		return fmt.Errorf("counter bump returned %d rows for %d deliveries", got, len(chunk))
	}
	return nil
}

// assignBump gives one returned row (tenant, user, seq, unread) to the
// first delivery of that user in chunk that has none yet (Seq 0), keeping
// each user's seqs ascending in delivery order: a row with a lower seq than
// one already handed out takes its place, and the displaced row moves on.
// It reports false when no delivery of chunk can take the row.
func assignBump(chunk []runDelivery, tenant, user []byte, seq, unread int64) bool {
	for _, dl := range chunk {
		d := &dl.ev.Deliveries[dl.i]
		if string(user) != d.User || string(tenant) != dl.ev.Tenant {
			continue
		}
		if d.Seq == 0 {
			d.Seq, d.Unread = seq, unread
			return true
		}
		if seq < d.Seq {
			d.Seq, seq = seq, d.Seq
			d.Unread, unread = unread, d.Unread
		}
	}
	return false
}
