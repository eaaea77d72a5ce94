package ws

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lesismal/nbio/nbhttp"
	"github.com/lesismal/nbio/nbhttp/websocket"

	"github.com/heraldhq/herald/internal/admission"
	"github.com/heraldhq/herald/internal/audit"
	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/defaults"
	"github.com/heraldhq/herald/internal/hub"
	"github.com/heraldhq/herald/internal/notification"
	"github.com/heraldhq/herald/internal/session"
	"github.com/heraldhq/herald/internal/wspoll"
)

// Defaults of Config.
const (
	DefaultMaxMessageBytes  = 16 << 10
	DefaultPingInterval     = 25 * time.Second
	DefaultPongTimeout      = 20 * time.Second
	DefaultWriteBufferBytes = 256 << 10
	DefaultCloseGrace       = 2 * time.Second
	DefaultReconnectSpread  = 5 * time.Second
)

// Config tunes the WebSocket transport. The zero value means the defaults.
// The protocol's own settings (auth deadline, request limits) are in
// session.Config, the node's limits in admission.Config.
type Config struct {
	// MaxMessageBytes: larger client messages close the socket (1009).
	// Default DefaultMaxMessageBytes.
	MaxMessageBytes int
	// PingInterval: server pings each socket this often. Default DefaultPingInterval.
	PingInterval time.Duration
	// PongTimeout: a socket silent for PingInterval+PongTimeout is closed.
	// Default DefaultPongTimeout.
	PongTimeout time.Duration
	// WriteBufferBytes bounds bytes queued for a socket but not yet taken by
	// the kernel; a message that would exceed it closes the socket as a slow
	// consumer (4008). Default DefaultWriteBufferBytes.
	WriteBufferBytes int
	// CloseGrace: time given to the close handshake before the TCP
	// connection is dropped. Default DefaultCloseGrace.
	CloseGrace time.Duration
	// ReconnectSpread: on shutdown each client is told (in the 4009 close
	// reason, "shutdown;reconnect_after_ms=N") to wait a random N in
	// [0, ReconnectSpread) before reconnecting, so a drained node's clients
	// do not reconnect to the others all at once. Default DefaultReconnectSpread.
	ReconnectSpread time.Duration
	// Pollers: nbio poller goroutines. Default GOMAXPROCS/2, at least 1.
	Pollers int
	// CheckOrigin decides whether a browser origin may connect. Required.
	CheckOrigin func(*http.Request) bool
	Logger      *slog.Logger
}

func (c *Config) setDefaults() {
	defaults.Positive(&c.PingInterval, DefaultPingInterval)
	defaults.Positive(&c.PongTimeout, DefaultPongTimeout)
	defaults.Positive(&c.CloseGrace, DefaultCloseGrace)
	defaults.Positive(&c.ReconnectSpread, DefaultReconnectSpread)
	defaults.Positive(&c.MaxMessageBytes, DefaultMaxMessageBytes)
	defaults.Positive(&c.WriteBufferBytes, DefaultWriteBufferBytes)
	defaults.Positive(&c.Pollers, defaults.Pollers())
	defaults.Logger(&c.Logger)
}

// Server is the WebSocket transport: an http.Handler for GET /v1/ws that
// upgrades with net/http and hands each socket to nbio's poller, so an idle
// socket costs no goroutine and no read buffer.
type Server struct {
	cfg      Config // static after New
	core     *session.Core
	adm      *admission.Controller
	audit    *audit.Recorder
	errs     session.HTTPErrors
	log      *slog.Logger
	engine   *nbhttp.Engine
	started  atomic.Int64 // UnixNano of Start (wspoll.StopEngine)
	upgrader *websocket.Upgrader

	reg       wspoll.Registry[*conn, *conn]
	early     wspoll.Early // messages that arrived before their socket was bound
	stopPing  chan struct{}
	pingDone  chan struct{}
	closeOnce sync.Once
}

