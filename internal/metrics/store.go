package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/heraldhq/herald/internal/notification"
	"github.com/heraldhq/herald/internal/store"
)

// Store times every operation of a store.Store and counts its failures
// (not-found, invalid and idempotency mismatches are answers, not failures).
type Store struct {
	store.Store
	m *Metrics
}

// InstrumentStore wraps s.
func (m *Metrics) InstrumentStore(s store.Store) *Store { return &Store{Store: s, m: m} }

func (s *Store) observe(op string, start time.Time, err error) {
	s.m.StoreOp.WithLabelValues(op).Observe(time.Since(start).Seconds())
	if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrInvalid) && !errors.Is(err, store.ErrIdempotencyMismatch) {
		s.m.StoreErrors.WithLabelValues(op).Inc()
	}
}

// Publish implements store.Store.
func (s *Store) Publish(ctx context.Context, req store.PublishRequest) (store.PublishResult, error) {
	start := time.Now()
	res, err := s.Store.Publish(ctx, req)
	s.observe("publish", start, err)
	if err == nil && !res.Replayed {
		s.m.Published.Add(float64(len(res.IDs)))
	}
	return res, err
}

// Since implements store.Store.
func (s *Store) Since(ctx context.Context, r notification.Recipient, pos notification.Position, limit int) ([]notification.Item, bool, error) {
	start := time.Now()
	items, more, err := s.Store.Since(ctx, r, pos, limit)
	s.observe("since", start, err)
	return items, more, err
}

// Head implements store.Store.
func (s *Store) Head(ctx context.Context, r notification.Recipient) (notification.Position, error) {
	start := time.Now()
	p, err := s.Store.Head(ctx, r)
	s.observe("head", start, err)
	return p, err
}

// HeadCounts implements store.Store.
func (s *Store) HeadCounts(ctx context.Context, r notification.Recipient) (notification.Position, store.Counts, error) {
	start := time.Now()
	p, c, err := s.Store.HeadCounts(ctx, r)
	s.observe("head", start, err)
	return p, c, err
}

// Counts implements store.Store.
func (s *Store) Counts(ctx context.Context, r notification.Recipient) (store.Counts, error) {
	start := time.Now()
	c, err := s.Store.Counts(ctx, r)
	s.observe("unread_count", start, err)
	return c, err
}

// MarkSeen implements store.Store.
func (s *Store) MarkSeen(ctx context.Context, r notification.Recipient, upTo *notification.Position) (store.Change, error) {
	start := time.Now()
	c, err := s.Store.MarkSeen(ctx, r, upTo)
	s.observe("mark_seen", start, err)
	return c, err
}

// Archive implements store.Store.
func (s *Store) Archive(ctx context.Context, r notification.Recipient, ids []string, all bool) (store.Change, error) {
	start := time.Now()
	c, err := s.Store.Archive(ctx, r, ids, all)
	s.observe("archive", start, err)
	return c, err
}

// Unarchive implements store.Store.
func (s *Store) Unarchive(ctx context.Context, r notification.Recipient, ids []string, all bool) (store.Change, error) {
	start := time.Now()
	c, err := s.Store.Unarchive(ctx, r, ids, all)
	s.observe("unarchive", start, err)
	return c, err
}

// SetPreferences implements store.Store.
func (s *Store) SetPreferences(ctx context.Context, r notification.Recipient, p notification.Preferences) (store.Change, error) {
	start := time.Now()
	c, err := s.Store.SetPreferences(ctx, r, p)
	s.observe("set_preferences", start, err)
	return c, err
}

// List implements store.Store.
func (s *Store) List(ctx context.Context, r notification.Recipient, q store.ListQuery) (store.Page, error) {
	start := time.Now()
	p, err := s.Store.List(ctx, r, q)
	s.observe("list", start, err)
	return p, err
}

// UnreadCount implements store.Store.
func (s *Store) UnreadCount(ctx context.Context, r notification.Recipient) (int64, error) {
	start := time.Now()
	n, err := s.Store.UnreadCount(ctx, r)
	s.observe("unread_count", start, err)
	return n, err
}

// MarkRead implements store.Store.
func (s *Store) MarkRead(ctx context.Context, r notification.Recipient, ids []string) (store.Change, error) {
	start := time.Now()
	c, err := s.Store.MarkRead(ctx, r, ids)
	s.observe("mark_read", start, err)
	return c, err
}

// MarkAllRead implements store.Store.
func (s *Store) MarkAllRead(ctx context.Context, r notification.Recipient) (store.Change, error) {
	start := time.Now()
	c, err := s.Store.MarkAllRead(ctx, r)
	s.observe("mark_all_read", start, err)
	return c, err
}

// Delete implements store.Store.
func (s *Store) Delete(ctx context.Context, r notification.Recipient, id string) (store.Change, error) {
	start := time.Now()
	c, err := s.Store.Delete(ctx, r, id)
	s.observe("delete", start, err)
	return c, err
}

// Publisher is what a broker offers for publishing.
type Publisher interface {
	Publish(ctx context.Context, ev *notification.Event) error
}

// Broker times broker publishes.
type Broker struct {
	Publisher
	m *Metrics
}

// InstrumentBroker wraps b's Publish.
func (m *Metrics) InstrumentBroker(b Publisher) *Broker { return &Broker{Publisher: b, m: m} }

// Publish implements inbox.Publisher.
func (b *Broker) Publish(ctx context.Context, ev *notification.Event) error {
	start := time.Now()
	err := b.Publisher.Publish(ctx, ev)
	b.m.BrokerOp.WithLabelValues("publish").Observe(time.Since(start).Seconds())
	if err != nil {
		b.m.BrokerErrors.WithLabelValues("publish").Inc()
	}
	return err
}
