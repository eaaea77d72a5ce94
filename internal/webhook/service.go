package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald/internal/audit"
	"github.com/heraldhq/herald/internal/defaults"
	"github.com/heraldhq/herald/internal/notification"
	"github.com/heraldhq/herald/internal/store"
)

// Outbox is what the sender needs of the store.
type Outbox interface {
	EnqueueWebhooks(ctx context.Context, evs []store.WebhookEvent) error
	ClaimWebhooks(ctx context.Context, owner string, lease time.Duration, limit int) ([]store.WebhookEvent, error)
	SaveWebhookPayload(ctx context.Context, id, owner string, payload []byte) error
	ReleaseWebhook(ctx context.Context, id, owner string, due time.Time, attempted bool, lastErr string) error
	FinishWebhook(ctx context.Context, id, owner string) error
	ReleaseWebhookLeases(ctx context.Context, owner string) error
	WebhookBacklog(ctx context.Context) (store.WebhookBacklog, error)
	Unseen(ctx context.Context, r notification.Recipient, id string) (notification.Item, bool, error)
	WebhookEndpoints(ctx context.Context) ([]store.WebhookEndpoint, error)
}

// Defaults of Config.
const (
	DefaultLease           = time.Minute
	DefaultPoll            = time.Second
	DefaultBatch           = 64
	DefaultPerEndpoint     = 8
	DefaultRetryBase       = 5 * time.Second
	DefaultRetryMax        = time.Hour
	DefaultRetryWindow     = 24 * time.Hour
	DefaultEndpointRefresh = 10 * time.Second
	DefaultStatsInterval   = 5 * time.Second
)

// Config tunes the sender. The zero value means the defaults and no
// global endpoint.
type Config struct {
	// URL and Secret are the global endpoint (--webhook-url,
	// --webhook-secret), used for tenants without their own; empty: none.
	URL    string
	Secret string
	// NotificationRead enables notification.read events (off by default).
	NotificationRead bool
	// AllowLinkLocal allows link-local and cloud-metadata addresses.
	AllowLinkLocal bool
	// Owner names this sender in leases (the node id). Required.
	Owner string
	// SingleSender: no other node sends from this outbox (SQLite), so
	// Start takes back every lease, not only Owner's.
	SingleSender bool
	// Lease: how long a claimed row is this sender's; another node takes
	// it over after. At least twice AttemptTimeout. Default DefaultLease.
	Lease time.Duration
	// Poll: how often the outbox is checked for due rows (an event of this
	// node wakes the sender at once). Default DefaultPoll.
	Poll time.Duration
	// Batch bounds the attempts in flight on this node. Default DefaultBatch.
	Batch int
	// PerEndpoint bounds the attempts in flight to one endpoint URL on
	// this node. Default DefaultPerEndpoint.
	PerEndpoint int
	// AttemptTimeout bounds one attempt. Default DefaultAttemptTimeout.
	AttemptTimeout time.Duration
	// RetryBase, RetryMax: the delay after the n-th failed attempt is
	// RetryBase*2^(n-1), at most RetryMax, with jitter (half to all of it).
	RetryBase, RetryMax time.Duration
	// RetryWindow: an event not delivered this long after it happened is
	// dropped (webhook_dropped). Default DefaultRetryWindow (24 h).
	RetryWindow time.Duration
	// EndpointRefresh: how often tenants' endpoints are re-read (changes
	// made through another node). Default DefaultEndpointRefresh.
	EndpointRefresh time.Duration
	// StatsInterval: how often the backlog gauges are refreshed.
	StatsInterval time.Duration
	Logger        *slog.Logger
	Audit         *audit.Recorder
	// Registerer receives the metrics; nil: not registered.
	Registerer prometheus.Registerer
}

func (c *Config) setDefaults() {
	defaults.Positive(&c.Lease, DefaultLease)
	defaults.Positive(&c.Poll, DefaultPoll)
	defaults.Positive(&c.AttemptTimeout, DefaultAttemptTimeout)
	defaults.Positive(&c.RetryBase, DefaultRetryBase)
	defaults.Positive(&c.RetryMax, DefaultRetryMax)
	defaults.Positive(&c.RetryWindow, DefaultRetryWindow)
	defaults.Positive(&c.EndpointRefresh, DefaultEndpointRefresh)
	defaults.Positive(&c.StatsInterval, DefaultStatsInterval)
	defaults.Positive(&c.Batch, DefaultBatch)
	defaults.Positive(&c.PerEndpoint, DefaultPerEndpoint)
	defaults.Logger(&c.Logger)
	if c.Audit == nil {
		c.Audit = audit.New(c.Logger, nil)
	}
}

