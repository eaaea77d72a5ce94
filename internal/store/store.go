// Package store persists notifications, per-recipient state, stream positions,
// unread counters and idempotency records. It is Herald's source of truth.
//
// Concurrency: a Store is safe for concurrent use. Publish calls are group-
// committed: concurrent calls are merged into one transaction by a single
// writer goroutine, and each call returns only after that transaction has
// committed (or failed). Positions and counters are assigned inside the
// committing transaction from per-stream counter rows, so they are
// commit-ordered. In SQLite every write goes through the one writer; in
// PostgreSQL read-state changes run on the pool and the counter rows' locks
// order writers of a stream across nodes.
//
// The contract is the same for every engine (SQLite, PostgreSQL); the shared
// contract tests in contract_test.go run against each. So is much of the
// implementation: the read path (read.go), the group-commit writer
// (writer.go), the expiry sweeper (sweep.go), starting and stopping
// (lifecycle.go), configuration (config.go), migrations (migrate.go),
// validation (validate.go) and other engine-neutral helpers (engine.go).
package store

import (
	"context"
	"errors"
	"time"

	"github.com/heraldhq/herald/internal/notification"
)

// Sentinel errors. Callers match them with errors.Is.
var (
	// ErrNotFound: the id does not exist for this recipient (it may exist for
	// someone else: callers must not be able to tell the difference).
	ErrNotFound = errors.New("store: not found")
	// ErrIdempotencyMismatch: the idempotency key was used before with a
	// different request body.
	ErrIdempotencyMismatch = errors.New("store: idempotency key reused with a different request")
	// ErrUnavailable: the store could not commit in time (overloaded or down).
	ErrUnavailable = errors.New("store: unavailable")
	// ErrClosed: the store has been closed.
	ErrClosed = errors.New("store: closed")
	// ErrInvalid: the request is malformed (empty tenant, bad audience, data
	// that is not a JSON object, a malformed id...). Nothing was written.
	ErrInvalid = errors.New("store: invalid request")
)

// PublishRequest is one publish call: one or more drafts written atomically.
type PublishRequest struct {
	// Idempotency. When Key is set, a second request with the same Scope and
	// Key returns the first one's result (Replayed=true) without writing, if
	// RequestHash is equal, and ErrIdempotencyMismatch otherwise.
	Scope       string // the publisher's identity (API key id)
	Key         string
	RequestHash string
	Drafts      []notification.Draft
	// Deadline, when not zero, bounds the wait as a deadline on the
	// caller's context would, without the allocations of one: once it
	// passes, Publish gives up with ErrUnavailable (wrapping
	// context.DeadlineExceeded), and a request still queued is not run.
	Deadline time.Time
}

// PublishResult is the outcome of a committed PublishRequest.
type PublishResult struct {
	// IDs of the stored notifications, in the order of the drafts.
	IDs []string
	// Events to fan out, one per draft; nil when Replayed. An explicit-user
	// event lists each distinct user once in Deliveries (with the user's new
	// sequence and unread count); its Notification.Audience.Users is nil, as
	// in every item a reader gets, so that no recipient learns who else
	// received it. A broadcast event has TenantSeq.
	Events []*notification.Event
	// Replayed is true when an earlier request with the same idempotency key
	// was found; IDs are then that request's ids.
	Replayed bool
}

// ListQuery selects a page of a recipient's notifications, newest first.
type ListQuery struct {
	Before     string // a notification id: only older ones (ids are ULIDs, time-ordered); "" for the newest
	Limit      int    // 1..MaxListLimit; <= 0 means DefaultListLimit
	UnreadOnly bool
	// Category, when set, keeps the notifications of that category only.
	Category string
	// Archived lists the archived notifications instead of the others.
	Archived bool
}

// Counts are a recipient's inbox counters (see notification.Counts).
type Counts = notification.Counts

// MaxUnseenBroadcasts caps the unseen broadcasts a count reads: a badge
// needs no more, and the count must stay cheap for a user who never opens
// the inbox.
const MaxUnseenBroadcasts = 1000

// List and Since limits.
const (
	DefaultListLimit = 50
	MaxListLimit     = 200
	// MaxSinceLimit caps the limit of one Since call; callers page with more.
	MaxSinceLimit = 1000
)

// Page is a page of a recipient's notifications, newest first.
type Page struct {
	Items []notification.Item
	// Next is the Before value for the following page, "" at the end.
	Next string
}

// Change is the result of a read or delete: the ids that actually changed state
// and the recipient's unread count afterwards, with the event to fan out (nil
// when nothing changed).
type Change struct {
	IDs []string
	// Unread is Counts.Unread after the change; Counts all of them.
	Unread int64
	Counts Counts
	Event  *notification.Event
}

