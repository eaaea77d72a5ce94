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
	Counts(ctx context.Context, r notification.Recipient) (store.Counts, error)
	MarkSeen(ctx context.Context, r notification.Recipient, upTo *notification.Position) (store.Change, error)
	IsUnseen(ctx context.Context, r notification.Recipient, id string) (bool, error)
	Archive(ctx context.Context, r notification.Recipient, ids []string, all bool) (store.Change, error)
	Unarchive(ctx context.Context, r notification.Recipient, ids []string, all bool) (store.Change, error)
	Preferences(ctx context.Context, r notification.Recipient) (notification.Preferences, error)
	SetPreferences(ctx context.Context, r notification.Recipient, p notification.Preferences) (store.Change, error)
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

// Counts are r's unread, unseen and by-category counts.
func (s *Service) Counts(ctx context.Context, r notification.Recipient) (store.Counts, error) {
	return s.store.Counts(ctx, r)
}

// MarkSeen moves r's seen mark up to upTo (nil: everything).
func (s *Service) MarkSeen(ctx context.Context, r notification.Recipient, upTo *notification.Position) (store.Change, error) {
	return s.store.MarkSeen(ctx, r, upTo)
}

// IsUnseen reports whether id is still in r's inbox, unread and unseen:
// the one check of "has the user not seen this yet" (webhooks use it).
func (s *Service) IsUnseen(ctx context.Context, r notification.Recipient, id string) (bool, error) {
	return s.store.IsUnseen(ctx, r, id)
}

// Archive archives ids (or everything, all) for r.
func (s *Service) Archive(ctx context.Context, r notification.Recipient, ids []string, all bool) (store.Change, error) {
	return s.store.Archive(ctx, r, ids, all)
}

// Unarchive puts ids (or everything, all) back in r's inbox.
func (s *Service) Unarchive(ctx context.Context, r notification.Recipient, ids []string, all bool) (store.Change, error) {
	return s.store.Unarchive(ctx, r, ids, all)
}

// Preferences are r's preferences.
func (s *Service) Preferences(ctx context.Context, r notification.Recipient) (notification.Preferences, error) {
	return s.store.Preferences(ctx, r)
}

// SetPreferences replaces r's preferences.
func (s *Service) SetPreferences(ctx context.Context, r notification.Recipient, p notification.Preferences) (store.Change, error) {
	return s.store.SetPreferences(ctx, r, p)
}
