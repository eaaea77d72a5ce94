package broker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/heraldhq/herald/internal/audit"
	"github.com/heraldhq/herald/internal/defaults"
	"github.com/heraldhq/herald/internal/notification"
)

// RedisConfig configures the Redis broker. Zero values mean the documented
// defaults. Every node of a cluster must use the same URL (the same Redis),
// Prefix, Partitions and Sharded: they decide which channel carries a stream.
type RedisConfig struct {
	// URL is a redis:// or rediss:// URL (go-redis ParseURL syntax, e.g.
	// redis://:password@host:6379/0?dial_timeout=2s). Required.
	URL string
	// Prefix of every channel name. Default "herald". Must not contain braces.
	Prefix string
	// Partitions is the number of channels events are spread over: each is
	// "<prefix>:{p<N>}", hash-tagged so that Redis Cluster puts it on one slot.
	// Default 64.
	Partitions int
	// Sharded uses SPUBLISH/SSUBSCRIBE (Redis 7 sharded pub/sub) instead of
	// PUBLISH/SUBSCRIBE.
	Sharded bool
	// ProbeInterval: how often the node publishes a probe to its own channel.
	// Default 1 s.
	ProbeInterval time.Duration
	// ProbeTimeout: Healthy fails when a probe has not come back within it.
	// Default 3 s.
	ProbeTimeout time.Duration
	// PublishTimeout bounds one Publish (it runs after the store commit, so a
	// failure only delays live fan-out). Default 500 ms.
	PublishTimeout time.Duration
	// ReconnectMin and ReconnectMax bound the jittered exponential backoff
	// between subscription attempts. Defaults 100 ms and 5 s.
	ReconnectMin time.Duration
	ReconnectMax time.Duration
	// StartTimeout bounds how long NewRedis waits for the first subscription
	// (it also stops at ctx's end). Default 10 s.
	StartTimeout time.Duration
	// Handler receives every event, in order per partition, on one
	// delivery goroutine, fed by the subscriber through a queue of
	// DeliveryQueue events (redis_deliver.go). Required.
	Handler Handler
	// DeliveryQueue bounds the events received and waiting for Handler.
	// Default DefaultDeliveryQueue.
	DeliveryQueue int
	// OnResubscribe is called after every confirmed (re)subscription,
	// including the first, and when a node reports that some of its publishes
	// were lost (see Publish): live events may have been missed, so the node
	// must catch its clients up from the store (hub.CatchUpAll). It runs on
	// the subscriber goroutine, before any later event is queued, and must
	// not block.
	OnResubscribe func()
	// NodeID names this node's probe channel "<prefix>:{node-<id>}". Default
	// a random id. Must be unique in the cluster and contain no braces.
	NodeID string
	Logger *slog.Logger
	// Audit records audit events; nil: logged through Logger, not counted.
	Audit *audit.Recorder
}

func (c *RedisConfig) setDefaults() {
	if c.Prefix == "" {
		c.Prefix = "herald"
	}
	if c.Partitions == 0 {
		c.Partitions = 64
	}
	if c.ProbeInterval <= 0 {
		c.ProbeInterval = time.Second
	}
	if c.ProbeTimeout <= 0 {
		c.ProbeTimeout = 3 * time.Second
	}
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = 500 * time.Millisecond
	}
	if c.ReconnectMin <= 0 {
		c.ReconnectMin = 100 * time.Millisecond
	}
	if c.ReconnectMax <= 0 {
		c.ReconnectMax = 5 * time.Second
	}
	if c.ReconnectMax < c.ReconnectMin {
		c.ReconnectMax = c.ReconnectMin
	}
	if c.StartTimeout <= 0 {
		c.StartTimeout = 10 * time.Second
	}
	if c.DeliveryQueue <= 0 {
		c.DeliveryQueue = DefaultDeliveryQueue
	}
	if c.NodeID == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		c.NodeID = hex.EncodeToString(b[:])
	}
	defaults.Logger(&c.Logger)
	if c.Audit == nil {
		c.Audit = audit.New(c.Logger, nil)
	}
}

// Validate checks the configuration (after defaults).
func (c *RedisConfig) Validate() error {
	var errs []error
	if c.URL == "" {
		errs = append(errs, errors.New("redis: URL is required"))
	}
	if c.Handler == nil {
		errs = append(errs, errors.New("redis: Handler is required"))
	}
	if c.Partitions < 1 || c.Partitions > 16384 {
		errs = append(errs, fmt.Errorf("redis: partitions %d out of 1..16384", c.Partitions))
	}
	if strings.ContainsAny(c.Prefix, "{}") {
		errs = append(errs, fmt.Errorf("redis: prefix %q must not contain braces (they are hash tags)", c.Prefix))
	}
	if strings.ContainsAny(c.NodeID, "{}") {
		errs = append(errs, fmt.Errorf("redis: node id %q must not contain braces", c.NodeID))
	}
	return errors.Join(errs...)
}