// Validate checks the settings before anything starts.
func (c *Config) Validate() error {
	var errs []error
	if (c.URL == "") != (c.Secret == "") {
		errs = append(errs, errors.New("webhook: --webhook-url and --webhook-secret go together"))
	}
	if c.URL != "" {
		if err := CheckURL(c.URL, c.AllowLinkLocal); err != nil {
			errs = append(errs, fmt.Errorf("webhook url: %w", err))
		}
		if err := CheckSecret(c.Secret); err != nil {
			errs = append(errs, err)
		}
	}
	timeout, lease := c.AttemptTimeout, c.Lease
	if timeout <= 0 {
		timeout = DefaultAttemptTimeout
	}
	if lease <= 0 {
		lease = DefaultLease
	}
	if lease < 2*timeout {
		errs = append(errs, errors.New("webhook: the lease must be at least twice the attempt timeout"))
	}
	return errors.Join(errs...)
}

// endpoint is a resolved receiver. Immutable.
type endpoint struct {
	url    string
	signer *Signer
}

// Service sends webhooks from the outbox.
type Service struct {
	cfg    Config // static after New
	out    Outbox
	client *http.Client
	global *endpoint // nil: none
	log    *slog.Logger
	audit  *audit.Recorder
	m      *serviceMetrics

	mu      sync.RWMutex
	tenants map[string]*endpoint     // guarded by mu
	sems    map[string]chan struct{} // per endpoint URL; guarded by mu

	slots  chan struct{} // attempts in flight on this node
	wake   chan struct{}
	async  chan Body       // Offer's queue
	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// New returns a sender over out; Start runs it.
func New(cfg Config, out Outbox) (*Service, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Owner == "" || out == nil {
		return nil, errors.New("webhook: an owner and an outbox are required")
	}
	s := &Service{cfg: cfg, out: out, client: NewClient(cfg.AttemptTimeout, cfg.AllowLinkLocal),
		log: cfg.Logger, audit: cfg.Audit, m: newServiceMetrics(cfg.Registerer),
		tenants: map[string]*endpoint{}, sems: map[string]chan struct{}{},
		slots: make(chan struct{}, cfg.Batch), wake: make(chan struct{}, 1), async: make(chan Body, offerQueue)}
	if cfg.URL != "" {
		sg, err := NewSigner(cfg.Secret)
		if err != nil {
			return nil, err
		}
		s.global = &endpoint{url: cfg.URL, signer: sg}
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Start takes back this owner's leases (a restart), loads the tenants'
// endpoints and starts the loops.
func (s *Service) Start(ctx context.Context) error {
	owner := s.cfg.Owner
	if s.cfg.SingleSender {
		owner = ""
	}
	if err := s.out.ReleaseWebhookLeases(ctx, owner); err != nil {
		return fmt.Errorf("webhook: start: %w", err)
	}
	if err := s.Reload(ctx); err != nil {
		return fmt.Errorf("webhook: start: %w", err)
	}
	s.wg.Add(4)
	go s.emitOffered()
	go s.loop(s.cfg.Poll, s.wake, s.pump)
	go s.loop(s.cfg.EndpointRefresh, nil, func() {
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.EndpointRefresh)
		defer cancel()
		if err := s.Reload(ctx); err != nil && s.ctx.Err() == nil {
			s.log.Warn("webhook: endpoints not reloaded", "err", err)
		}
	})
	go s.loop(s.cfg.StatsInterval, nil, s.stats)
	return nil
}

// loop runs fn at every tick of every and at every token on wake, until Close.
func (s *Service) loop(every time.Duration, wake <-chan struct{}, fn func()) {
	defer s.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	fn()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		case <-wake:
		}
		fn()
	}
}

// Close stops the loops and waits for the attempts in flight (an attempt
// cut short goes back to the outbox without counting).
func (s *Service) Close() error {
	s.once.Do(func() {
		s.cancel()
		s.wg.Wait()
		s.client.CloseIdleConnections()
	})
	return nil
}

// Wake makes the sender check the outbox now.
func (s *Service) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Reload re-reads the tenants' endpoints (the admin API calls it after a
// change; other nodes see the change at their next refresh).
func (s *Service) Reload(ctx context.Context) error {
	list, err := s.out.WebhookEndpoints(ctx)
	if err != nil {
		return err
	}
	m := make(map[string]*endpoint, len(list))
	for _, e := range list {
		sg, err := NewSigner(e.Secret)
		if err != nil {
			s.log.Warn("webhook: tenant endpoint skipped: bad secret", "tenant", e.Tenant)
			continue
		}
		m[e.Tenant] = &endpoint{url: e.URL, signer: sg}
	}
	s.mu.Lock()
	s.tenants = m
	s.mu.Unlock()
	return nil
}

// endpointFor is tenant's endpoint: its own, else the global one, else nil.
func (s *Service) endpointFor(tenant string) *endpoint {
	s.mu.RLock()
	ep := s.tenants[tenant]
	s.mu.RUnlock()
	if ep != nil {
		return ep
	}
	return s.global
}

// Enabled reports whether tenant's events go anywhere.
func (s *Service) Enabled(tenant string) bool { return s.endpointFor(tenant) != nil }

// NotificationRead reports whether notification.read events are on.
func (s *Service) NotificationRead() bool { return s.cfg.NotificationRead }

