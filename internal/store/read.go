package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

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
	// Item queries, whose columns are seq, read, archived, then the
	// notification. Explicit: tenant, user, cursor, now, limit (lists:
	// then category, archived). Broadcast: user, tenant, cursor, role, now,
	// limit, muted categories, muted types (lists: then category,
	// archived). The cursor is a position component (since) or an id (list).
	sinceExplicit, sinceBroadcast      string
	listExplicit, listExplicitUnread   string
	listBroadcast, listBroadcastUnread string
	head                               string // tenant, user
	// counts and headCounts read every counter of a ready frame or an
	// unread frame in one statement (one round trip, one snapshot); see
	// countsRow. They bind tenant, user, role key, role, now, the unseen
	// broadcasts limit, then two ranges of derived audience keys. counts
	// reads the head as 0, 0.
	counts, headCounts string
	// isUnseen*: tenant, user, id, role, now; columns category, type and
	// 1 when the item is unseen (0 otherwise).
	isUnseenExplicit, isUnseenBroadcast string
	// unseen: the explicit item of tenant, user, notification id, now,
	// when it is neither archived nor before the user's seen mark
	// (Outbox.Unseen; the caller checks read).
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
	// queryEach calls each for every row of query.
	queryEach(ctx context.Context, query string, args []any, each func(scanner) error) error
}

// reader implements the read methods of Store (Since, Head, Counts,
// HeadCounts, List, UnreadCount) for an engine, which embeds it. Static
// after construction.
type reader struct {
	readSQL *readSQL
	rows    rowReader
	clock   Clock
	// mutedArg binds a list of muted names for the engine's statements.
	mutedArg func([]string) any
	// prefs returns r's preferences: the engine's cache, or a read through
	// q (the reads, or the transaction the caller holds).
	prefs func(ctx context.Context, q rowReader, r notification.Recipient) (notification.Preferences, error)
	// countsPrefs: the counts statements read r's preferences (their
	// muted columns), and prefs is not called for them.
	countsPrefs bool
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
	err = x.read(ctx, "since", r, func() error {
		p, err := x.prefs(ctx, x.rows, r)
		if err != nil {
			return err
		}
		items, more, err = readSince(ctx, x, r, pos, limit, p, x.clock().UnixMilli())
		return err
	})
	return items, more, err
}

