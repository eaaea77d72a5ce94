// Package node wires one Herald node from its configuration: store, broker,
// hub, transports and HTTP API, and runs and drains it. cmd/herald maps flags
// and environment onto Config; end-to-end tests build nodes directly.
package node

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/internal/admission"
	"github.com/heraldhq/herald/internal/api"
	"github.com/heraldhq/herald/internal/audit"
	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/broker"
	"github.com/heraldhq/herald/internal/defaults"
	"github.com/heraldhq/herald/internal/demo"
	"github.com/heraldhq/herald/internal/hub"
	"github.com/heraldhq/herald/internal/inbox"
	"github.com/heraldhq/herald/internal/metrics"
	"github.com/heraldhq/herald/internal/notification"
	"github.com/heraldhq/herald/internal/origin"
	"github.com/heraldhq/herald/internal/periodic"
	"github.com/heraldhq/herald/internal/presence"
	"github.com/heraldhq/herald/internal/revocation"
	"github.com/heraldhq/herald/internal/session"
	"github.com/heraldhq/herald/internal/socketio"
	"github.com/heraldhq/herald/internal/sse"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/topicauth"
	"github.com/heraldhq/herald/internal/webhook"
	"github.com/heraldhq/herald/internal/ws"
)

// Config is everything a node needs. Zero values mean the documented
// defaults of each component.
type Config struct {
	Addr     string // listen address; default ":8080"
	Database string // SQLite path (default "herald.db") or postgres:// URL
	// SweepInterval: how often expired notifications are removed (and
	// their removal pushed to live clients). 0: the store's default, 1 min.
	SweepInterval time.Duration
	// RedisURL enables the Redis broker (live fan-out between nodes) and
	// cluster-wide limits; empty: a single node with the memory broker.
	RedisURL string
	// RedisPrefix of every Redis key and channel. Default "herald".
	RedisPrefix string
	// RedisSharded uses Redis 7 sharded pub/sub (SSUBSCRIBE), for Redis Cluster.
	RedisSharded bool
	// NodeID names this node in the cluster (probe channel, connection
	// counts). Default random.
	NodeID string
	// DatabaseSchema: PostgreSQL schema (search_path) to use; default the
	// URL's. Tests give each node group its own.
	DatabaseSchema  string
	Auth            auth.Config
	APIKeys         []string // see auth.ParseKeyring
	AllowedOrigins  []string
	AllowLocalhost  bool          // development: http(s)://localhost:* etc.
	MaxConnections  int           // open connections of every transport together; default DefaultMaxConnections
	ShutdownGrace   time.Duration // default 20 s
	ReadHeaderLimit time.Duration // ReadHeaderTimeout; default 5 s
	Limits          Limits
	// TrustedProxies: addresses or CIDR prefixes of reverse proxies whose
	// X-Forwarded-For / X-Real-IP name the client (--trusted-proxies).
	// Empty: the TCP peer is the client.
	TrustedProxies []string
	Session        session.Config
	// SubscribeAuth configures the subscribe-authorization hook
	// (--subscribe-auth-url); an empty URL disables it.
	SubscribeAuth topicauth.Config
	WS            ws.Config
	SSE           sse.Config
	SocketIO      socketio.Config
	API           api.Config
	Hub           hub.Config
	Logger        *slog.Logger
	// PrivateMetrics leaves /metrics off the public listener; serve
	// MetricsHandler on a private one instead (herald --metrics-addr).
	PrivateMetrics bool
	// Registry receives every metric; default a fresh registry. /metrics
	// serves it.
	Registry *prometheus.Registry
	// MonitorInterval: connection monitoring log line period. Default 60 s.
	MonitorInterval time.Duration
	// MemoryLimit: /readyz fails when the Go heap exceeds it (0: no check).
	MemoryLimit uint64
	// ConnectionWarnRatio: the monitor warns (high_connection_usage) when
	// active connections exceed this share of MaxConnections. Default 0.8.
	ConnectionWarnRatio float64
	// Webhook configures webhooks (global endpoint, events, safety, retry).
	Webhook webhook.Config
	// PresenceGrace: how long a user stays online after the last
	// connection closed (--presence-grace). Default presence.DefaultGrace.
	PresenceGrace time.Duration
	// PresenceTTL: expiry of this node's presence entries in Redis,
	// renewed every third of it. Default presence.DefaultTTL.
	PresenceTTL time.Duration
	// Demo serves the demo inbox page at / and the dev-only endpoints
	// /v1/dev/token and /v1/dev/publish (see internal/demo). --dev sets it;
	// never in production.
	Demo bool
}

