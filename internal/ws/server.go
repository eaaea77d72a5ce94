package ws

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/logging"
	"github.com/lesismal/nbio/nbhttp"
	"github.com/lesismal/nbio/nbhttp/websocket"

	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/hub"
	"github.com/heraldhq/herald/internal/notification"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/wspoll"
)

// Verifier checks user tokens.
type Verifier interface {
	Verify(token string) (auth.Principal, error)
	Leeway() time.Duration
}

// Inbox runs the client's requests (persist, then fan out).
type Inbox interface {
	List(ctx context.Context, r notification.Recipient, q store.ListQuery) (store.Page, error)
	MarkRead(ctx context.Context, r notification.Recipient, ids []string) (store.Change, error)
	MarkAllRead(ctx context.Context, r notification.Recipient) (store.Change, error)
	Delete(ctx context.Context, r notification.Recipient, id string) (store.Change, error)
}

// Config tunes the WebSocket transport. The zero value means the defaults.
type Config struct {
	// AuthTimeout: a socket not authenticated within it is closed (4001). Default 10 s.
	AuthTimeout time.Duration
	// MaxMessageBytes: larger client messages close the socket (1009). Default 16 KiB.
	MaxMessageBytes int
	// PingInterval: server pings each socket this often. Default 25 s.
	PingInterval time.Duration
	// PongTimeout: a socket silent for PingInterval+PongTimeout is closed. Default 20 s.
	PongTimeout time.Duration
	// WriteBufferBytes bounds bytes queued for a socket but not yet taken by
	// the kernel; a message that would exceed it closes the socket as a slow
	// consumer (4008). Default 256 KiB.
	WriteBufferBytes int
	// CloseGrace: time given to the close handshake before the TCP
	// connection is dropped. Default 2 s.
	CloseGrace time.Duration
	// ReconnectSpread: on shutdown each client is told (in the 4009 close
	// reason, "shutdown;reconnect_after_ms=N") to wait a random N in
	// [0, ReconnectSpread) before reconnecting, so a drained node's clients
	// do not reconnect to the others all at once. Default 5 s.
	ReconnectSpread time.Duration
	// RequestTimeout bounds one client request (mark read, list…). Default 10 s.
	RequestTimeout time.Duration
	// MaxInflight: concurrent requests per socket; more get rate_limited. Default 4.
	MaxInflight int
	// MaxInvalid: invalid messages tolerated per socket before it is closed (1008). Default 10.
	MaxInvalid int
	// Pollers: nbio poller goroutines. Default GOMAXPROCS/2, at least 1.
	Pollers int
	// CheckOrigin decides whether a browser origin may connect. Required.
	CheckOrigin func(*http.Request) bool
	// Limits shared with the other transports; nil fields mean no limit.
	Limits Limits
	// OnMessage, when set, is called with the type of each valid client message.
	OnMessage func(msgType string)
	Logger    *slog.Logger
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	defInt := func(d *int, v int) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.AuthTimeout, 10*time.Second)
	def(&c.PingInterval, 25*time.Second)
	def(&c.PongTimeout, 20*time.Second)
	def(&c.CloseGrace, 2*time.Second)
	def(&c.RequestTimeout, 10*time.Second)
	def(&c.ReconnectSpread, 5*time.Second)
	defInt(&c.MaxMessageBytes, 16<<10)
	defInt(&c.WriteBufferBytes, 256<<10)
	defInt(&c.MaxInflight, 4)
	defInt(&c.MaxInvalid, 10)
	defInt(&c.Pollers, max(1, runtime.GOMAXPROCS(0)/2))
	defInt(&c.Limits.AbuseStrikes, 20)
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// RateLimiter is a keyed token bucket (limit.Keyed, or limit.RedisKeyed for
// cluster-wide limits). Allow returns the consecutive refusals for the key.
type RateLimiter interface {
	Allow(key string) (ok bool, strikes int)
}

// ConnLimiter caps concurrent uses per key (limit.Counter, limit.RedisCounter).
type ConnLimiter interface {
	Acquire(key string) bool
	Release(key string)
}

// Limits are the admission controls shared by every transport of a node.
// Nil fields mean no limit (leave them nil rather than holding a typed nil).
type Limits struct {
	// Events limits client requests per user (UserKey).
	Events RateLimiter
	// AbuseStrikes: consecutive rate-limited requests after which the
	// socket is closed (4029). Default 20.
	AbuseStrikes int
	// Handshakes limits unauthenticated handshakes per client IP.
	Handshakes RateLimiter
	// ConnsPerIP and ConnsPerUser cap concurrent connections.
	ConnsPerIP   ConnLimiter
	ConnsPerUser ConnLimiter
	// MaxUnauthenticated caps sockets that have not authenticated yet, so
	// idle handshakes cannot exhaust the node. 0: no cap.
	MaxUnauthenticated int64
}