// ErrUnavailable is returned by Publish when Redis is known to be down (the
// subscription is lost or a probe is overdue, and a publish failed within the
// last second), so that publishers do not each wait for a timeout during an
// outage.
var ErrUnavailable = errors.New("broker: redis unavailable")

// probeRing is how many probe send times are kept; older unanswered probes
// are long past any sensible ProbeTimeout.
const probeRing = 64

// Redis fans events out between nodes through Redis pub/sub. Each node holds
// one subscription connection to every partition channel and its own probe
// channel; one goroutine reads it, decodes each message once and calls the
// handler in order. Another sends probes, and a few flushers send batched
// publishes. Safe for concurrent use.
type Redis struct {
	cfg       RedisConfig // static after NewRedis
	log       *slog.Logger
	client    *redis.Client
	channels  []string // partition channels, by partition; static
	probeChan string   // static
	subCount  int      // channels + probe channel; static

	ctx       context.Context // cancelled by Close
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	ready     chan struct{}             // closed at the first confirmed subscription
	deliver   chan *notification.Event  // received events waiting for the handler
	dwg       sync.WaitGroup            // the delivery goroutine
	stall     stallClock                // time the subscriber spent waiting for room in deliver
	probe     chan struct{}             // asks the prober for a probe now
	pubq      [pubFlushers]chan *pubReq // publishes waiting for each flusher
	fwg       sync.WaitGroup            // flushers
	stopFlush chan struct{}             // closed by Close: flush what is queued and stop
	qmu       sync.RWMutex              // Close takes it to stop enqueues (closed)

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error

	subscribed atomic.Bool
	mu         sync.Mutex
	ps         *redis.PubSub // guarded by mu: the current session
	killErr    error         // guarded by mu: why the prober ended the current session
	downSince  time.Time     // guarded by mu
	downErr    error         // guarded by mu: why the subscription is down

	pmu        sync.Mutex
	probeSent  uint64               // guarded by pmu: last probe seq sent (attempted)
	probeAcked uint64               // guarded by pmu: last probe seq received
	probeAt    [probeRing]time.Time // guarded by pmu: send time by seq%probeRing
	probeErr   error                // guarded by pmu: last probe publish error
	probeOK    [probeRing]bool      // guarded by pmu: Redis accepted the probe, by seq%probeRing
	rtt        atomic.Int64         // last probe round trip, ns
	probeLate  atomic.Bool          // a probe is overdue (set by the prober)

	failSeq    atomic.Uint64 // publishes failed so far
	kickedSeq  atomic.Uint64 // failSeq covered by a kick that reached Redis
	lastFailAt atomic.Int64  // unix ns of the last failed publish

	published, publishErrs, received, decodeErrs, resubscribes, kicks atomic.Uint64
}

var _ Broker = (*Redis)(nil)

// NewRedis connects to Redis, subscribes to every partition and its probe
// channel and returns once the subscription is confirmed (or fails when ctx
// ends or StartTimeout passes first). From then on it reconnects by itself.
func NewRedis(ctx context.Context, cfg RedisConfig) (*Redis, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opt, err := redis.ParseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	// Deadlines from contexts bound every command (Publish's timeout), and
	// a dial to a black-holed server does not hold a reconnect for long.
	opt.ContextTimeoutEnabled = true
	if opt.DialTimeout == 0 {
		opt.DialTimeout = 2 * time.Second
	}
	// One retry (on a fresh connection after a stale one) is useful; more
	// only delay the failure a publish reports when Redis is down.
	if opt.MaxRetries == 0 {
		opt.MaxRetries = 1
	}
	if opt.DialerRetries == 0 { // go-redis default: 5 dials 100 ms apart
		opt.DialerRetries = 1
	}
	// Not a Redis Enterprise maintenance-aware deployment: no extra handshake.
	opt.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	if opt.ClientName == "" {
		opt.ClientName = "herald-" + cfg.NodeID
	}

	r := &Redis{
		cfg:       cfg,
		log:       cfg.Logger.With("component", "broker", "node", cfg.NodeID),
		client:    redis.NewClient(opt),
		channels:  make([]string, cfg.Partitions),
		probeChan: cfg.Prefix + ":{node-" + cfg.NodeID + "}",
		ready:     make(chan struct{}),
		deliver:   make(chan *notification.Event, cfg.DeliveryQueue),
		probe:     make(chan struct{}, 1),
		stopFlush: make(chan struct{}),
	}
	for i := range r.channels {
		r.channels[i] = cfg.Prefix + ":{p" + strconv.Itoa(i) + "}"
	}
	r.subCount = len(r.channels) + 1
	r.downErr = errors.New("not subscribed yet")
	r.downSince = time.Now()
	r.ctx, r.cancel = context.WithCancel(context.Background())

	pctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()
	if err := r.client.Ping(pctx).Err(); err != nil {
		_ = r.client.Close()
		r.cancel()
		return nil, fmt.Errorf("redis: ping %s: %w", opt.Addr, err)
	}
	r.dwg.Add(1)
	go r.deliverLoop()
	r.wg.Add(2)
	go r.subscribeLoop()
	go r.probeLoop()
	r.fwg.Add(pubFlushers)
	for i := range r.pubq {
		r.pubq[i] = make(chan *pubReq, pubQueue)
		go r.flusher(r.pubq[i])
	}
	select {
	case <-r.ready:
		return r, nil
	case <-pctx.Done():
		err := r.Healthy(context.Background())
		_ = r.Close()
		return nil, fmt.Errorf("redis: first subscription: %w (%v)", pctx.Err(), err)
	}
}