// List implements Store.
func (x *reader) List(ctx context.Context, r notification.Recipient, q ListQuery) (p Page, err error) {
	err = x.read(ctx, "list", r, func() error {
		prefs, err := x.prefs(ctx, x.rows, r)
		if err != nil {
			return err
		}
		p, err = readList(ctx, x, r, q, prefs, x.clock().UnixMilli())
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

// HeadCounts implements Store.
func (x *reader) HeadCounts(ctx context.Context, r notification.Recipient) (p notification.Position, c Counts, err error) {
	err = x.read(ctx, "head", r, func() (err error) {
		p, c, err = x.readCounts(ctx, x.rows, r, true)
		return err
	})
	return p, c, err
}

// Counts implements Store. It reads counters, and the broadcasts after
// r's seen mark (at most MaxUnseenBroadcasts).
func (x *reader) Counts(ctx context.Context, r notification.Recipient) (c Counts, err error) {
	err = x.read(ctx, "counts", r, func() (err error) {
		_, c, err = x.readCounts(ctx, x.rows, r, false)
		return err
	})
	return c, err
}

// UnreadCount implements Store.
func (x *reader) UnreadCount(ctx context.Context, r notification.Recipient) (int64, error) {
	c, err := x.Counts(ctx, r)
	return c.Unread, err
}

// The rows of the counts statements, by their first column; every row has
// the columns kind, a, b (text) and n1..n4 (integers).
const (
	// countsTotals, exactly one row: a and b are r's muted categories and
	// types (when the engine reads them there, else ''), n1 and n2 the
	// head, n3 the unread total (without muting), n4 the explicit unseen
	// count.
	countsTotals = 0
	// countsCategory: the explicit unread count n1 of category a.
	countsCategory = 1
	// countsDerived: a derived broadcast counter a (see audienceKeys) and
	// its total, or minus r's receipts of it, in n1.
	countsDerived = 2
	// countsUnseen: n1 broadcasts of category a and type b after r's seen
	// mark that r still has (at most MaxUnseenBroadcasts in all).
	countsUnseen = 3
)

// countsRow is one row of the counts statements.
type countsRow struct {
	kind int64
	a, b string
	n    [4]int64
}

// readCounts reads r's counts through q (the engine's reads, or a write
// transaction), with the head when withHead: one statement, so one round
// trip and one snapshot. The muted broadcasts are then taken out of the
// unread, unseen and by-category counts.
func (x *reader) readCounts(ctx context.Context, q rowReader, r notification.Recipient, withHead bool) (notification.Position, Counts, error) {
	var (
		p      notification.Position
		c      Counts
		row    countsRow
		totals bool
		rows   []countsRow // categories and unseen broadcasts
	)
	query := x.readSQL.counts
	if withHead {
		query = x.readSQL.headCounts
	}
	rk := roleKey(r.Role)
	lo, hi := derivedRange("*")
	rlo, rhi := "", ""
	if rk != "" {
		rlo, rhi = derivedRange(rk)
	}
	args := []any{r.Tenant, r.User, rk, r.Role, x.clock().UnixMilli(), MaxUnseenBroadcasts, lo, hi, rlo, rhi}
	err := q.queryEach(ctx, query, args, func(s scanner) error {
		if err := s.Scan(&row.kind, &row.a, &row.b, &row.n[0], &row.n[1], &row.n[2], &row.n[3]); err != nil {
			return err
		}
		if row.kind == countsTotals {
			totals = true
			p = notification.Position{User: row.n[0], Tenant: row.n[1]}
			c.Unread, c.Unseen = row.n[2], row.n[3]
			c.Prefs = notification.Preferences{MutedCategories: splitMuted(row.a), MutedTypes: splitMuted(row.b)}
			return nil
		}
		rows = append(rows, row)
		return nil
	})
	if err == nil && !totals {
		err = errNoCountsRow
	}
	if err != nil {
		return p, c, err
	}
	if !x.countsPrefs {
		if c.Prefs, err = x.prefs(ctx, q, r); err != nil {
			return p, c, err
		}
	}
	c.ByCategory = applyCounts(rows, c.Prefs, &c.Unread, &c.Unseen)
	return p, c, nil
}

// errNoCountsRow: a counts statement returned no totals row (it always
// does, unless the engine misbehaves).
var errNoCountsRow = errors.New("counts: no totals row")

// applyCounts adds to *unseen the unseen broadcasts r does not mute, and
// returns r's unread counts by category: the explicit counters, plus per
// derived broadcast key (see audienceKeys) its total minus r's receipts.
// The broadcasts r mutes (by category or type) are taken out of *unread
// and of their category.
func applyCounts(rows []countsRow, prefs notification.Preferences, unread, unseen *int64) map[string]int64 {
	out := map[string]int64{}
	var (
		byCat, byType = map[string]int64{}, map[string]int64{}
		byCatType     = map[[2]string]int64{}
	)
	for i := range rows {
		row := &rows[i]
		switch row.kind {
		case countsCategory:
			out[row.a] += row.n[0]
		case countsUnseen:
			if !prefs.Mutes(row.a, row.b) {
				*unseen += row.n[0]
			}
		case countsDerived:
			name, n := row.a, row.n[0]
			kind, rest, _ := strings.Cut(name[strings.IndexByte(name, keySep)+1:], string(keySep))
			switch kind {
			case "c":
				byCat[rest] += n
			case "t":
				byType[rest] += n
			case "ct":
				c, t, _ := strings.Cut(rest, string(keySep))
				byCatType[[2]string{c, t}] += n
			}
		}
	}
	mutedCat := func(c string) bool { return slices.Contains(prefs.MutedCategories, c) }
	mutedType := func(t string) bool { return slices.Contains(prefs.MutedTypes, t) }
	for c, n := range byCat {
		if mutedCat(c) {
			*unread -= n
		} else {
			out[c] += n
		}
	}
	for t, n := range byType {
		if mutedType(t) {
			*unread -= n
		}
	}
	for ct, n := range byCatType {
		switch {
		case !mutedType(ct[1]):
		case mutedCat(ct[0]):
			*unread += n // taken out twice above
		default:
			out[ct[0]] -= n
		}
	}
	for c, n := range out {
		if n <= 0 {
			delete(out, c)
		}
	}
	return out
}

// isUnseen is IsUnseen after the engine's entry check: id is in r's inbox
// (not deleted, archived, expired or muted), unread, and after r's seen
// mark.
func isUnseen(ctx context.Context, q rowReader, sql *readSQL, r notification.Recipient, id string, prefs notification.Preferences, now int64) (bool, error) {
	for _, query := range []string{sql.isUnseenExplicit, sql.isUnseenBroadcast} {
		var (
			cat, typ string
			unseen   int64
		)
		err := q.queryRow(ctx, query, r.Tenant, r.User, id, r.Role, now).Scan(&cat, &typ, &unseen)
		if isNoRows(err) {
			continue
		}
		if err != nil {
			return false, err
		}
		return unseen == 1 && !prefs.Mutes(cat, typ), nil
	}
	return false, nil
}

// keySep separates the parts of a derived audience key: a control
// character, which no role name (an identifier) can contain.
const keySep = '\x1f'

// derivedKey is a derived counter key of the audience key base: kind "c"
// (a category), "t" (a type) or "ct" (category, keySep, type).
func derivedKey(base, kind, name string) string {
	return base + string(keySep) + kind + string(keySep) + name
}

// derivedRange bounds the derived keys of base (exclusive).
func derivedRange(base string) (lo, hi string) {
	return base + string(keySep), base + string(keySep+1)
}

// counterKeys are the counter keys a broadcast of audience key base,
// category and type counts under (in audience_totals, and in the
// receipt_counts of a recipient who has a receipt of it): the audience key,
// and the derived keys of its type, its category and both. With them a
// recipient's unread count by category, and without what they mute, are
// read from counters (applyCounts).
func counterKeys(base, category, typ string) []string {
	if category == "" {
		return []string{base, derivedKey(base, "t", typ)}
	}
	return []string{base, derivedKey(base, "t", typ), derivedKey(base, "c", category),
		derivedKey(base, "ct", category+string(keySep)+typ)}
}

// readSince is Since after the engine's entry check. now is the clock's
// time in Unix milliseconds. Errors are the engine's own, unclassified.
func readSince(ctx context.Context, x *reader, r notification.Recipient, pos notification.Position, limit int, prefs notification.Preferences, now int64) ([]notification.Item, bool, error) {
	if pos.User < 0 || pos.Tenant < 0 {
		return nil, false, fmt.Errorf("%w: negative position", ErrInvalid)
	}
	limit = sinceLimit(limit)
	explicit, err := x.rows.queryItems(ctx, x.readSQL.sinceExplicit, r.Tenant, r.User, pos.User, now, limit+1)
	if err != nil {
		return nil, false, err
	}
	broadcast, err := x.rows.queryItems(ctx, x.readSQL.sinceBroadcast, r.User, r.Tenant, pos.Tenant, r.Role, now, limit+1,
		x.mutedArg(prefs.MutedCategories), x.mutedArg(prefs.MutedTypes))
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
func readList(ctx context.Context, x *reader, r notification.Recipient, lq ListQuery, prefs notification.Preferences, now int64) (Page, error) {
	before := beforeEnd
	if lq.Before != "" {
		if !notification.ValidID(lq.Before) {
			return Page{}, fmt.Errorf("%w: malformed before id", ErrInvalid)
		}
		before = lq.Before
	}
	if lq.Category != "" && !notification.ValidCategory(lq.Category) {
		return Page{}, fmt.Errorf("%w: malformed category", ErrInvalid)
	}
	limit := listLimit(lq.Limit)
	explicitSQL, broadcastSQL := x.readSQL.listExplicit, x.readSQL.listBroadcast
	if lq.UnreadOnly {
		explicitSQL, broadcastSQL = x.readSQL.listExplicitUnread, x.readSQL.listBroadcastUnread
	}
	archived := boolInt(lq.Archived)
	explicit, err := x.rows.queryItems(ctx, explicitSQL, r.Tenant, r.User, before, now, limit+1, lq.Category, archived)
	if err != nil {
		return Page{}, err
	}
	broadcast, err := x.rows.queryItems(ctx, broadcastSQL, r.User, r.Tenant, before, r.Role, now, limit+1,
		x.mutedArg(prefs.MutedCategories), x.mutedArg(prefs.MutedTypes), lq.Category, archived)
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
