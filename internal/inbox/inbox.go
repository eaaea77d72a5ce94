// Package inbox is the read and write path shared by every API and
// transport. Writes commit through the store; the store's commit hook hands
// the committed events to the broker in commit order, so every node's hub
// updates the user's connections (other tabs and devices included). The
// Service is safe for concurrent use; it is immutable after New.
package inbox

import (
	"context"

	"github.com/heraldhq/herald/internal/notification"
	"github.com/heraldhq/herald/internal/store"
)

// Store is the part of the store the inbox writes and reads through.
type Store interface {
	Publish(ctx context.Context, req store.PublishRequest) (store.PublishResult, error)
	List(ctx context.Context, r notification.Recipient, q store.ListQuery) (store.Page, error)
	UnreadCount(ctx context.Context, r notification.Recipient) (int64, error)
	MarkRead(ctx context.Context, r notification.Recipient, ids []string) (store.Change, error)
	MarkAllRead(ctx context.Context, r notification.Recipient) (store.Change, error)
	Delete(ctx context.Context, r notification.Recipient, id string) (store.Change, error)
}

// Service runs inbox operations.
type Service struct {
	store Store // static
}

// New returns a Service over s.
func New(s Store) *Service { return &Service{store: s} }

// Publish stores the request; the store's commit hook fans it out.
func (s *Service) Publish(ctx context.Context, req store.PublishRequest) (store.PublishResult, error) {
	return s.store.Publish(ctx, req)
}

// List reads a page of r's notifications.
func (s *Service) List(ctx context.Context, r notification.Recipient, q store.ListQuery) (store.Page, error) {
	return s.store.List(ctx, r, q)
}

// UnreadCount is r's unread count.
func (s *Service) UnreadCount(ctx context.Context, r notification.Recipient) (int64, error) {
	return s.store.UnreadCount(ctx, r)
}

// MarkRead marks ids read for r.
func (s *Service) MarkRead(ctx context.Context, r notification.Recipient, ids []string) (store.Change, error) {
	return s.store.MarkRead(ctx, r, ids)
}

// MarkAllRead marks everything r sees read.
func (s *Service) MarkAllRead(ctx context.Context, r notification.Recipient) (store.Change, error) {
	return s.store.MarkAllRead(ctx, r)
}

// Delete hides id from r.
func (s *Service) Delete(ctx context.Context, r notification.Recipient, id string) (store.Change, error) {
	return s.store.Delete(ctx, r, id)
}
