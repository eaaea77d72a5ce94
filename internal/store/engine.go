package store

// Engine-neutral helpers shared by the SQLite and PostgreSQL engines.

import (
	"time"

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
