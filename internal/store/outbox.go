package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/heraldhq/herald/internal/notification"
)

// The webhook outbox: outgoing webhook events wait in a table of the store
// until they are delivered, so a receiver that is down loses nothing and
// a restart loses nothing. Both engines implement Outbox; the contract
// tests in outbox_test.go run against each.
//
// A sender claims due rows under a lease (ClaimWebhooks), sends them, then
// deletes them (FinishWebhook) or puts them back with a later due time
// (ReleaseWebhook). Every call after the claim names the owner: a sender
// whose lease ran out and was taken over gets ErrLeaseLost and must drop
// the row.

// Webhook event types.
const (
	WebhookUserOnline         = "user.online"
	WebhookUserOffline        = "user.offline"
	WebhookNotificationUnseen = "notification.unseen"
	WebhookNotificationRead   = "notification.read"
)

// ErrLeaseLost: the row is gone or claimed by another sender.
var ErrLeaseLost = errors.New("store: webhook lease lost")

// WebhookEvent is one row of the outbox.
type WebhookEvent struct {
	// ID is the Standard Webhooks message id (webhook-id): "msg_" and a
	// ULID, assigned by EnqueueWebhooks when empty. Retries keep it.
	ID     string
	Tenant string
	User   string
	Type   string // one of the Webhook* constants
	// NotificationID: the notification of notification.unseen and .read.
	NotificationID string
	// Payload is the JSON body sent. A notification.unseen event has none
	// until its first attempt (SaveWebhookPayload).
	Payload   []byte
	CreatedAt time.Time // when the event happened
	DueAt     time.Time // next attempt; zero on enqueue: now
	Attempts  int       // attempts made so far
	// LeaseUntil: when the claim of this row runs out (set by ClaimWebhooks).
	LeaseUntil time.Time
}

// WebhookEndpoint is a tenant's own webhook receiver.
type WebhookEndpoint struct {
	Tenant    string
	URL       string
	Secret    string // whsec_<base64>
	UpdatedAt time.Time
}

// WebhookBacklog describes the due rows of the outbox (rows scheduled for
// later, like a notification.unseen not yet due, are not counted).
type WebhookBacklog struct {
	Depth  int64
	Oldest time.Time // creation time of the oldest due row; zero when none
}

// Outbox is the webhook outbox and the tenants' endpoints. Times are the
// store's clock.
type Outbox interface {
	// EnqueueWebhooks adds events (ids and due times filled in when empty).
	EnqueueWebhooks(ctx context.Context, evs []WebhookEvent) error
	// ClaimWebhooks leases up to limit due rows that nobody holds (or whose
	// lease ran out) to owner for lease, oldest due first.
	ClaimWebhooks(ctx context.Context, owner string, lease time.Duration, limit int) ([]WebhookEvent, error)
	// SaveWebhookPayload stores the body of a claimed row.
	SaveWebhookPayload(ctx context.Context, id, owner string, payload []byte) error
	// ReleaseWebhook gives a claimed row back, due again at due; attempted
	// counts an attempt (with lastErr) — false defers it without one.
	ReleaseWebhook(ctx context.Context, id, owner string, due time.Time, attempted bool, lastErr string) error
	// FinishWebhook deletes a claimed row (delivered, or given up on).
	FinishWebhook(ctx context.Context, id, owner string) error
	// ReleaseWebhookLeases ends every lease owner holds (a node restarting
	// under the same id takes its rows back at once); owner "" ends every
	// lease (a single node at start: no other sender exists).
	ReleaseWebhookLeases(ctx context.Context, owner string) error
	// WebhookBacklog counts the due rows.
	WebhookBacklog(ctx context.Context) (WebhookBacklog, error)
	// Unseen reports whether r still has notification id unseen: stored
	// for r, not deleted, not expired and not read. It returns the item
	// when so. This is the one place that decides whether a
	// notification.unseen fallback fires.
	Unseen(ctx context.Context, r notification.Recipient, id string) (notification.Item, bool, error)

	// PutWebhookEndpoint creates or replaces a tenant's endpoint.
	PutWebhookEndpoint(ctx context.Context, e WebhookEndpoint) error
	// WebhookEndpoints lists every tenant's endpoint.
	WebhookEndpoints(ctx context.Context) ([]WebhookEndpoint, error)
	// DeleteWebhookEndpoint removes a tenant's endpoint; ErrNotFound when none.
	DeleteWebhookEndpoint(ctx context.Context, tenant string) error
}

var (
	_ Outbox = (*SQLite)(nil)
	_ Outbox = (*Postgres)(nil)
)

// webhookID returns a new outbox id for time t.
func webhookID(ids *idSource, t time.Time) (string, error) {
	id, err := ids.next(t)
	if err != nil {
		return "", err
	}
	return "msg_" + id, nil
}

// prepareWebhooks validates evs and fills in ids and due times.
func prepareWebhooks(ids *idSource, evs []WebhookEvent, now time.Time) error {
	for i := range evs {
		e := &evs[i]
		if err := validateIdent("tenant", e.Tenant); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		if e.User != "" {
			if err := validateIdent("user", e.User); err != nil {
				return fmt.Errorf("%w: %w", ErrInvalid, err)
			}
		}
		if e.Type == "" {
			return fmt.Errorf("%w: webhook without a type", ErrInvalid)
		}
		if e.ID == "" {
			id, err := webhookID(ids, now)
			if err != nil {
				return err
			}
			e.ID = id
		}
		if e.CreatedAt.IsZero() {
			e.CreatedAt = now
		}
		if e.DueAt.IsZero() {
			e.DueAt = now
		}
	}
	return nil
}

// unseenEvents are the notification.unseen rows of a committed draft: one
// per distinct user, due FallbackAfter after creation. The event happens
// when it is due: that is its CreatedAt (from which the sender's retry
// window and the backlog's age count).
func unseenEvents(ids *idSource, n *notification.Notification, d *notification.Draft, users []string) ([]WebhookEvent, error) {
	if d.FallbackAfter <= 0 {
		return nil, nil
	}
	evs := make([]WebhookEvent, 0, len(users))
	for _, u := range users {
		id, err := webhookID(ids, n.CreatedAt)
		if err != nil {
			return nil, err
		}
		evs = append(evs, WebhookEvent{ID: id, Tenant: n.Tenant, User: u, Type: WebhookNotificationUnseen,
			NotificationID: n.ID, CreatedAt: n.CreatedAt.Add(d.FallbackAfter), DueAt: n.CreatedAt.Add(d.FallbackAfter)})
	}
	return evs, nil
}

// validateEndpoint checks an endpoint row (the API checks the URL's safety).
func validateEndpoint(e WebhookEndpoint) error {
	if err := validateIdent("tenant", e.Tenant); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if e.URL == "" || e.Secret == "" || hasNUL(e.URL, e.Secret) {
		return fmt.Errorf("%w: endpoint url and secret are required", ErrInvalid)
	}
	return nil
}

// Unseen implements Outbox for both engines, on the read path.
func (x *reader) Unseen(ctx context.Context, r notification.Recipient, id string) (it notification.Item, unseen bool, err error) {
	if !notification.ValidID(id) {
		return notification.Item{}, false, fmt.Errorf("store: unseen: %w: malformed id", ErrInvalid)
	}
	err = x.read(ctx, "unseen", r, func() error {
		items, err := x.rows.queryItems(ctx, x.readSQL.unseen, r.Tenant, r.User, id, x.clock().UnixMilli())
		if err != nil {
			return err
		}
		if len(items) == 1 && !items[0].Read {
			it, unseen = items[0], true
		}
		return nil
	})
	return it, unseen, err
}