// New builds the transport; call Start before serving.
func New(cfg Config, core *session.Core) (*Server, error) {
	cfg.setDefaults()
	if cfg.CheckOrigin == nil || core == nil {
		return nil, errors.New("ws: CheckOrigin and the session core are required")
	}
	adm := core.Admission()
	s := &Server{cfg: cfg, core: core, adm: adm, audit: core.Audit(), log: cfg.Logger,
		errs:     session.HTTPErrors{Log: cfg.Logger, ClientIP: adm.ClientIP, Transport: admission.WebSocket.String()},
		stopPing: make(chan struct{}), pingDone: make(chan struct{})}
	s.reg.Init()
	s.early.Max = maxQueued
	s.engine = wspoll.NewEngine("herald-ws", cfg.Pollers, cfg.WriteBufferBytes)
	// We validate UTF-8 ourselves to answer 1007 (RFC 6455 §8.1).
	s.engine.CheckUtf8 = func([]byte) bool { return true }
	// The ping loop checks lastRead instead of nbio's keepalive.
	u := wspoll.NewUpgrader(s.engine, cfg.MaxMessageBytes)
	u.OnMessage(s.onMessage)
	u.OnClose(s.onClose)
	u.SetPingHandler(func(c *websocket.Conn, data string) {
		// In the poller: nbio's writes do not block (unwritten bytes stay
		// in its bounded buffer until the socket is writable).
		if st, ok := c.Session().(*conn); ok {
			st.heard()
			_ = st.write(websocket.PongMessage, []byte(data), true)
		} else { // not bound yet: still answered (RFC 6455 §5.5.2)
			_ = c.WriteMessage(websocket.PongMessage, []byte(data))
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
	s.started.Store(time.Now().UnixNano())
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
		s.reg.Each(func(c *conn) { c.sess.Close(hub.ReasonShutdown) })
		// Give close frames a moment to reach the kernel.
		for s.reg.Len() > 0 && ctx.Err() == nil {
			time.Sleep(20 * time.Millisecond)
		}
		wspoll.StopEngine(s.engine, s.started.Load())
	})
	return ctx.Err()
}

// Active is the number of open WebSocket connections (authenticated or not).
func (s *Server) Active() int { return s.reg.Len() }

// ServeHTTP handles GET /v1/ws.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.adm.Attempt(admission.WebSocket)
	hp, since, ok := s.check(w, r)
	if !ok {
		s.adm.Rejected(admission.WebSocket)
		return
	}
	slot, refusal := s.adm.Admit(admission.Request{Transport: admission.WebSocket, IP: s.adm.ClientIP(r), Authenticated: hp != nil})
	if refusal != admission.RefusedNone {
		s.errs.Refuse(w, r, refusal)
		return
	}
	st := &conn{srv: s}
	if since != nil {
		st.pre = &preAuth{since: since}
	}
	s.core.InitSession(&st.sess, st, slot)
	if hp != nil {
		if err := st.sess.Reserve(*hp); err != nil {
			slot.Release()
			s.errs.Refuse(w, r, admission.RefusedPerUser)
			return
		}
	}
	s.upgrade(w, r, st, hp)
}

