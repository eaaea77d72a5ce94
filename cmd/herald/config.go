package main

import (
	"errors"
	"flag"
	"fmt"
	"github.com/heraldhq/herald/internal/api"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/heraldhq/herald/internal/admission"
	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/hub"
	"github.com/heraldhq/herald/internal/metrics"
	"github.com/heraldhq/herald/internal/node"
	"github.com/heraldhq/herald/internal/presence"
	"github.com/heraldhq/herald/internal/session"
	"github.com/heraldhq/herald/internal/socketio"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/topicauth"
	"github.com/heraldhq/herald/internal/ws"
)

// devAddr is --addr's default under --dev.
const devAddr = "127.0.0.1:8080"

// setting is one configuration value: a flag, the environment variables that
// set it (first found wins; flags beat all of them) and its documented default.
type setting struct {
	flag  string
	env   []string
	def   string
	usage string
	value *string // final value after resolution
}

// settings is the one table that maps flags and environment onto Config.
type settings struct {
	list    []*setting
	byFlag  map[string]*setting
	dev     bool
	help    bool
	version bool // --version: print the build and exit
	// debugAddr is --debug-addr: the pprof listener, served by main, not
	// by the node.
	debugAddr string
	// metricsAddr is --metrics-addr: a private /metrics listener.
	metricsAddr string
	// idleGC is --idle-gc: the process-wide idle collector (gctune), run
	// by main.
	idleGC bool
	getenv func(string) string
}

