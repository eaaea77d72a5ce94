package store

// Engine-neutral helpers shared by the SQLite and PostgreSQL engines.

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald/internal/notification"
)

// beforeEnd is greater than every ULID (Crockford base32 is [0-9A-Z]), so
// "id < beforeEnd" selects everything.
const beforeEnd = "~"

// roleKey is the audience key of r's role, "" when r has no role.
func roleKey(role string) string {
	if role == "" {
		return ""
	}
	return notification.Audience{Kind: notification.AudienceRole, Role: role}.Key()
}

// mergeItems merges two lists, each sorted by less, and returns at most
// limit items. The items taken from each list are a prefix of that list, so
// a caller tracking one cursor per list never skips an item.
func mergeItems(a, b []notification.Item, limit int, less func(x, y *notification.Item) bool) []notification.Item {
	out := make([]notification.Item, 0, min(limit, len(a)+len(b)))
	i, j := 0, 0
	for len(out) < limit && (i < len(a) || j < len(b)) {
		if j >= len(b) || (i < len(a) && less(&a[i], &b[j])) {
			out = append(out, a[i])
			i++
		} else {
			out = append(out, b[j])
			j++
		}
	}
	return out
}

// idempotencyTTL is how long an idempotency record is kept.
const idempotencyTTL = 24 * time.Hour

// fromMillis is the time the store reports for a stored Unix millisecond.
func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// sweepBatch bounds the expired notifications removed per write request, so
// a large backlog never holds the writer for long.
const sweepBatch = 500

// newNotification assigns d an id and builds the notification stored for
// it, created at now: times at the millisecond precision they are stored
// with, data normalized (and copied; nil for none).
func newNotification(ids *idSource, d *notification.Draft, now time.Time) (*notification.Notification, error) {
	id, err := ids.next(now)
	if err != nil {
		return nil, err
	}
	data, err := normalizeData(d.Data)
	if err != nil { // validated before; defensive
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	n := &notification.Notification{
		ID:          id,
		Tenant:      d.Tenant,
		Audience:    notification.Audience{Kind: d.Audience.Kind, Role: d.Audience.Role},
		Type:        d.Type,
		Title:       d.Title,
		Body:        d.Body,
		Data:        bytes.Clone(data),
		CreatedAt:   fromMillis(now.UnixMilli()),
		Category:    d.Category,
		CollapseKey: d.CollapseKey,
	}
	if !d.ExpiresAt.IsZero() {
		n.ExpiresAt = fromMillis(d.ExpiresAt.UnixMilli())
	}
	return n, nil
}

// newChange is the result of a read-state change of r: the ids that
// changed and r's unread count afterwards. Its event is nil when ids is
// empty (nothing changed), unless always.
func newChange(r notification.Recipient, ids []string, counts Counts, kind notification.EventKind, always bool) Change {
	c := Change{IDs: ids, Unread: counts.Unread, Counts: counts}
	if len(ids) > 0 || always {
		c.Event = countsEvent(r, kind, counts)
		c.Event.IDs = slices.Clone(ids) // the event is shared; Change.IDs is the caller's
	}
	return c
}

// countsEvent is an event of kind for r carrying r's counts.
func countsEvent(r notification.Recipient, kind notification.EventKind, counts Counts) *notification.Event {
	return &notification.Event{Kind: kind, Tenant: r.Tenant, User: r.User,
		Unread: counts.Unread, Unseen: counts.Unseen, ByCategory: maps.Clone(counts.ByCategory)}
}

// allEvent is the event of a change of everything r can see (MarkAllRead,
// archive or unarchive all) that changed something.
func allEvent(r notification.Recipient, kind notification.EventKind, counts Counts) *notification.Event {
	ev := countsEvent(r, kind, counts)
	ev.All = true
	return ev
}

// isNoRows reports whether err says a single-row query found no row (in
// either engine).
func isNoRows(err error) bool {
	return errors.Is(err, sql.ErrNoRows) || errors.Is(err, pgx.ErrNoRows)
}
