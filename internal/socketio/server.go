package socketio

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lesismal/nbio/nbhttp"
	"github.com/lesismal/nbio/nbhttp/websocket"

	"github.com/heraldhq/herald/internal/admission"
	"github.com/heraldhq/herald/internal/audit"
	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/hub"
	originpkg "github.com/heraldhq/herald/internal/origin"
	proto "github.com/heraldhq/herald/internal/session"
	"github.com/heraldhq/herald/internal/wspoll"
)

// Server is the Socket.IO endpoint: an http.Handler for /socket.io/ serving
// Engine.IO v4 (HTTP long-polling, WebSocket, the upgrade between them) and
// Socket.IO v5 on top, with each namespace socket attached to the hub as one
// client.
type Server struct {
	cfg      Config // static after New
	core     *proto.Core
	adm      *admission.Controller
	audit    *audit.Recorder
	log      *slog.Logger
	engine   *nbhttp.Engine
	started  atomic.Int64 // UnixNano of Start (wspoll.StopEngine)
	upgrader *websocket.Upgrader
	epoch    time.Time     // static: origin of the session clock (monotonic)
	tick     time.Duration // static: sweeper period

	reg       wspoll.Registry[sid, *session]
	tokens    tokenHeaders // header segments of the sessions' packed tokens
	early     wspoll.Early
	closing   atomic.Bool // CloseAll called: no new sessions
	stop      chan struct{}
	sweepDone chan struct{}
	startOnce sync.Once
	stopOnce  sync.Once
}

// New builds the endpoint; call Start before serving.
func New(cfg Config, core *proto.Core) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if core == nil {
		return nil, errors.New("socketio: the session core is required")
	}
	s := &Server{cfg: cfg, core: core, adm: core.Admission(), audit: core.Audit(), log: cfg.Logger, epoch: time.Now(),
		stop: make(chan struct{}), sweepDone: make(chan struct{})}
	s.tick = min(cfg.PingInterval, cfg.PingTimeout, core.AuthTimeout(), cfg.CloseGrace) / 8
	s.tick = min(max(s.tick, 5*time.Millisecond), 500*time.Millisecond)
	s.reg.Init()
	s.early.Max = 8 // messages a connection may send before its session is bound
	s.engine = wspoll.NewEngine("herald-socketio", cfg.Pollers, cfg.WriteBufferBytes)
	// Text frames are checked for UTF-8 in onWSPacket, to answer 1007
	// (RFC 6455 §8.1; nbio would answer 1002).
	s.engine.CheckUtf8 = func([]byte) bool { return true }
	// Every socket belongs to a session or an upgrade probe, whose
	// deadlines (heartbeat, probe timeout, close grace) the sweeper runs.
	u := wspoll.NewUpgrader(s.engine, cfg.MaxPayload)
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
		s.started.Store(time.Now().UnixNano())
		go s.sweep()
	})
	return err
}

// CloseAll closes every session with reason and refuses new ones. Long-poll
// requests are answered at once, so an HTTP server shutdown need not wait
// for them.
func (s *Server) CloseAll(reason hub.CloseReason) {
	s.closing.Store(true)
	s.reg.Each(func(ss *session) { ss.close(reason) })
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
		for s.reg.Len() > 0 {
			select {
			case <-ctx.Done():
				break wait
			case <-deadline.C:
				break wait
			case <-time.After(10 * time.Millisecond):
			}
		}
		s.reg.Each(func(ss *session) { ss.finalize() })
		close(s.stop)
		<-s.sweepDone
		wspoll.StopEngine(s.engine, s.started.Load())
	})
	return ctx.Err()
}

// Active is the number of open sessions (polling or WebSocket).
func (s *Server) Active() int { return s.reg.Len() }

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
			s.reg.Each(func(ss *session) { ss.tick(now) })
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

// ServeHTTP handles /socket.io/. A request without a sid (other than a
// preflight) asks for a new session: admission counts it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodOptions || r.URL.Query().Get("sid") != "" {
		s.route(w, r)
		return
	}
	s.adm.Attempt(admission.SocketIO)
	if !s.route(w, r) {
		s.adm.Rejected(admission.SocketIO)
	}
}

// route serves a request; it reports whether a new session's handshake
// reached admission (which then counted the outcome itself).
func (s *Server) route(w http.ResponseWriter, r *http.Request) (admitted bool) {
	if r.URL.Path != "/socket.io/" {
		http.NotFound(w, r)
		return false
	}
	origin := r.Header.Get("Origin")
	w.Header().Add("Vary", "Origin")
	if !s.cfg.AllowOrigin(origin) {
		s.audit.Warn(audit.OriginRejected, "origin rejected", "ip", s.adm.ClientIP(r), "origin", origin, "transport", "socketio")
		httpError(w, http.StatusForbidden, errForbidden)
		return false
	}
	if r.Method == http.MethodOptions {
		s.preflight(w, r, origin)
		return false
	}
	q := r.URL.Query()
	if q.Get("EIO") != "4" {
		httpError(w, http.StatusBadRequest, errBadVersion)
		return false
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
			return true
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
		if he := wspoll.CheckHandshake(r); he != nil { // RFC 6455 §4.2.1, before nbio's laxer check
			wspoll.SetVersionHeader(w.Header())
			httpError(w, he.Status, errBadRequest)
			return false
		}
		s.serveWebSocket(w, r, sid)
		return sid == ""
	default:
		httpError(w, http.StatusBadRequest, errTransportUnknown)
	}
	return false
}

// preflight answers a CORS preflight for polling requests from an allowed
// origin (ServeHTTP has checked it).
func (s *Server) preflight(w http.ResponseWriter, r *http.Request, origin string) {
	if origin == "" || r.Header.Get("Access-Control-Request-Method") == "" {
		httpError(w, http.StatusBadRequest, errBadRequest)
		return
	}
	originpkg.Preflight(w, r, s.cfg.AllowOrigin, "GET, POST", "Authorization, Content-Type")
}

// admit applies the node's admission policy to a new session (a handshake
// with a valid bearer token counts as authenticated). On refusal it has
// answered the request and returns nil.
func (s *Server) admit(w http.ResponseWriter, r *http.Request, engine string) *session {
	ip := s.adm.ClientIP(r)
	if s.closing.Load() {
		s.adm.Rejected(admission.SocketIO)
		w.Header().Set("Retry-After", "1")
		http.Error(w, "server shutting down", http.StatusServiceUnavailable)
		return nil
	}
	headerToken := ""
	if tok, present := auth.BearerToken(r); present {
		if _, err := s.core.Verify(tok, admission.SocketIO, ip); err == nil {
			headerToken = tok
		}
	}
	slot, refusal := s.adm.Admit(admission.Request{Transport: admission.SocketIO, IP: ip, Authenticated: headerToken != ""})
	if refusal != admission.RefusedNone {
		if ra := refusal.RetryAfter(); ra != "" {
			w.Header().Set("Retry-After", ra)
		}
		http.Error(w, refusal.Message(), refusal.Status())
		return nil
	}
	s.audit.Info(audit.Connect, "connect", "ip", ip, "origin", r.Header.Get("Origin"),
		"user_agent", r.UserAgent(), "transport", "socketio", "engine", engine, "header_auth", headerToken != "")
	now := s.now()
	return &session{
		srv:         s,
		id:          newSID(),
		connID:      s.core.NextConnID(),
		slot:        slot,
		headerToken: s.tokens.packToken(headerToken),
		deadline:    now + int64(s.core.AuthTimeout()),
		nextPing:    now + int64(s.cfg.PingInterval),
	}
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