// UserKey is the limiter key of a user.
func UserKey(tenant, user string) string { return tenant + "\x00" + user }

// Server is the WebSocket transport: an http.Handler for GET /v1/ws that
// upgrades with net/http and hands each socket to nbio's poller, so an idle
// socket costs no goroutine and no read buffer.
type Server struct {
	cfg      Config // static after New
	hub      *hub.Hub
	verifier Verifier
	inbox    Inbox
	log      *slog.Logger
	engine   *nbhttp.Engine
	upgrader *websocket.Upgrader

	reg       registry
	early     wspoll.Early // messages that arrived before their socket was bound
	unauth    atomic.Int64 // sockets not yet authenticated
	stopPing  chan struct{}
	pingDone  chan struct{}
	closeOnce sync.Once
}

// New builds the transport; call Start before serving.
func New(cfg Config, h *hub.Hub, v Verifier, in Inbox) (*Server, error) {
	cfg.setDefaults()
	logging.SetLevel(logging.LevelError) // nbio's own logger writes to stdout
	if cfg.CheckOrigin == nil {
		return nil, errors.New("ws: CheckOrigin is required")
	}
	s := &Server{cfg: cfg, hub: h, verifier: v, inbox: in, log: cfg.Logger,
		stopPing: make(chan struct{}), pingDone: make(chan struct{})}
	s.reg.init()
	s.early.Max = maxQueued
	s.engine = nbhttp.NewEngine(nbhttp.Config{
		Name:                    "herald-ws",
		NPoller:                 cfg.Pollers,
		ReleaseWebsocketPayload: true,
		// Hard cap: nbio drops a connection whose unwritten data would exceed
		// it. Our soft cap (WriteBufferBytes) closes it first, with 4008.
		MaxWriteBufferSize: cfg.WriteBufferBytes + 64<<10,
		// Run nbio's handlers inline in the poller, as internal/socketio
		// does: nbio's own frame handling (control frames, the close
		// handshake and its close of the socket) then happens in the
		// poller. A socket closed from another goroutine while the poller
		// holds a pending event for its fd lets that stale event close the
		// next connection given the same fd number (seen under connection
		// churn: about 1 in 1,000-3,000 connections got EOF before ready).
		// So none of our callbacks may block: they only copy the message
		// and queue it on the connection (inbound.go), where a short-lived
		// goroutine handles it (token verification, Redis limiters, the
		// hub); the ping handler and OnWrittenSize only write or count.
		ServerExecutor: func(f func()) { f() },
	})
	// We validate UTF-8 ourselves to answer 1007 (RFC 6455 §8.1).
	s.engine.CheckUtf8 = func([]byte) bool { return true }
	s.engine.OnWrittenSize(func(c *nbio.Conn, _ []byte, n int) {
		if wsc, ok := c.Session().(*websocket.Conn); ok {
			if st, ok := wsc.Session().(*conn); ok {
				st.queued.Add(-int64(n))
			}
		}
	})
	u := websocket.NewUpgrader()
	u.Engine = s.engine
	// No nbio keepalive: it arms a runtime timer per socket, resets it on
	// every frame, and closes the socket from the timer's goroutine
	// (outside the poller). The ping loop checks lastRead instead.
	u.KeepaliveTime = 0
	u.MessageLengthLimit = cfg.MaxMessageBytes
	u.CheckOrigin = func(*http.Request) bool { return true } // checked in ServeHTTP, before the upgrade
	u.BlockingModAsyncWrite = false
	u.EnableCompression(false)
	u.OnMessage(s.onMessage)
	u.OnClose(s.onClose)
	u.SetPingHandler(func(c *websocket.Conn, data string) {
		// In the poller: nbio's writes do not block (unwritten bytes stay
		// in its bounded buffer until the socket is writable).
		if st, ok := c.Session().(*conn); ok {
			st.heard()
			_ = st.write(websocket.PongMessage, []byte(data), true)
		}
	})
	u.SetPongHandler(func(c *websocket.Conn, _ string) {
		if st, ok := c.Session().(*conn); ok {
			st.heard()
		}
	})
	s.upgrader = u
	return s, nil
}

// Start starts the poller and the ping loop.
func (s *Server) Start() error {
	if err := s.engine.Start(); err != nil {
		return fmt.Errorf("ws: start poller: %w", err)
	}
	go s.pingLoop()
	return nil
}