// Defaults of Config.
const (
	DefaultAddr           = ":8080"
	DefaultDatabase       = "herald.db"
	DefaultMaxConnections = 10000
	DefaultShutdownGrace  = 20 * time.Second
	DefaultReadHeader     = 5 * time.Second
	DefaultRedisPrefix    = "herald"
	DefaultMonitor        = time.Minute
)

// Validate checks cross-field rules before anything is opened.
func (c *Config) Validate() error {
	var errs []error
	if err := c.Auth.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(c.APIKeys) == 0 {
		errs = append(errs, errors.New("no API key configured: set HERALD_API_KEYS (backends need one to publish)"))
	}
	if c.MaxConnections < 0 {
		errs = append(errs, errors.New("max connections must not be negative"))
	}
	if _, err := admission.ParseTrustedProxies(c.TrustedProxies); err != nil {
		errs = append(errs, err)
	}
	if err := c.Webhook.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (c *Config) setDefaults() {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.Database == "" {
		c.Database = DefaultDatabase
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = DefaultMaxConnections
	}
	if c.ShutdownGrace <= 0 {
		c.ShutdownGrace = DefaultShutdownGrace
	}
	if c.ReadHeaderLimit <= 0 {
		c.ReadHeaderLimit = DefaultReadHeader
	}
	defaults.Logger(&c.Logger)
	if c.Registry == nil {
		c.Registry = prometheus.NewRegistry()
	}
	if c.RedisPrefix == "" {
		c.RedisPrefix = DefaultRedisPrefix
	}
	if c.MonitorInterval <= 0 {
		c.MonitorInterval = DefaultMonitor
	}
	if c.NodeID == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		c.NodeID = hex.EncodeToString(b[:])
	}
}

// Node is one running Herald node.
type Node struct {
	cfg Config
	// fanoutDeadline bounds fanout's broker publishes; static after New.
	fanoutDeadline *sharedDeadline
	log            *slog.Logger
	audit          *audit.Recorder
	store          nodeStore
	broker         broker.Broker
	hub            *hub.Hub
	adm            *admission.Controller
	core           *session.Core
	ws             *ws.Server
	sse            *sse.Server
	sio            *socketio.Server
	server         *http.Server
	handler        http.Handler
	ctx            context.Context // cancelled on Shutdown: stops the JWKS refresher
	cancel         context.CancelFunc
	revoked        *revocation.List
	metrics        *metrics.Metrics
	publisher      *metrics.Broker // set in New before any write
	loss           *liveLoss       // set in New before any write
	redis          *redis.Client   // shared with cluster-wide limits; nil on a single node
	closers        []func() error  // extra components closed on Shutdown
	checks         []api.Check     // readiness checks beyond draining, store and memory
	monitor        *metrics.Monitor
	webhooks       *webhook.Service  // the webhook sender
	presence       *presence.Tracker // this node's connections per user
	wg             sync.WaitGroup    // background loops
	draining       atomic.Bool
	stopOnce       sync.Once
	stopErr        error
}

// parts are what New builds before the node exists as a whole; undo stops
// what was started, in reverse order, when a later step fails.
type parts struct {
	verifier revocation.Verifier
	keys     *auth.Keyring
	policy   *origin.Policy
	inbox    *inbox.Service
	undo     []func()
}

func (p *parts) started(stop func()) { p.undo = append(p.undo, stop) }

func (p *parts) rollback() {
	for i := len(p.undo) - 1; i >= 0; i-- {
		p.undo[i]()
	}
}