// NewID returns a fresh webhook-id.
func NewID() string { return "msg_" + ulid.Make().String() }

// Emit writes events to the outbox (those of tenants without an endpoint
// are skipped) and wakes the sender. Each body gets its id here.
func (s *Service) Emit(ctx context.Context, bodies ...Body) error {
	evs := make([]store.WebhookEvent, 0, len(bodies))
	for i := range bodies {
		b := &bodies[i]
		if !s.Enabled(b.Tenant) {
			continue
		}
		if b.ID == "" {
			b.ID = NewID()
		}
		if b.CreatedAt.IsZero() {
			b.CreatedAt = time.Now()
		}
		evs = append(evs, store.WebhookEvent{ID: b.ID, Tenant: b.Tenant, User: b.User, Type: b.Type,
			Payload: b.Encode(), CreatedAt: b.CreatedAt})
	}
	if len(evs) == 0 {
		return nil
	}
	if err := s.out.EnqueueWebhooks(ctx, evs); err != nil {
		return err
	}
	s.Wake()
	return nil
}

// offerQueue bounds the events Offer holds before they are written.
const offerQueue = 1024

// Offer queues an event to be written to the outbox without waiting (for
// callers that must not block or call the store, like the store's commit
// hook). It reports false, and counts the event dropped, when the queue is
// full. Events still queued when the node stops are lost: Offer is for
// best-effort events (notification.read).
func (s *Service) Offer(b Body) bool {
	if !s.Enabled(b.Tenant) {
		return true
	}
	select {
	case s.async <- b:
		return true
	default:
		s.m.dropped.WithLabelValues("queue_full").Inc()
		return false
	}
}

// emitOffered writes offered events, one at a time.
func (s *Service) emitOffered() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case b := <-s.async:
			ctx, cancel := context.WithTimeout(s.ctx, s.cfg.AttemptTimeout)
			if err := s.Emit(ctx, b); err != nil && s.ctx.Err() == nil {
				s.log.Warn("webhook: event not written to the outbox", "type", b.Type, "tenant", b.Tenant, "err", err)
			}
			cancel()
		}
	}
}

// pump claims as many due rows as there are free slots and starts them,
// until the outbox has no more due rows or the slots are full.
func (s *Service) pump() {
	for s.ctx.Err() == nil {
		free := cap(s.slots) - len(s.slots)
		if free == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.AttemptTimeout)
		evs, err := s.out.ClaimWebhooks(ctx, s.cfg.Owner, s.cfg.Lease, free)
		cancel()
		if err != nil {
			if s.ctx.Err() == nil {
				s.log.Warn("webhook: claim failed", "err", err)
			}
			return
		}
		for i := range evs {
			s.dispatch(evs[i])
		}
		if len(evs) < free {
			return
		}
	}
}

// dispatch starts the attempt of a claimed row, or defers it when its
// endpoint is at its concurrency bound (it then goes behind the rows due
// before it, so other endpoints are not starved).
func (s *Service) dispatch(ev store.WebhookEvent) {
	ep := s.endpointFor(ev.Tenant)
	if ep == nil {
		s.finish(ev)
		s.m.dropped.WithLabelValues("no_endpoint").Inc()
		s.audit.Warn(audit.WebhookDropped, "webhook dropped: no endpoint", "id", ev.ID, "tenant", ev.Tenant,
			"type", ev.Type, "reason", "no_endpoint")
		return
	}
	sem := s.sem(ep.url)
	select {
	case sem <- struct{}{}:
	default:
		s.release(ev, time.Now().Add(s.cfg.Poll), false, "endpoint busy")
		s.m.deferred.Inc()
		return
	}
	s.slots <- struct{}{} // never blocks: pump claimed at most the free slots
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() { <-sem; <-s.slots }()
		s.attempt(ev, ep)
	}()
}

func (s *Service) sem(url string) chan struct{} {
	s.mu.RLock()
	c := s.sems[url]
	s.mu.RUnlock()
	if c != nil {
		return c
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c = s.sems[url]; c == nil {
		c = make(chan struct{}, s.cfg.PerEndpoint)
		s.sems[url] = c
	}
	return c
}

// storeCtx bounds a store call that must happen even while closing.
func storeCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 5*time.Second)
}

func (s *Service) finish(ev store.WebhookEvent) {
	ctx, cancel := storeCtx()
	defer cancel()
	if err := s.out.FinishWebhook(ctx, ev.ID, s.cfg.Owner); err != nil {
		s.log.Warn("webhook: finish failed (it may be sent again)", "id", ev.ID, "err", err)
	}
}

func (s *Service) release(ev store.WebhookEvent, due time.Time, attempted bool, lastErr string) {
	ctx, cancel := storeCtx()
	defer cancel()
	if err := s.out.ReleaseWebhook(ctx, ev.ID, s.cfg.Owner, due, attempted, lastErr); err != nil {
		s.log.Warn("webhook: release failed (retried when its lease runs out)", "id", ev.ID, "err", err)
	}
}