func newSettings() *settings {
	s := &settings{byFlag: map[string]*setting{}}
	add := func(name, def, usage string, env ...string) {
		st := &setting{flag: name, env: env, def: def, usage: usage, value: new(string)}
		s.list = append(s.list, st)
		s.byFlag[name] = st
	}
	// Every default a package owns is that package's exported constant,
	// formatted here: --help prints exactly what the node would use.
	itoa := strconv.Itoa
	ftoa := func(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
	add("addr", node.DefaultAddr, "listen address (--dev: "+devAddr+")", "HERALD_ADDR")
	add("database", node.DefaultDatabase, "SQLite database file, or a postgres:// URL for PostgreSQL (several nodes)", "HERALD_DATABASE", "HERALD_DATABASE_URL")
	add("database-schema", "", "PostgreSQL schema (search_path) to create and use; default the URL's", "HERALD_DATABASE_SCHEMA")
	add("redis", "", "Redis URL (redis://host:6379/0) for live fan-out between nodes and cluster-wide limits; also REDIS_HOST/REDIS_PORT", "HERALD_REDIS_URL")
	add("redis-prefix", node.DefaultRedisPrefix, "prefix of every Redis key and channel (the same on every node of a cluster)", "HERALD_REDIS_PREFIX")
	add("redis-sharded", "false", "use Redis 7 sharded pub/sub (SSUBSCRIBE), for Redis Cluster", "HERALD_REDIS_SHARDED")
	add("node-id", "", "this node's unique id in the cluster (default random)", "HERALD_NODE_ID")
	add("env", "production", "production or development (development allows localhost origins)", "HERALD_ENV", "NODE_ENV")
	add("jwt-secret", "", "HMAC secret for HS256/384/512 user tokens (>= 32 bytes)", "HERALD_JWT_SECRET", "JWT_SECRET")
	add("jwt-public-key", "", "PEM file with the public key(s) for RS*/PS*/ES*/EdDSA user tokens", "HERALD_JWT_PUBLIC_KEY")
	add("jwks-url", "", "JWKS URL for user tokens (keys selected by kid, refreshed)", "HERALD_JWKS_URL")
	add("jwt-algorithms", "", "comma-separated allowlist of JWT algorithms (default: derived from the key)", "HERALD_JWT_ALGORITHMS")
	add("jwt-issuer", "", "required iss claim (enforced when set)", "HERALD_JWT_ISSUER")
	add("jwt-audience", "", "required aud claim (enforced when set)", "HERALD_JWT_AUDIENCE")
	add("jwt-leeway", auth.DefaultLeeway.String(), "clock skew allowed for exp/nbf/iat", "HERALD_JWT_LEEWAY")
	add("tenant-claim", auth.DefaultTenantClaim, "JWT claim holding the tenant", "HERALD_TENANT_CLAIM")
	add("role-claim", auth.DefaultRoleClaim, "JWT claim holding the role", "HERALD_ROLE_CLAIM")
	add("topics-claim", auth.DefaultTopicsClaim, "JWT claim listing the topics a token may subscribe to: names, or prefixes ending in * (project.*)", "HERALD_TOPICS_CLAIM")
	add("default-tenant", "", "tenant for tokens without a tenant claim (single-tenant apps)", "HERALD_DEFAULT_TENANT")
	add("api-keys", "", "comma-separated publish API keys: key, key@tenant, sha256:<hex>[@tenant], admin:<key>", "HERALD_API_KEYS")
	add("allowed-origins", "", "comma-separated browser origins (exact, or https://*.example.com); never *. FRONTEND_URL (the original gateway's setting) is added to the list", "HERALD_ALLOWED_ORIGINS")
	add("trusted-proxies", "", "comma-separated IP addresses or CIDR prefixes of reverse proxies whose X-Forwarded-For / X-Real-IP headers name the client; empty trusts none (the TCP peer is the client)", "HERALD_TRUSTED_PROXIES")
	add("auth-timeout", session.DefaultAuthTimeout.String(), "close connections not authenticated within this time, on every transport (WebSocket close 4001)", "HERALD_AUTH_TIMEOUT")
	add("max-connections", itoa(node.DefaultMaxConnections), "maximum connections on this node, every transport together (WebSocket, SSE, Socket.IO)", "HERALD_MAX_CONNECTIONS", "MAX_WEBSOCKET_CONNECTIONS")
	add("max-message-bytes", itoa(ws.DefaultMaxMessageBytes), "largest client WebSocket message (1009 above)", "HERALD_MAX_MESSAGE_BYTES")
	add("max-body-bytes", itoa(api.DefaultMaxBodyBytes), "largest publish request body (413 above)", "HERALD_MAX_BODY_BYTES")
	add("event-rate", ftoa(node.DefaultEventRate.Per), "client requests per second per user (WebSocket events and user API); negative disables", "HERALD_EVENT_RATE")
	add("event-burst", itoa(node.DefaultEventRate.Burst), "burst allowance for --event-rate", "HERALD_EVENT_BURST")
	add("publish-rate", ftoa(node.DefaultPublishRate.Per), "publish calls per second per API key; negative disables", "HERALD_PUBLISH_RATE")
	add("publish-burst", itoa(node.DefaultPublishRate.Burst), "burst allowance for --publish-rate", "HERALD_PUBLISH_BURST")
	add("handshake-rate", ftoa(node.DefaultHandshakeRate.Per), "failed handshakes per second per client IP, on every transport (WebSocket, Socket.IO): an unauthenticated handshake is charged only if it never authenticates; negative disables", "HERALD_HANDSHAKE_RATE")
	add("handshake-burst", itoa(node.DefaultHandshakeRate.Burst), "burst allowance for --handshake-rate", "HERALD_HANDSHAKE_BURST")
	add("max-conns-per-ip", itoa(node.DefaultMaxConnsPerIP), "concurrent connections per client IP; negative disables", "HERALD_MAX_CONNS_PER_IP")
	add("max-conns-per-user", itoa(node.DefaultMaxConnsPerUser), "concurrent connections per user; negative disables", "HERALD_MAX_CONNS_PER_USER")
	add("write-buffer-bytes", itoa(ws.DefaultWriteBufferBytes), "per-connection outbound buffer; a client that fills it is closed (4008)", "HERALD_WRITE_BUFFER_BYTES")
	add("ping-interval", ws.DefaultPingInterval.String(), "server WebSocket ping interval", "HERALD_PING_INTERVAL")
	add("socketio-ping-timeout", socketio.DefaultPingTimeout.String(), "Engine.IO pingTimeout: a Socket.IO session whose pong is this late is closed", "HERALD_SOCKETIO_PING_TIMEOUT")
	add("socketio-max-payload", itoa(socketio.DefaultMaxPayload), "Engine.IO maxPayload: largest Socket.IO WebSocket message or polling POST body", "HERALD_SOCKETIO_MAX_PAYLOAD")
	add("max-topics-per-connection", itoa(session.DefaultMaxTopics), "topics one connection may subscribe to (rate_limited above)", "HERALD_MAX_TOPICS_PER_CONNECTION")
	add("subscribe-rate", ftoa(session.DefaultSubscribeRate), "subscribe requests per second per connection; negative disables", "HERALD_SUBSCRIBE_RATE")
	add("subscribe-burst", itoa(session.DefaultSubscribeBurst), "burst allowance for --subscribe-rate", "HERALD_SUBSCRIBE_BURST")
	add("subscribe-auth-url", "", "backend URL asked (POST, signed like webhooks) about topics the token's claim does not allow; empty: the claim alone decides", "HERALD_SUBSCRIBE_AUTH_URL")
	add("subscribe-auth-secret", "", "whsec_<base64> secret signing --subscribe-auth-url requests (Standard Webhooks)", "HERALD_SUBSCRIBE_AUTH_SECRET")
	add("subscribe-auth-timeout", topicauth.DefaultTimeout.String(), "how long a subscribe waits for --subscribe-auth-url; slower answers deny", "HERALD_SUBSCRIBE_AUTH_TIMEOUT")
	add("subscribe-auth-cache-ttl", topicauth.DefaultCacheTTL.String(), "how long a --subscribe-auth-url decision is reused", "HERALD_SUBSCRIBE_AUTH_CACHE_TTL")
	add("live-idempotency-window", api.DefaultLiveIdempotencyWindow.String(), "how long the Idempotency-Key of a live (ephemeral) event is remembered", "HERALD_LIVE_IDEMPOTENCY_WINDOW")
	add("replay-limit", itoa(hub.DefaultReplayLimit), "most notifications replayed on resume before a resync", "HERALD_REPLAY_LIMIT")
	add("shutdown-grace", node.DefaultShutdownGrace.String(), "drain deadline on SIGTERM", "HERALD_SHUTDOWN_GRACE")
	add("sweep-interval", store.DefaultSweepInterval.String(), "how often expired notifications are removed and live clients told", "HERALD_SWEEP_INTERVAL")
	add("connection-warn-ratio", ftoa(metrics.DefaultWarnRatio), "log high_connection_usage when active connections exceed this share of --max-connections", "HERALD_CONNECTION_WARN_RATIO")
	add("memory-limit", "0", "fail /readyz when the Go heap exceeds this many bytes (0: no check)", "HERALD_MEMORY_LIMIT")
	add("metrics-addr", "", "serve /metrics on this separate address (e.g. 0.0.0.0:9090) and not on --addr; empty: /metrics is on --addr", "HERALD_METRICS_ADDR")
	add("idle-gc", "true", "collect garbage and return free memory to the OS once the node has gone quiet (after a burst of connects); false leaves Go's collector alone", "HERALD_IDLE_GC")
	add("debug-addr", "", "serve Go pprof profiles (/debug/pprof/) on this separate address, e.g. 127.0.0.1:6060; empty disables. Never expose it publicly", "HERALD_DEBUG_ADDR")
	add("webhook-url", "", "global webhook endpoint (http or https) for tenants without their own; Standard Webhooks signatures", "HERALD_WEBHOOK_URL")
	add("webhook-secret", "", "signing secret of --webhook-url: whsec_ followed by the base64 of 24 to 64 random bytes", "HERALD_WEBHOOK_SECRET")
	add("webhook-notification-read", "false", "also send notification.read webhooks (best effort; off by default)", "HERALD_WEBHOOK_NOTIFICATION_READ")
	add("webhook-allow-link-local", "false", "allow webhook endpoints on link-local and cloud-metadata addresses (169.254.0.0/16, fe80::/10, metadata.google.internal...); refused by default", "HERALD_WEBHOOK_ALLOW_LINK_LOCAL")
	add("presence-grace", presence.DefaultGrace.String(), "a user stays online this long after the last connection closed (a reload sends no user.offline)", "HERALD_PRESENCE_GRACE")
	add("presence-ttl", presence.DefaultTTL.String(), "with Redis: expiry of a node's presence entries, renewed every third of it (a dead node's users go offline after it)", "HERALD_PRESENCE_TTL")
	add("log-level", "info", "debug, info, warn or error", "HERALD_LOG_LEVEL")
	add("log-format", "json", "json or text", "HERALD_LOG_FORMAT")
	return s
}

// parse resolves every setting from args and the environment lookup.
func (s *settings) parse(args []string, getenv func(string) string, out io.Writer) error {
	s.getenv = getenv
	fs := flag.NewFlagSet("herald", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.BoolVar(&s.dev, "dev", false, "development mode: random JWT secret and API key printed at start, localhost origins, "+devAddr)
	fs.BoolVar(&s.version, "version", false, "print the version, commit and build date, and exit")
	for _, st := range s.list {
		fs.StringVar(st.value, st.flag, st.def, st.usage)
	}
	fs.Usage = func() { s.usage(out, fs) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			s.help = true
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, st := range s.list {
		if set[st.flag] {
			continue
		}
		for _, e := range st.env {
			if v := getenv(e); v != "" {
				*st.value = v
				break
			}
		}
	}
	if s.dev && !set["addr"] && getenv("HERALD_ADDR") == "" {
		*s.byFlag["addr"].value = devAddr
	}
	return nil
}

func (s *settings) usage(out io.Writer, fs *flag.FlagSet) {
	fmt.Fprintln(out, "Usage: herald [flags]\n\nHerald is a real-time notification gateway. Every flag can also be set by the environment variables listed with it.\n\nFlags:")
	fmt.Fprintln(out, "  --dev\n        development mode: random JWT secret and API key printed at start, localhost origins, "+devAddr)
	fmt.Fprintln(out, "  --version\n        print the version, commit and build date, and exit")
	for _, st := range s.list {
		def := st.def
		if def == "" {
			def = "none"
		}
		fmt.Fprintf(out, "  --%s  (env %s; default %s)\n        %s\n", st.flag, strings.Join(st.env, ", "), def, st.usage)
	}
}

func (s *settings) get(name string) string { return strings.TrimSpace(*s.byFlag[name].value) }

func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// toConfig converts resolved settings into a node.Config, collecting every
// error so the operator sees all of them at once.
func (s *settings) toConfig() (node.Config, error) {
	c := &converter{s: s}
	c.server()
	c.auth()
	c.transports()
	c.limits()
	c.webhooks()
	return c.cfg, errors.Join(c.errs...)
}

// converter reads typed values out of resolved settings, collecting errors.
type converter struct {
	s    *settings
	cfg  node.Config
	errs []error
}

func (c *converter) fail(format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf(format, args...))
}

func (c *converter) dur(name string) time.Duration {
	d, err := time.ParseDuration(c.s.get(name))
	if err != nil || d < 0 {
		c.fail("--%s: %q is not a non-negative Go duration (e.g. 10s)", name, c.s.get(name))
	}
	return d
}

func (c *converter) rate(name string) float64 {
	f, err := strconv.ParseFloat(c.s.get(name), 64)
	if err != nil {
		c.fail("--%s: %q is not a number", name, c.s.get(name))
	}
	return f
}

func (c *converter) signed(name string) int {
	n, err := strconv.Atoi(c.s.get(name))
	if err != nil {
		c.fail("--%s: %q is not an integer", name, c.s.get(name))
	}
	return n
}

func (c *converter) boolean(name string) bool {
	switch v := c.s.get(name); v {
	case "true", "1":
		return true
	case "false", "0", "":
		return false
	default:
		c.fail("--%s: %q must be true or false", name, v)
		return false
	}
}

func (c *converter) num(name string) int {
	n, err := strconv.Atoi(c.s.get(name))
	if err != nil || n < 0 {
		c.fail("--%s: %q is not a non-negative integer", name, c.s.get(name))
	}
	return n
}

// server: listeners, storage, Redis, environment, lifecycle.
func (c *converter) server() {
	s, cfg := c.s, &c.cfg
	cfg.Addr = s.get("addr")
	s.debugAddr = s.get("debug-addr")
	s.metricsAddr = s.get("metrics-addr")
	s.idleGC = c.boolean("idle-gc")
	cfg.PrivateMetrics = s.metricsAddr != ""
	cfg.Database = s.get("database")
	cfg.DatabaseSchema = s.get("database-schema")
	cfg.RedisURL = s.get("redis")
	if cfg.RedisURL == "" && s.getenv != nil && s.getenv("REDIS_HOST") != "" {
		port := s.getenv("REDIS_PORT")
		if port == "" {
			port = "6379"
		}
		cfg.RedisURL = "redis://" + net.JoinHostPort(s.getenv("REDIS_HOST"), port)
	}
	cfg.RedisPrefix = s.get("redis-prefix")
	cfg.NodeID = s.get("node-id")
	cfg.RedisSharded = c.boolean("redis-sharded")
	switch env := strings.ToLower(s.get("env")); env {
	case "production", "prod":
	case "development", "dev", "test":
		cfg.AllowLocalhost = true
	default:
		c.fail("--env: %q must be production or development", env)
	}
	if s.dev {
		cfg.AllowLocalhost = true
	}
	cfg.Hub.ReplayLimit = c.num("replay-limit")
	cfg.ShutdownGrace = c.dur("shutdown-grace")
	cfg.SweepInterval = c.dur("sweep-interval")
	cfg.ConnectionWarnRatio = c.rate("connection-warn-ratio")
	if ml, err := strconv.ParseUint(s.get("memory-limit"), 10, 64); err != nil {
		c.fail("--memory-limit: %q is not a byte count", s.get("memory-limit"))
	} else {
		cfg.MemoryLimit = ml
	}
}

// auth: JWT verification, API keys, origins, trusted proxies.
func (c *converter) auth() {
	s, cfg := c.s, &c.cfg
	cfg.Auth.HMACSecret = []byte(s.get("jwt-secret"))
	if len(cfg.Auth.HMACSecret) == 0 {
		cfg.Auth.HMACSecret = nil
	}
	cfg.Auth.PublicKeyFile = s.get("jwt-public-key")
	cfg.Auth.JWKSURL = s.get("jwks-url")
	cfg.Auth.Algorithms = splitList(s.get("jwt-algorithms"))
	cfg.Auth.Issuer = s.get("jwt-issuer")
	cfg.Auth.Audience = s.get("jwt-audience")
	cfg.Auth.Leeway = c.dur("jwt-leeway")
	if cfg.Auth.Leeway == 0 {
		cfg.Auth.Leeway = -1 // explicit 0s: no leeway (auth treats 0 as the default)
	}
	cfg.Auth.TenantClaim = s.get("tenant-claim")
	cfg.Auth.RoleClaim = s.get("role-claim")
	cfg.Auth.TopicsClaim = s.get("topics-claim")
	cfg.Auth.DefaultTenant = s.get("default-tenant")
	if cfg.Auth.HMACSecret == nil && cfg.Auth.PublicKeyFile == "" && cfg.Auth.JWKSURL == "" {
		c.fail("no JWT key material: set HERALD_JWT_SECRET (or JWT_SECRET), HERALD_JWT_PUBLIC_KEY or HERALD_JWKS_URL; or run with --dev to try Herald locally")
	}
	cfg.APIKeys = splitList(s.get("api-keys"))
	cfg.AllowedOrigins = splitList(s.get("allowed-origins"))
	if s.getenv != nil {
		cfg.AllowedOrigins = append(cfg.AllowedOrigins, splitList(s.getenv("FRONTEND_URL"))...)
	}
	cfg.TrustedProxies = splitList(s.get("trusted-proxies"))
	if _, err := admission.ParseTrustedProxies(cfg.TrustedProxies); err != nil {
		c.fail("--trusted-proxies: %w", err)
	}
}

// transports: the protocol and the wire settings of every transport.
func (c *converter) transports() {
	cfg := &c.cfg
	// One authentication deadline for every transport (session.Config).
	cfg.Session.AuthTimeout = c.dur("auth-timeout")
	cfg.WS.MaxMessageBytes = c.num("max-message-bytes")
	cfg.API.MaxBodyBytes = int64(c.num("max-body-bytes"))
	cfg.WS.WriteBufferBytes = c.num("write-buffer-bytes")
	cfg.WS.PingInterval = c.dur("ping-interval")
	// The transport settings apply to every transport that has them (0
	// keeps each package's default): SSE has no pings of its own (it sends
	// heartbeat comments), Socket.IO's heartbeat is Engine.IO's ping.
	cfg.SSE.WriteBufferBytes = cfg.WS.WriteBufferBytes
	cfg.SocketIO.WriteBufferBytes = cfg.WS.WriteBufferBytes
	cfg.SocketIO.PingInterval = cfg.WS.PingInterval
	cfg.SocketIO.PingTimeout = c.dur("socketio-ping-timeout")
	cfg.SocketIO.MaxPayload = c.num("socketio-max-payload")
	c.topics()
}

// topics: topic limits, the subscribe-authorization hook, live events.
func (c *converter) topics() {
	s, cfg := c.s, &c.cfg
	cfg.Session.MaxTopics = c.num("max-topics-per-connection")
	if cfg.Session.MaxTopics == 0 {
		c.fail("--max-topics-per-connection must be positive")
	}
	cfg.Session.SubscribeRate = c.rate("subscribe-rate")
	cfg.Session.SubscribeBurst = c.num("subscribe-burst")
	cfg.SubscribeAuth.URL = s.get("subscribe-auth-url")
	cfg.SubscribeAuth.Secret = s.get("subscribe-auth-secret")
	cfg.SubscribeAuth.Timeout = c.dur("subscribe-auth-timeout")
	cfg.SubscribeAuth.CacheTTL = c.dur("subscribe-auth-cache-ttl")
	if cfg.SubscribeAuth.URL != "" {
		if _, err := topicauth.New(cfg.SubscribeAuth); err != nil {
			c.fail("--subscribe-auth-url/--subscribe-auth-secret: %w", err)
		}
	} else if cfg.SubscribeAuth.Secret != "" {
		c.fail("--subscribe-auth-secret is set without --subscribe-auth-url")
	}
	cfg.API.LiveIdempotencyWindow = c.dur("live-idempotency-window")
}

// limits: admission control.
func (c *converter) limits() {
	cfg := &c.cfg
	cfg.MaxConnections = c.num("max-connections")
	if cfg.MaxConnections == 0 {
		c.fail("--max-connections must be positive")
	}
	cfg.Limits.EventRate.Per = c.rate("event-rate")
	cfg.Limits.EventRate.Burst = c.num("event-burst")
	cfg.Limits.PublishRate.Per = c.rate("publish-rate")
	cfg.Limits.PublishRate.Burst = c.num("publish-burst")
	cfg.Limits.HandshakeRate.Per = c.rate("handshake-rate")
	cfg.Limits.HandshakeRate.Burst = c.num("handshake-burst")
	cfg.Limits.MaxConnsPerIP = c.signed("max-conns-per-ip")
	cfg.Limits.MaxConnsPerUser = c.signed("max-conns-per-user")
}

// webhooks: the global endpoint, optional events, safety; presence.
func (c *converter) webhooks() {
	s, cfg := c.s, &c.cfg
	cfg.Webhook.URL = s.get("webhook-url")
	cfg.Webhook.Secret = s.get("webhook-secret")
	cfg.Webhook.NotificationRead = c.boolean("webhook-notification-read")
	cfg.Webhook.AllowLinkLocal = c.boolean("webhook-allow-link-local")
	cfg.PresenceGrace = c.dur("presence-grace")
	cfg.PresenceTTL = c.dur("presence-ttl")
}

// envLookup is os.Getenv, replaceable in tests.
var envLookup = os.Getenv
