package socketio

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net"
	"net/http"
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
	"github.com/heraldhq/herald/internal/wspoll"
)

// Server is the Socket.IO endpoint: an http.Handler for /socket.io/ serving
// Engine.IO v4 (HTTP long-polling, WebSocket, the upgrade between them) and
// Socket.IO v5 on top, with each namespace socket attached to the hub as one
// client.
type Server struct {
	cfg      Config // static after New
	hub      *hub.Hub
	verifier Verifier
	inbox    Inbox
	log      *slog.Logger
	engine   *nbhttp.Engine
	upgrader *websocket.Upgrader
	epoch    time.Time     // static: origin of the session clock (monotonic)
	tick     time.Duration // static: sweeper period

	reg       registry
	early     wspoll.Early
	unauth    atomic.Int64 // sessions that have not connected a namespace yet
	closing   atomic.Bool  // CloseAll called: no new sessions
	stop      chan struct{}
	sweepDone chan struct{}
	startOnce sync.Once
	stopOnce  sync.Once
}

// New builds the endpoint; call Start before serving.
func New(cfg Config, h *hub.Hub, v Verifier, in Inbox) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logging.SetLevel(logging.LevelError) // nbio's own logger writes to stdout
	s := &Server{cfg: cfg, hub: h, verifier: v, inbox: in, log: cfg.Logger, epoch: time.Now(),
		stop: make(chan struct{}), sweepDone: make(chan struct{})}
	s.tick = min(cfg.PingInterval, cfg.PingTimeout, cfg.AuthTimeout, cfg.CloseGrace) / 8
	s.tick = min(max(s.tick, 5*time.Millisecond), 500*time.Millisecond)
	s.reg.init()
	s.early.Max = 8 // messages a connection may send before its session is bound
	s.engine = nbhttp.NewEngine(nbhttp.Config{
		Name:                    "herald-socketio",
		NPoller:                 cfg.Pollers,
		ReleaseWebsocketPayload: true,
		// Hard cap: nbio drops a connection whose unwritten data would exceed
		// it. Our soft cap (WriteBufferBytes) closes it first, as a slow consumer.
		MaxWriteBufferSize: cfg.WriteBufferBytes + 64<<10,
		// nbio's own frame handling (control frames, the close handshake and
		// its close of the socket) runs inline in the poller; our handlers
		// only queue work on the session's worker. A socket closed from
		// another goroutine while the poller holds a pending event for its
		// fd can make that stale event close the next connection given the
		// same fd number (seen under connection churn); closing in the
		// poller avoids it for client-initiated closes.
		ServerExecutor: func(f func()) { f() },
	})
	s.engine.OnWrittenSize(func(c *nbio.Conn, _ []byte, n int) {
		if wsc, ok := c.Session().(*websocket.Conn); ok {
			if t, ok := wsc.Session().(*wsTransport); ok {
				t.queued.Add(-int64(n))
			}
		}
	})
	u := websocket.NewUpgrader()
	u.Engine = s.engine
	// No nbio keepalive (a runtime timer per socket, reset on every frame,
	// closing from outside the poller): every socket belongs to a session
	// or an upgrade probe, whose deadlines (heartbeat, probe timeout, close
	// grace) the sweeper runs.
	u.KeepaliveTime = 0
	u.MessageLengthLimit = cfg.MaxPayload
	u.CheckOrigin = func(*http.Request) bool { return true } // checked in ServeHTTP, before the upgrade
	u.BlockingModAsyncWrite = false
	u.EnableCompression(false)
	u.OnMessage(s.onWSMessage)
	u.OnClose(s.onWSClose)
	s.upgrader = u
	return s, nil
}

// Start starts the poller and the sweeper (heartbeats and deadlines).
func (s *Server) Start() error {
	var err error
	s.startOnce.Do(func() {
		if err = s.engine.Start(); err != nil {
			err = fmt.Errorf("socketio: start poller: %w", err)
			close(s.sweepDone)
			return
		}
		go s.sweep()
	})
	return err
}

// CloseAll closes every session with reason and refuses new ones. Long-poll
// requests are answered at once, so an HTTP server shutdown need not wait
// for them.
func (s *Server) CloseAll(reason hub.CloseReason) {
	s.closing.Store(true)
	s.reg.each(func(ss *session) { ss.close(reason) })
}