// New opens the store and builds every component. Nothing listens yet. When
// a step fails, every part already started is stopped again.
func New(ctx context.Context, cfg Config) (*Node, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	m := metrics.New(cfg.Registry)
	n := &Node{cfg: cfg, log: cfg.Logger, metrics: m, audit: audit.New(cfg.Logger, m),
		fanoutDeadline: newSharedDeadline(fanoutTimeout, fanoutDeadlineSlack, time.Now)}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	p := &parts{}
	p.started(n.cancel)
	for _, step := range []func(context.Context, *parts) error{
		n.openSecurity, n.openState, n.openPresence, n.openProtocol, n.openTransports, n.openHTTP,
	} {
		if err := step(ctx, p); err != nil {
			p.rollback()
			return nil, err
		}
	}
	n.wg.Add(2)
	go n.sweepRevocations()
	go func() { defer n.wg.Done(); n.monitor.Run(n.ctx, n.cfg.MonitorInterval) }()
	return n, nil
}

// openSecurity builds the token verifier, the API keyring and the origin policy.
func (n *Node) openSecurity(_ context.Context, p *parts) error {
	cfg := &n.cfg
	if cfg.Auth.Logger == nil {
		cfg.Auth.Logger = cfg.Logger
	}
	if cfg.Auth.Audit == nil {
		cfg.Auth.Audit = n.audit
	}
	jwtVerifier, err := auth.NewVerifier(n.ctx, cfg.Auth)
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	if p.keys, err = auth.ParseKeyring(cfg.APIKeys); err != nil {
		return fmt.Errorf("api keys: %w", err)
	}
	if p.policy, err = origin.New(origin.Config{Allowed: cfg.AllowedOrigins, AllowLocalhost: cfg.AllowLocalhost}); err != nil {
		return err
	}
	n.revoked = revocation.NewList(nil)
	p.verifier = revocation.Verifier{TokenVerifier: jwtVerifier, List: n.revoked}
	return nil
}

// openState opens the store (loading revocations), the hub and the broker.
func (n *Node) openState(ctx context.Context, p *parts) error {
	cfg := &n.cfg
	st, err := n.openStore(ctx)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	n.store = st
	p.started(func() { _ = st.Close() })
	if err := n.revoked.Load(ctx, st); err != nil {
		return err
	}
	ist := n.metrics.InstrumentStore(st)
	hcfg := cfg.Hub
	hcfg.Logger = cfg.Logger
	hcfg.Observer = n.metrics.HubObserver()
	opened := hcfg.Observer.Opened
	hcfg.Observer.Opened = func(t string) { opened(t); n.monitor.Opened() }
	n.hub = hub.New(ist, hcfg)
	p.started(func() { n.hub.Close(hub.ReasonShutdown) })
	brokerCheck, rdb, err := n.openBroker(ctx)
	if err != nil {
		return err
	}
	p.started(func() { _ = n.broker.Close() })
	n.redis = rdb
	n.publisher = n.metrics.InstrumentBroker(n.broker)
	n.checks = append(n.checks, brokerCheck)
	n.loss = &liveLoss{ping: st.Ping, catchUp: n.hub.CatchUpAll, audit: n.audit, ctx: n.ctx, wg: &n.wg}
	if rdb, ok := n.broker.(*broker.Redis); ok {
		n.loss.catchUp = rdb.ReportLost // every node's clients, this one's too
	}
	var pub inbox.Store = ist
	if IsPostgresURL(n.cfg.Database) {
		pub = outcomeWatch{Store: ist, loss: n.loss}
	}
	p.inbox = inbox.New(pub) // the store's commit hook fans out
	return nil
}

// outcomeWatch reports a PostgreSQL publish that failed as unavailable: its
// COMMIT may have succeeded with the answer lost, and then no commit hook
// ran and no live event went out (SQLite commits in this process: its
// hook runs for every commit).
type outcomeWatch struct {
	inbox.Store
	loss *liveLoss
}

func (w outcomeWatch) Publish(ctx context.Context, req store.PublishRequest) (store.PublishResult, error) {
	res, err := w.Store.Publish(ctx, req)
	if errors.Is(err, store.ErrUnavailable) {
		w.loss.lost("publish_outcome_unknown")
	}
	return res, err
}