// Store is the contract every engine implements.
//
// Every method fails with ErrClosed after Close, with ErrUnavailable
// (wrapped) when ctx has already ended or the engine cannot answer, and with
// ErrInvalid for a recipient whose tenant, user or (non-empty) role is not a
// valid identifier (notification.ValidIdent). Errors are wrapped with
// the operation ("store: mark read: ..."); match them with errors.Is.
type Store interface {
	// Publish writes the drafts in one transaction (group-committed with other
	// concurrent calls) and returns after commit. ctx bounds the wait: when it
	// ends before commit the call returns ErrUnavailable (wrapped) and the
	// request may or may not be committed later; an idempotent retry is safe.
	// Malformed drafts (a tenant, user or role, type, title or body that
	// breaks the rules of internal/notification, audience fields that do not
	// fit its kind, Data that is not a JSON object) fail the whole request
	// with ErrInvalid; Data that is empty or JSON null is stored as no data.
	Publish(ctx context.Context, req PublishRequest) (PublishResult, error)

	// Since returns up to limit items of r's stream strictly after pos, in
	// commit order within each component (user items ordered by user
	// sequence, broadcast items by tenant sequence; the two are merged by
	// created time), excluding deleted and expired ones and broadcasts whose
	// audience does not match r.Role. more is true when more items exist.
	// limit <= 0 means DefaultListLimit; it is capped at MaxSinceLimit.
	//
	// Every item has Seq set and Notification.Audience.Kind set, so the caller
	// knows which component of its position the item advances (Users: User,
	// Tenant/Role: Tenant). When the result is cut at limit, the items of each
	// component are a prefix of that component's remaining items, so advancing
	// each component to the largest Seq returned for it never skips an item.
	Since(ctx context.Context, r notification.Recipient, pos notification.Position, limit int) (items []notification.Item, more bool, err error)

	// Head is the current end of r's stream: the position a client that has
	// seen everything would hold.
	Head(ctx context.Context, r notification.Recipient) (notification.Position, error)

	// HeadCounts is Head and Counts, the head and unread total in one
	// statement (one snapshot): what a fresh connection reads.
	HeadCounts(ctx context.Context, r notification.Recipient) (notification.Position, Counts, error)

	// List returns a page of r's notifications, newest first, without
	// deleted and expired ones. A malformed Before is ErrInvalid.
	List(ctx context.Context, r notification.Recipient, q ListQuery) (Page, error)

	// UnreadCount is r's unread count, read from maintained counters. A
	// notification that has expired still counts until the engine's expiry
	// sweep removes it.
	UnreadCount(ctx context.Context, r notification.Recipient) (int64, error)

	// Counts are r's unread, unseen and by-category counts, from
	// maintained counters (and the broadcasts after r's seen mark).
	Counts(ctx context.Context, r notification.Recipient) (Counts, error)

	// MarkSeen moves r's seen mark to upTo (nil: r's head), never back and
	// never past the head. Its event (EventSeen, Unseen set) is nil when
	// the mark did not move.
	MarkSeen(ctx context.Context, r notification.Recipient, upTo *notification.Position) (Change, error)

	// IsUnseen reports whether id is in r's inbox (not deleted, archived
	// or expired), unread and after r's seen mark. An id r cannot see is
	// false, not an error.
	IsUnseen(ctx context.Context, r notification.Recipient, id string) (bool, error)

	// Archive archives ids for r (or everything r can see, with all);
	// Unarchive puts them back. Ids that do not exist for r, or are already
	// in that state, are skipped; ErrNotFound only when none of ids exists
	// for r. The event is EventArchived or EventUnarchived, nil when
	// nothing changed.
	Archive(ctx context.Context, r notification.Recipient, ids []string, all bool) (Change, error)
	Unarchive(ctx context.Context, r notification.Recipient, ids []string, all bool) (Change, error)

	// Preferences are r's preferences (empty when never set); r.Role is
	// ignored.
	Preferences(ctx context.Context, r notification.Recipient) (notification.Preferences, error)
	// SetPreferences replaces r's preferences (validated with
	// ValidatePreferences, ErrInvalid otherwise). From then on a publish
	// to r by name skips r when it mutes the draft's category or type, and
	// reads of r's inbox leave out the broadcasts it mutes. Its event is
	// EventPreferences.
	SetPreferences(ctx context.Context, r notification.Recipient, p notification.Preferences) (Change, error)

	// MarkRead marks ids read for r. Ids that do not exist for r, or are
	// already read, are skipped; ErrNotFound only when none of them exists for r.
	// Change.IDs are the ids that became read; Event is nil when there are
	// none. An empty ids list is ErrInvalid.
	MarkRead(ctx context.Context, r notification.Recipient, ids []string) (Change, error)

	// MarkAllRead marks everything r can see read. Its event has All set
	// and no IDs; it is nil when nothing was unread.
	MarkAllRead(ctx context.Context, r notification.Recipient) (Change, error)

	// Delete hides id from r (and only from r). ErrNotFound if r cannot see
	// it, including when r already deleted it.
	Delete(ctx context.Context, r notification.Recipient, id string) (Change, error)

	// Ping checks that the store answers.
	Ping(ctx context.Context) error

	// Close stops the writer after it has committed what it accepted.
	Close() error
}

// Clock returns the current time; tests inject their own.
type Clock func() time.Time
