// Package inbox is the write path shared by every API and transport: persist
// first, then fan out. Each operation commits through the store and, once
// committed, publishes the resulting events to the broker, so every node's
// hub updates the user's connections (other tabs and devices included).
package inbox

import (
	"context"
	"log/slog"
	"time"

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

// Publisher fans committed events out (a broker). When the store itself
// hands committed events to the broker in commit order (the store's commit
// hook), the Service is built with a nil Publisher and fans nothing out.
type Publisher interface {
	Publish(ctx context.Context, ev *notification.Event) error
}

// Service is safe for concurrent use; all fields are static after New.
type Service struct {
	store Store
	pub   Publisher
	log   *slog.Logger
}

// New returns a Service.
func New(s Store, p Publisher, log *slog.Logger) *Service {
	return &Service{store: s, pub: p, log: log}
}

// fanoutTimeout bounds the wait for a full broker queue after a commit. The
// commit stands either way: a client that misses the event catches up from
// the store on its next event or reconnect.
const fanoutTimeout = 5 * time.Second

func (s *Service) fanout(evs ...*notification.Event) {
	if s.pub == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), fanoutTimeout)
	defer cancel()
	for _, ev := range evs {
		if ev == nil {
			continue
		}
		if err := s.pub.Publish(ctx, ev); err != nil {
			s.log.Warn("fan-out failed after commit; clients will catch up from the store", "tenant", ev.Tenant, "err", err)
		}
	}
}

// Publish stores the request and fans its events out.
func (s *Service) Publish(ctx context.Context, req store.PublishRequest) (store.PublishResult, error) {
	res, err := s.store.Publish(ctx, req)
	if err != nil {
		return res, err
	}
	s.fanout(res.Events...)
	return res, nil
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
	return s.change(s.store.MarkRead(ctx, r, ids))
}

// MarkAllRead marks everything r sees read.
func (s *Service) MarkAllRead(ctx context.Context, r notification.Recipient) (store.Change, error) {
	return s.change(s.store.MarkAllRead(ctx, r))
}

// Delete hides id from r.
func (s *Service) Delete(ctx context.Context, r notification.Recipient, id string) (store.Change, error) {
	return s.change(s.store.Delete(ctx, r, id))
}

func (s *Service) change(ch store.Change, err error) (store.Change, error) {
	if err != nil {
		return ch, err
	}
	s.fanout(ch.Event)
	return ch, nil
}