// Shutdown stops the ping loop and the poller. Clients should have been
// closed (hub.Close) first so that their close frames are flushed; ctx
// bounds the wait.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closeOnce.Do(func() {
		close(s.stopPing)
		<-s.pingDone
		s.reg.each(func(c *conn) { c.closeWith(hub.ReasonShutdown) })
		// Give close frames a moment to reach the kernel.
		for s.reg.len() > 0 && ctx.Err() == nil {
			time.Sleep(20 * time.Millisecond)
		}
		s.engine.Stop()
	})
	return ctx.Err()
}

// Active is the number of open WebSocket connections (authenticated or not).
func (s *Server) Active() int { return s.reg.len() }

// Pending is the number of sockets not yet authenticated.
func (s *Server) Pending() int64 { return s.unauth.Load() }

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", false
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", true
	}
	return strings.TrimSpace(tok), true
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// ServeHTTP handles GET /v1/ws.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ip := clientIP(r)
	origin := r.Header.Get("Origin")
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if !s.cfg.CheckOrigin(r) {
		s.log.Warn("origin rejected", "event", "origin_rejected", "ip", ip, "origin", origin, "transport", "ws")
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	var (
		p       auth.Principal
		authed  bool
		since   *notification.Position
		sinceQS = r.URL.Query().Get("since")
	)
	if tok, present := bearer(r); present {
		var err error
		p, err = s.verifier.Verify(tok)
		if err != nil {
			s.log.Warn("token rejected", "event", "token_invalid", "reason", auth.ReasonOf(err), "ip", ip, "transport", "ws")
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		authed = true
	}
	if sinceQS != "" {
		pos, err := notification.ParsePosition(sinceQS)
		if err != nil {
			http.Error(w, "invalid since", http.StatusBadRequest)
			return
		}
		since = &pos
	}
	lim := &s.cfg.Limits
	if !authed {
		if lim.Handshakes != nil {
			if ok, _ := lim.Handshakes.Allow(ip); !ok {
				s.log.Warn("handshake rate limited", "event", "rate_limited", "scope", "handshake", "ip", ip, "transport", "ws")
				w.Header().Set("Retry-After", "1")
				http.Error(w, "too many requests", http.StatusTooManyRequests)
				return
			}
		}
		if lim.MaxUnauthenticated > 0 && s.unauth.Load() >= lim.MaxUnauthenticated {
			s.log.Warn("unauthenticated socket cap reached", "event", "limit_exceeded", "scope", "unauthenticated", "ip", ip)
			w.Header().Set("Retry-After", "1")
			http.Error(w, "server busy", http.StatusServiceUnavailable)
			return
		}
	}
	if lim.ConnsPerIP != nil && !lim.ConnsPerIP.Acquire(ip) {
		s.log.Warn("per-IP connection cap reached", "event", "limit_exceeded", "scope", "ip", "ip", ip)
		w.Header().Set("Retry-After", "5")
		http.Error(w, "too many connections from this address", http.StatusTooManyRequests)
		return
	}
	userKey := ""
	if authed && lim.ConnsPerUser != nil {
		userKey = UserKey(p.Tenant, p.User)
		if !lim.ConnsPerUser.Acquire(userKey) {
			if lim.ConnsPerIP != nil {
				lim.ConnsPerIP.Release(ip)
			}
			s.log.Warn("per-user connection cap reached", "event", "limit_exceeded", "scope", "user", "tenant", p.Tenant, "user", p.User)
			w.Header().Set("Retry-After", "5")
			http.Error(w, "too many connections for this user", http.StatusTooManyRequests)
			return
		}
	}
	st := &conn{srv: s, shard: uint8(rand.N(32)), id: s.hub.NextConnID(), ip: ip, querySince: since,
		ipHeld: lim.ConnsPerIP != nil, userHeld: userKey}
	wsc, err := wspoll.Upgrade(s.upgrader, w, r)
	if err != nil {
		s.log.Debug("upgrade failed", "ip", ip, "err", err)
		st.releaseSlots(st.takeSlots())
		return // the upgrader has answered
	}
	st.ws = wsc
	st.heard() // a silent socket is dropped even before its first message
	s.log.Info("connect", "event", "connect", "conn", st.id, "ip", ip, "origin", origin,
		"user_agent", r.UserAgent(), "transport", "ws", "header_auth", authed)
	var hp *auth.Principal
	if authed {
		hp = &p
	}
	// Bind the socket in its own job queue, where nbio also runs its
	// message and close handlers: a message handled before the bind is kept
	// and queued by it, a close handled after it finds the session.
	if !wsc.Execute(func() { s.bind(st, hp) }) {
		// Closed before the bind: onClose found no session, so nothing
		// else holds st.
		s.early.Drop(wsc)
		st.releaseSlots(st.takeSlots())
		s.log.Debug("disconnect", "conn", st.id, "reason", hub.ReasonClientClosed.Label())
	}
}

// bind makes st the session of its socket and starts it: attached to the
// hub (header auth) or waiting for the auth message. It runs in the socket's
// job queue, possibly in the poller, so it must not block: with header auth
// the per-user slot is already held, and hub.Attach does not block.
func (s *Server) bind(st *conn, p *auth.Principal) {
	st.ws.SetSession(st)
	s.reg.add(st)
	if p != nil {
		st.attach(*p, st.querySince)
	} else {
		st.mu.Lock()
		st.unauthHeld = true
		st.authTimer = time.AfterFunc(s.cfg.AuthTimeout, st.authTimeout)
		st.mu.Unlock()
		s.unauth.Add(1)
	}
	early, overflow := s.early.Take(st.ws)
	for _, m := range early {
		st.push(inbound{mt: m.Type, data: m.Data})
	}
	if overflow {
		s.log.Warn("too many messages before the socket was ready", "event", "rate_limited", "scope", "messages", "conn", st.id, "ip", st.ip)
		st.closeWith(hub.ReasonPolicyViolation)
	}
}

// onMessage runs in the poller: it copies the message onto the connection's
// queue and returns (see inbound.go).
func (s *Server) onMessage(wsc *websocket.Conn, mt websocket.MessageType, data []byte) {
	st, ok := wsc.Session().(*conn)
	if !ok {
		s.early.Add(wsc, mt, data, s.maxQueuedBytes())
		return
	}
	st.heard()
	st.enqueue(mt, data)
}

// onClose runs in the poller, or in the goroutine that closed the socket. It
// queues the end of the connection behind its pending messages: the cleanup
// may wait on a Redis limiter.
func (s *Server) onClose(wsc *websocket.Conn, err error) {
	st, ok := wsc.Session().(*conn)
	if !ok {
		s.early.Drop(wsc) // closed before the bind: ServeHTTP cleans up
		return
	}
	st.push(inbound{end: true, err: err})
}

// maxQueuedBytes bounds the bytes of a connection's messages waiting to be
// handled.
func (s *Server) maxQueuedBytes() int { return 4 * s.cfg.MaxMessageBytes }

// pingLoop pings every socket each PingInterval, and closes (4002) those
// that sent nothing, not even a pong, for PingInterval+PongTimeout: it
// checks every quarter of the shorter of the two, so a silent socket goes
// at most that much later.
func (s *Server) pingLoop() {
	defer close(s.pingDone)
	ping := time.NewTicker(s.cfg.PingInterval)
	defer ping.Stop()
	check := time.NewTicker(max(min(s.cfg.PingInterval, s.cfg.PongTimeout)/4, 10*time.Millisecond))
	defer check.Stop()
	silence := (s.cfg.PingInterval + s.cfg.PongTimeout).Nanoseconds()
	for {
		select {
		case <-s.stopPing:
			return
		case <-ping.C:
			s.reg.each(func(c *conn) { _ = c.write(websocket.PingMessage, nil, true) })
		case now := <-check.C:
			var silent []*conn
			s.reg.each(func(c *conn) {
				if now.UnixNano()-c.lastRead.Load() > silence && !c.closing() {
					silent = append(silent, c)
				}
			})
			for _, c := range silent { // outside the registry's locks
				c.closeWith(hub.ReasonPingTimeout)
			}
		}
	}
}

// registry is the set of open sockets, sharded to keep lock hold times short
// on connect storms.
type registry struct {
	shards [32]struct {
		mu sync.Mutex
		m  map[*conn]struct{}
	}
}

func (r *registry) init() {
	for i := range r.shards {
		r.shards[i].m = make(map[*conn]struct{})
	}
}

func (r *registry) shard(c *conn) int { return int(c.shard) % len(r.shards) }

func (r *registry) add(c *conn) {
	sh := &r.shards[r.shard(c)]
	sh.mu.Lock()
	sh.m[c] = struct{}{}
	sh.mu.Unlock()
}

func (r *registry) remove(c *conn) {
	sh := &r.shards[r.shard(c)]
	sh.mu.Lock()
	delete(sh.m, c)
	sh.mu.Unlock()
}

func (r *registry) len() int {
	n := 0
	for i := range r.shards {
		r.shards[i].mu.Lock()
		n += len(r.shards[i].m)
		r.shards[i].mu.Unlock()
	}
	return n
}

func (r *registry) each(fn func(*conn)) {
	var batch []*conn
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.Lock()
		batch = batch[:0]
		for c := range sh.m {
			batch = append(batch, c)
		}
		sh.mu.Unlock()
		for _, c := range batch {
			fn(c)
		}
	}
}