// check validates an upgrade request before admission: the handshake
// (RFC 6455 §4.2.1), origin, a header token and ?since=. On failure it has answered the request.
func (s *Server) check(w http.ResponseWriter, r *http.Request) (*auth.Principal, *notification.Position, bool) {
	ip := s.adm.ClientIP(r)
	if he := wspoll.CheckHandshake(r); he != nil { // RFC 6455 §4.2.1, before nbio's laxer check
		wspoll.SetVersionHeader(w.Header())
		code := session.CodeInvalidRequest
		switch he.Status {
		case http.StatusMethodNotAllowed:
			w.Header().Set("Allow", http.MethodGet)
			code = session.CodeMethodNotAllowed
		case http.StatusUpgradeRequired:
			code = session.CodeUpgradeRequired
		}
		s.errs.Fail(w, r, code, he.Reason, he)
		return nil, nil, false
	}
	if !s.cfg.CheckOrigin(r) {
		s.audit.Warn(audit.OriginRejected, "origin rejected", "ip", ip, "origin", r.Header.Get("Origin"), "transport", "ws")
		s.errs.Fail(w, r, session.CodeForbidden, "origin not allowed", nil)
		return nil, nil, false
	}
	var hp *auth.Principal
	if tok, present := auth.BearerToken(r); present {
		p, err := s.core.Verify(tok, admission.WebSocket, ip)
		if err != nil {
			s.errs.Unauthorized(w, r)
			return nil, nil, false
		}
		hp = &p
	}
	var since *notification.Position
	if qs := r.URL.Query().Get("since"); qs != "" {
		pos, err := notification.ParsePosition(qs)
		if err != nil {
			s.errs.Fail(w, r, session.CodeInvalidRequest, "invalid since", err)
			return nil, nil, false
		}
		since = &pos
	}
	return hp, since, true
}

// upgrade upgrades an admitted request and binds its socket.
func (s *Server) upgrade(w http.ResponseWriter, r *http.Request, st *conn, hp *auth.Principal) {
	wsc, err := wspoll.Upgrade(s.upgrader, w, r)
	if err != nil {
		s.log.Debug("upgrade failed", "ip", st.sess.IP(), "err", err)
		st.sess.End(hub.ReasonClientClosed)
		st.sess.Slot().Release()
		return // the upgrader has answered
	}
	st.ws = wsc
	st.heard() // a silent socket is dropped even before its first message
	s.audit.Info(audit.Connect, "connect", "conn", st.sess.ID(), "ip", st.sess.IP(), "origin", r.Header.Get("Origin"),
		"user_agent", r.UserAgent(), "transport", "ws", "header_auth", hp != nil)
	// Bind the socket in its own job queue, where nbio also runs its
	// message and close handlers: a message handled before the bind is kept
	// and queued by it, a close handled after it finds the session.
	if !wsc.Execute(func() { s.bind(st, hp) }) {
		// Closed before the bind: onClose found no session, so nothing
		// else holds st.
		s.early.Drop(wsc)
		st.sess.End(hub.ReasonClientClosed)
		st.sess.Slot().Release()
		s.log.Debug("disconnect", "conn", st.sess.ID(), "reason", hub.ReasonClientClosed.Label())
	}
}

// bind makes st the session of its socket and starts it: attached to the
// hub (header auth) or waiting for the auth message. It runs in the socket's
// job queue, possibly in the poller, so it must not block: with header auth
// the per-user slot is already held, and hub.Attach does not block.
func (s *Server) bind(st *conn, p *auth.Principal) {
	st.ws.SetSession(st)
	s.reg.Add(st, st)
	if p != nil {
		st.attach(*p, st.querySince())
	} else {
		st.startAuthTimer()
	}
	early, overflow := s.early.Take(st.ws)
	for _, m := range early {
		st.push(inbound{mt: m.Type, data: m.Data})
	}
	if overflow {
		s.audit.Warn(audit.RateLimited, "too many messages before the socket was ready", "scope", "messages",
			"conn", st.sess.ID(), "ip", st.sess.IP(), "transport", "ws")
		st.sess.Close(hub.ReasonPolicyViolation)
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
func (s *Server) maxQueuedBytes() int { return min(4*s.cfg.MaxMessageBytes, math.MaxInt32) }

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
			s.reg.Each(func(c *conn) { _ = c.write(websocket.PingMessage, nil, true) })
		case now := <-check.C:
			var silent []*conn
			s.reg.Each(func(c *conn) {
				if now.UnixNano()-c.lastRead.Load() > silence && !c.closing() {
					silent = append(silent, c)
				}
			})
			for _, c := range silent { // outside the registry's locks
				c.sess.Close(hub.ReasonPingTimeout)
			}
		}
	}
}