// openProtocol builds the admission controller and the session core every
// transport and the user API speak through.
func (n *Node) openProtocol(_ context.Context, p *parts) error {
	cfg := &n.cfg
	acfg := n.admissionConfig()
	n.adm = admission.New(acfg)
	p.started(func() {
		for _, c := range n.closers {
			_ = c()
		}
	})
	scfg := cfg.Session
	scfg.Logger, scfg.Audit, scfg.Presence = cfg.Logger, n.audit, n.presence
	scfg.OnRequest = func(t admission.Transport, name session.Name) {
		n.metrics.MessagesIn.WithLabelValues(t.String(), name.String()).Inc()
	}
	if cfg.SubscribeAuth.URL != "" {
		hook, err := topicauth.New(cfg.SubscribeAuth)
		if err != nil {
			return err
		}
		scfg.TopicAuthorizer = hook
	}
	var err error
	n.core, err = session.New(scfg, n.hub, p.verifier, p.inbox, n.adm)
	return err
}

// openTransports builds and starts the WebSocket, SSE and Socket.IO
// transports.
func (n *Node) openTransports(_ context.Context, p *parts) error {
	cfg := &n.cfg
	wcfg := cfg.WS
	wcfg.Logger, wcfg.CheckOrigin = cfg.Logger, p.policy.Check
	if wcfg.ReconnectSpread == 0 {
		wcfg.ReconnectSpread = cfg.ShutdownGrace / 2
	}
	var err error
	if n.ws, err = ws.New(wcfg, n.core); err == nil {
		err = n.ws.Start()
	}
	if err != nil {
		return err
	}
	p.started(func() { _ = n.ws.Shutdown(context.Background()) })
	scfg := cfg.SSE
	scfg.Logger, scfg.AllowOrigin = cfg.Logger, p.policy.Allowed
	scfg.Revoked = n.revoked.Check
	if scfg.Tickets == nil && n.redis != nil {
		scfg.Tickets = &sse.RedisTickets{Client: n.redis, Prefix: cfg.RedisPrefix} // any node redeems them
	}
	if n.sse, err = sse.New(scfg, n.core); err == nil {
		err = n.sse.Start()
	}
	if err != nil {
		return err
	}
	p.started(func() { _ = n.sse.Shutdown(context.Background()) })
	iocfg := cfg.SocketIO
	iocfg.Logger, iocfg.AllowOrigin = cfg.Logger, p.policy.Allowed
	if iocfg.ReconnectSpread == 0 {
		iocfg.ReconnectSpread = wcfg.ReconnectSpread
	}
	if n.sio, err = socketio.New(iocfg, n.core); err == nil {
		err = n.sio.Start()
	}
	if err != nil {
		return err
	}
	p.started(func() { _ = n.sio.Shutdown(context.Background()) })
	return nil
}