// Shutdown closes every session (shutdown), gives their last packets
// CloseGrace to leave, then stops the sweeper and the poller. ctx bounds the
// wait.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopOnce.Do(func() {
		s.CloseAll(hub.ReasonShutdown)
		deadline := time.NewTimer(s.cfg.CloseGrace)
		defer deadline.Stop()
	wait:
		for s.reg.len() > 0 {
			select {
			case <-ctx.Done():
				break wait
			case <-deadline.C:
				break wait
			case <-time.After(10 * time.Millisecond):
			}
		}
		s.reg.each(func(ss *session) { ss.finalize() })
		close(s.stop)
		<-s.sweepDone
		s.engine.Stop()
	})
	return ctx.Err()
}

// Active is the number of open sessions (polling or WebSocket).
func (s *Server) Active() int { return s.reg.len() }

// now is the session clock: nanoseconds since the server started (monotonic).
func (s *Server) now() int64 { return int64(time.Since(s.epoch)) }

func (s *Server) sweep() {
	defer close(s.sweepDone)
	t := time.NewTicker(s.tick)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			now := s.now()
			s.reg.each(func(ss *session) { ss.tick(now) })
		}
	}
}

// Engine.IO HTTP error codes (engine.io's Server.errorMessages).
const (
	errTransportUnknown = 0
	errUnknownSID       = 1
	errBadHandshake     = 2
	errBadRequest       = 3
	errForbidden        = 4
	errBadVersion       = 5
)

var errorMessages = [...]string{"Transport unknown", "Session ID unknown", "Bad handshake method", "Bad request", "Forbidden", "Unsupported protocol version"}