// Healthy reports whether the delivery path works: the subscription is
// confirmed and no probe sent to this node's own channel has been waiting
// longer than ProbeTimeout. The error says why not.
func (r *Redis) Healthy(context.Context) error {
	if r.closed.Load() {
		return ErrClosed
	}
	if !r.subscribed.Load() {
		r.mu.Lock()
		since, why := r.downSince, r.downErr
		r.mu.Unlock()
		return fmt.Errorf("broker: redis subscription down for %s: %v", time.Since(since).Round(time.Millisecond), why)
	}
	return r.probeOverdue()
}

// probeOverdue reports a probe waiting for longer than ProbeTimeout.
func (r *Redis) probeOverdue() error {
	r.pmu.Lock()
	defer r.pmu.Unlock()
	if r.probeSent <= r.probeAcked {
		return nil
	}
	if r.stall.stalled() {
		return nil // the subscriber waits for this node's fan-out, not for Redis
	}
	waiting := time.Duration(1<<63 - 1)
	if r.probeSent-r.probeAcked < probeRing {
		waiting = r.stall.since(r.probeAt[(r.probeAcked+1)%probeRing])
	}
	if waiting <= r.cfg.ProbeTimeout {
		return nil
	}
	if r.probeErr != nil {
		return fmt.Errorf("broker: no redis probe back within %s: %v", r.cfg.ProbeTimeout, r.probeErr)
	}
	return fmt.Errorf("broker: no redis probe back within %s", r.cfg.ProbeTimeout)
}

// LastProbeRTT is the round trip of the last probe that came back (0 before
// the first).
func (r *Redis) LastProbeRTT() time.Duration { return time.Duration(r.rtt.Load()) }

// RedisStats are counters for metrics.
type RedisStats struct {
	Subscribed    bool
	Published     uint64 // messages accepted by Redis
	PublishErrors uint64 // failed or refused Publish calls
	Received      uint64 // event messages decoded and handed to the handler
	DecodeErrors  uint64
	Resubscribes  uint64 // confirmed subscriptions after the first
	Kicks         uint64 // "publishes were lost" notices received
	LastProbeRTT  time.Duration
}

// Stats returns the current counters.
func (r *Redis) Stats() RedisStats {
	return RedisStats{
		Subscribed:    r.subscribed.Load(),
		Published:     r.published.Load(),
		PublishErrors: r.publishErrs.Load(),
		Received:      r.received.Load(),
		DecodeErrors:  r.decodeErrs.Load(),
		Resubscribes:  r.resubscribes.Load(),
		Kicks:         r.kicks.Load(),
		LastProbeRTT:  r.LastProbeRTT(),
	}
}

// Client is the broker's go-redis client, for other users of the same Redis
// (the cluster-wide limits). It is closed by Close.
func (r *Redis) Client() *redis.Client { return r.client }

// NodeID is the id this node's probe channel is named after.
func (r *Redis) NodeID() string { return r.cfg.NodeID }

// Close refuses new publishes, sends the queued ones (within
// PublishTimeout), stops the prober, drops the subscription (closing its
// connection unsubscribes) and closes the Redis client. Events still in
// Redis are not delivered. Idempotent; every goroutine has stopped when it
// returns.
func (r *Redis) Close() error {
	r.closeOnce.Do(func() {
		r.qmu.Lock()
		r.closed.Store(true)
		r.qmu.Unlock()
		close(r.stopFlush) // send what is queued, within PublishTimeout
		r.fwg.Wait()
		r.cancel()
		r.mu.Lock()
		ps := r.ps
		r.ps = nil
		r.mu.Unlock()
		if ps != nil {
			_ = ps.Close()
		}
		r.wg.Wait()
		close(r.deliver) // the subscriber, its only sender, has stopped
		r.dwg.Wait()
		r.subscribed.Store(false)
		r.closeErr = r.client.Close()
	})
	return r.closeErr
}