// openHTTP builds the API, the routes and the HTTP server.
func (n *Node) openHTTP(_ context.Context, p *parts) error {
	cfg := &n.cfg
	m := n.metrics
	acfg := cfg.API
	acfg.Logger, acfg.Audit = cfg.Logger, n.audit
	acfg.AllowOrigin = p.policy.Allowed
	acfg.Live = n
	if n.redis != nil && acfg.LiveDedupe == nil { // a retry on another node is recognised too
		acfg.LiveDedupe = &api.RedisDedupe{Client: n.redis, Prefix: cfg.RedisPrefix,
			Window: cmp.Or(acfg.LiveIdempotencyWindow, api.DefaultLiveIdempotencyWindow)}
	}
	acfg.OnPublish = func(status int, d time.Duration) {
		outcome := "ok"
		switch {
		case status >= 500:
			outcome = "server_error"
		case status >= 400:
			outcome = "client_error"
		}
		m.Publish.WithLabelValues(outcome).Observe(d.Seconds())
	}
	checks := append([]api.Check{
		{Name: "draining", Fn: n.checkDraining},
		{Name: "store", Fn: n.store.Ping},
	}, n.checks...)
	checks = append(checks, api.Check{Name: "memory", Fn: n.checkMemory})
	a := api.New(acfg, n.core, p.keys, p.inbox, checks...)
	mux := http.NewServeMux()
	a.Register(mux)
	a.RegisterAdmin(mux, n)
	a.RegisterPreferencesAdmin(mux)
	a.RegisterPresence(mux, n.presence)
	a.RegisterWebhookAdmin(mux, n, webhook.NewSecret)
	n.monitor = metrics.NewMonitor(metrics.MonitorConfig{
		MaxConnections: cfg.MaxConnections, WarnRatio: cfg.ConnectionWarnRatio, Active: n.hub.Active,
		Transports: n.adm.Stats, Pending: n.adm.Pending, Draining: n.draining.Load, Audit: n.audit,
	})
	a.RegisterStats(mux, func() any { return n.monitor.Snapshot() })
	if !cfg.PrivateMetrics {
		mux.Handle("GET /metrics", n.MetricsHandler())
	}
	mux.Handle("GET /v1/ws", n.ws)
	n.sse.Register(mux)
	mux.Handle("/socket.io/", n.sio)
	if cfg.Demo {
		demo.Register(mux, demo.Config{Verifier: p.verifier, Publisher: p.inbox, Live: n, Auth: cfg.Auth, AllowOrigin: p.policy.Allowed,
			Logger: cfg.Logger, Audit: n.audit})
	}
	n.handler = securityHeaders(mux)
	n.server = &http.Server{
		Handler:           n.handler,
		ReadHeaderTimeout: cfg.ReadHeaderLimit,
		ReadTimeout:       30 * time.Second, // bodies; WebSockets leave net/http on upgrade
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10, // a presence query names up to 1,000 users in its URL
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	return nil
}

// fanout is the store's commit hook: it hands committed events to the broker
// in commit order, from the store's writer.
func (n *Node) fanout(evs []*notification.Event) {
	ctx := n.fanoutDeadline.get()
	for _, ev := range evs {
		n.offerRead(ev)
		if err := n.publisher.Publish(ctx, ev); err != nil {
			n.log.Warn("fan-out failed after commit; clients will catch up from the store", "err", err)
			if n.redis == nil && !errors.Is(err, broker.ErrClosed) { // Redis catches up by itself (kick)
				n.loss.lost("fanout_failed")
			}
		}
	}
}

// PublishLive hands a live event to the broker (api.LivePublisher): every
// node's hub writes it to the clients it concerns. The store is not
// involved.
func (n *Node) PublishLive(ctx context.Context, l *notification.Live) error {
	return n.publisher.Publish(ctx, &notification.Event{Kind: notification.EventLive, Tenant: l.Tenant, Live: l})
}

// deliver is the broker's handler: revocations update this node's list
// before the hub closes the connections they concern.
func (n *Node) deliver(ev *notification.Event) {
	switch ev.Kind {
	case notification.EventRevoke:
		n.revoked.Apply(revocation.Revocation{Tenant: ev.Tenant, User: ev.User, TokenID: ev.TokenID,
			At: ev.RevokedAt, Until: ev.RevokedUntil})
	case notification.EventLift:
		n.revoked.Lift(ev.Tenant, ev.User)
		return
	}
	n.hub.Deliver(ev)
}

// Revoke persists r, then applies it on every node (through the broker):
// tokens are rejected and live connections closed with 4004.
func (n *Node) Revoke(ctx context.Context, r revocation.Revocation) error {
	if err := n.store.SaveRevocation(ctx, r); err != nil {
		return err
	}
	n.revoked.Apply(r) // effective here at once, even if the broker lags
	return n.broker.Publish(ctx, &notification.Event{Kind: notification.EventRevoke, Tenant: r.Tenant, User: r.User,
		TokenID: r.TokenID, RevokedAt: r.At, RevokedUntil: r.Until})
}

// Lift removes a user revocation, here at once and on every other node
// through the broker (a node that misses the event learns it at its next
// start, from the store).
func (n *Node) Lift(ctx context.Context, tenant, user string) error {
	if err := n.store.DeleteUserRevocation(ctx, tenant, user); err != nil {
		return err
	}
	n.revoked.Lift(tenant, user)
	return n.broker.Publish(ctx, &notification.Event{Kind: notification.EventLift, Tenant: tenant, User: user})
}

func (n *Node) sweepRevocations() {
	defer n.wg.Done()
	periodic.Every(n.ctx, time.Minute, n.revoked.Sweep)
}

// nodeStore is what a node needs of its store engine.
type nodeStore interface {
	store.Store
	store.Outbox
	revocation.Store
}

// openStore opens the configured engine with the commit hook that fans
// committed events out in commit order.
func (n *Node) openStore(ctx context.Context) (nodeStore, error) {
	if IsPostgresURL(n.cfg.Database) {
		return store.OpenPostgres(ctx, store.PostgresConfig{URL: n.cfg.Database, Logger: n.cfg.Logger, OnCommit: n.fanout,
			Schema: n.cfg.DatabaseSchema, SweepInterval: n.cfg.SweepInterval})
	}
	return store.OpenSQLite(ctx, store.SQLiteConfig{Path: n.cfg.Database, Logger: n.cfg.Logger, OnCommit: n.fanout,
		SweepInterval: n.cfg.SweepInterval})
}

// IsPostgresURL reports whether a Database setting selects PostgreSQL.
func IsPostgresURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

var errDraining = errors.New("node is draining")

func (n *Node) checkMemory(context.Context) error {
	if n.cfg.MemoryLimit == 0 {
		return nil
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if ms.HeapAlloc > n.cfg.MemoryLimit {
		return fmt.Errorf("heap %d bytes over the limit of %d", ms.HeapAlloc, n.cfg.MemoryLimit)
	}
	return nil
}

func (n *Node) checkDraining(context.Context) error {
	if n.draining.Load() {
		return errDraining
	}
	return nil
}

// Security header values, shared by every response (net/http only reads
// them; each has capacity 1, so an append copies): no allocation per request.
var (
	hvNosniff    = []string{"nosniff"}
	hvNoReferrer = []string{"no-referrer"}
)

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["X-Content-Type-Options"] = hvNosniff
		h["Referrer-Policy"] = hvNoReferrer
		next.ServeHTTP(w, r)
	})
}