func httpError(w http.ResponseWriter, status, code int) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"code":%d,"message":%q}`, code, errorMessages[code])
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func bearer(r *http.Request) string {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

// ServeHTTP handles /socket.io/.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/socket.io/" {
		http.NotFound(w, r)
		return
	}
	origin := r.Header.Get("Origin")
	w.Header().Add("Vary", "Origin")
	if !s.cfg.AllowOrigin(origin) {
		s.log.Warn("origin rejected", "event", "origin_rejected", "ip", clientIP(r), "origin", origin, "transport", "socketio")
		httpError(w, http.StatusForbidden, errForbidden)
		return
	}
	if r.Method == http.MethodOptions {
		s.preflight(w, r, origin)
		return
	}
	q := r.URL.Query()
	if q.Get("EIO") != "4" {
		httpError(w, http.StatusBadRequest, errBadVersion)
		return
	}
	sid := q.Get("sid")
	switch q.Get("transport") {
	case "polling":
		if origin != "" {
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Credentials", "true")
		}
		switch {
		case sid == "" && r.Method == http.MethodGet:
			s.handshakePolling(w, r)
		case sid == "":
			httpError(w, http.StatusBadRequest, errBadHandshake)
		case r.Method == http.MethodGet:
			s.servePoll(w, r, sid)
		case r.Method == http.MethodPost:
			s.servePost(w, r, sid)
		default:
			httpError(w, http.StatusBadRequest, errBadRequest)
		}
	case "websocket":
		if r.Method != http.MethodGet || !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			httpError(w, http.StatusBadRequest, errBadRequest)
			return
		}
		s.serveWebSocket(w, r, sid)
	default:
		httpError(w, http.StatusBadRequest, errTransportUnknown)
	}
}

// preflight answers a CORS preflight for polling requests from an allowed origin.
func (s *Server) preflight(w http.ResponseWriter, r *http.Request, origin string) {
	if origin == "" || r.Header.Get("Access-Control-Request-Method") == "" {
		httpError(w, http.StatusBadRequest, errBadRequest)
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Credentials", "true")
	h.Set("Access-Control-Allow-Methods", "GET, POST")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}

// admission is what a new session holds from the node's limits.
type admission struct {
	ip          string
	headerToken string // a valid bearer token of the handshake, for CONNECTs without auth.token
	ipHeld      bool
	unauthHeld  bool
}

// admit applies the node's limits to a new session. On refusal it has
// answered the request and holds nothing.
func (s *Server) admit(w http.ResponseWriter, r *http.Request, transport string) (admission, bool) {
	a := admission{ip: clientIP(r)}
	lim := &s.cfg.Limits
	if s.closing.Load() {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "server shutting down", http.StatusServiceUnavailable)
		return a, false
	}
	if s.reg.len() >= s.cfg.MaxSessions {
		s.log.Warn("session limit reached", "event", "limit_exceeded", "scope", "sessions", "limit", s.cfg.MaxSessions, "ip", a.ip)
		w.Header().Set("Retry-After", "5")
		http.Error(w, "too many connections", http.StatusServiceUnavailable)
		return a, false
	}
	if tok := bearer(r); tok != "" && len(tok) <= maxTokenLen {
		if _, err := s.verifier.Verify(tok); err != nil {
			s.log.Warn("token rejected", "event", "token_invalid", "reason", auth.ReasonOf(err), "ip", a.ip, "transport", "socketio")
		} else {
			a.headerToken = tok
		}
	}
	if a.headerToken == "" {
		if lim.Handshakes != nil {
			if ok, _ := lim.Handshakes.Allow(a.ip); !ok {
				s.log.Warn("handshake rate limited", "event", "rate_limited", "scope", "handshake", "ip", a.ip, "transport", "socketio")
				w.Header().Set("Retry-After", "1")
				http.Error(w, "too many requests", http.StatusTooManyRequests)
				return a, false
			}
		}
		if lim.MaxUnauthenticated > 0 && s.unauth.Load() >= lim.MaxUnauthenticated {
			s.log.Warn("unauthenticated session cap reached", "event", "limit_exceeded", "scope", "unauthenticated", "ip", a.ip)
			w.Header().Set("Retry-After", "1")
			http.Error(w, "server busy", http.StatusServiceUnavailable)
			return a, false
		}
	}
	if lim.ConnsPerIP != nil {
		if !lim.ConnsPerIP.Acquire(a.ip) {
			s.log.Warn("per-IP connection cap reached", "event", "limit_exceeded", "scope", "ip", "ip", a.ip)
			w.Header().Set("Retry-After", "5")
			http.Error(w, "too many connections from this address", http.StatusTooManyRequests)
			return a, false
		}
		a.ipHeld = true
	}
	a.unauthHeld = true
	s.unauth.Add(1)
	s.log.Info("connect", "event", "connect", "ip", a.ip, "origin", r.Header.Get("Origin"),
		"user_agent", r.UserAgent(), "transport", "socketio", "engine", transport, "header_auth", a.headerToken != "")
	return a, true
}

// release returns what a refused or failed handshake held.
func (s *Server) release(a *admission) {
	if a.ipHeld {
		s.cfg.Limits.ConnsPerIP.Release(a.ip)
		a.ipHeld = false
	}
	if a.unauthHeld {
		s.unauth.Add(-1)
		a.unauthHeld = false
	}
}

// newSession builds a session for an admitted handshake; the caller registers it.
func (s *Server) newSession(a admission) *session {
	now := s.now()
	ss := &session{
		srv:          s,
		id:           newID(),
		connID:       s.hub.NextConnID(),
		ip:           a.ip,
		headerToken:  a.headerToken,
		ipHeld:       a.ipHeld,
		unauthHeld:   a.unauthHeld,
		authDeadline: now + int64(s.cfg.AuthTimeout),
		nextPing:     now + int64(s.cfg.PingInterval),
	}
	return ss
}

// newID returns a random 128-bit id, base64url-encoded (22 characters).
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// nsIndex is the index of namespace nsp in cfg.Namespaces, or -1.
func (s *Server) nsIndex(nsp string) int {
	for i, n := range s.cfg.Namespaces {
		if n == nsp {
			return i
		}
	}
	return -1
}

// registry maps session ids to sessions, sharded to keep lock hold times
// short on connect storms.
type registry struct {
	seed   maphash.Seed
	count  atomic.Int64
	shards [32]struct {
		mu sync.Mutex
		m  map[string]*session
	}
}

func (r *registry) init() {
	r.seed = maphash.MakeSeed()
	for i := range r.shards {
		r.shards[i].m = make(map[string]*session)
	}
}

func (r *registry) shard(id string) int {
	return int(maphash.String(r.seed, id) % uint64(len(r.shards)))
}

func (r *registry) add(ss *session) {
	sh := &r.shards[r.shard(ss.id)]
	sh.mu.Lock()
	sh.m[ss.id] = ss
	sh.mu.Unlock()
	r.count.Add(1)
}

func (r *registry) get(id string) *session {
	sh := &r.shards[r.shard(id)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.m[id]
}

func (r *registry) remove(ss *session) {
	sh := &r.shards[r.shard(ss.id)]
	sh.mu.Lock()
	if sh.m[ss.id] == ss {
		delete(sh.m, ss.id)
		r.count.Add(-1)
	}
	sh.mu.Unlock()
}

func (r *registry) len() int { return int(r.count.Load()) }

// each calls fn for every session, outside of the registry's locks.
func (r *registry) each(fn func(*session)) {
	var batch []*session
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.Lock()
		batch = batch[:0]
		for _, ss := range sh.m {
			batch = append(batch, ss)
		}
		sh.mu.Unlock()
		for _, ss := range batch {
			fn(ss)
		}
	}
}