// Handler is the node's HTTP handler (for tests that serve it themselves).
func (n *Node) Handler() http.Handler { return n.handler }

// MetricsHandler serves the node's metrics in the Prometheus format.
func (n *Node) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(n.cfg.Registry, promhttp.HandlerOpts{Registry: n.cfg.Registry})
}

// Hub exposes the hub (tests, stats).
func (n *Node) Hub() *hub.Hub { return n.hub }

// Serve accepts connections on l until Shutdown.
func (n *Node) Serve(l net.Listener) error {
	n.log.Info("listening", "addr", l.Addr().String())
	err := n.server.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown drains the node: readiness fails at once, new connections are
// refused, clients are told to reconnect elsewhere (4009), in-flight
// requests finish, then the broker and store close. ctx bounds the whole
// drain (default: the configured grace period).
func (n *Node) Shutdown(ctx context.Context) error {
	n.stopOnce.Do(func() {
		n.draining.Store(true)
		n.log.Info("draining")
		n.hub.Close(hub.ReasonShutdown)
		n.sio.CloseAll(hub.ReasonShutdown) // answers long-polls, which the HTTP server waits for
		errs := []error{n.server.Shutdown(ctx)}
		errs = append(errs, n.ws.Shutdown(ctx))
		errs = append(errs, n.sse.Shutdown(ctx))
		errs = append(errs, n.sio.Shutdown(ctx))
		for _, c := range n.closers {
			errs = append(errs, c())
		}
		n.presence.Close()
		errs = append(errs, n.webhooks.Close())
		errs = append(errs, n.broker.Close())
		errs = append(errs, n.store.Close())
		n.cancel()
		n.wg.Wait()
		n.stopErr = errors.Join(errs...)
		n.log.Info("stopped")
	})
	return n.stopErr
}

// ShutdownGrace is the configured drain deadline.
func (n *Node) ShutdownGrace() time.Duration { return n.cfg.ShutdownGrace }
