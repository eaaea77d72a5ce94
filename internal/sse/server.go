package sse

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/logging"

	"github.com/heraldhq/herald/internal/admission"
	"github.com/heraldhq/herald/internal/audit"
	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/defaults"
	"github.com/heraldhq/herald/internal/hub"
	"github.com/heraldhq/herald/internal/session"
	"github.com/heraldhq/herald/internal/wspoll"
)

// Defaults of Config.
const (
	DefaultRetry             = 3 * time.Second
	DefaultShutdownRetryMin  = time.Second
	DefaultShutdownRetryMax  = 5 * time.Second
	DefaultHeartbeatInterval = 20 * time.Second
	DefaultWriteTimeout      = 10 * time.Second
	DefaultWriteBufferBytes  = 256 << 10
	DefaultCloseGrace        = 2 * time.Second
	DefaultTicketTTL         = 30 * time.Second
	DefaultMaxTickets        = 100000
	DefaultMaxTicketsPerUser = 16
	DefaultPollers           = 1
)

// Config tunes the SSE transport. The zero value means the documented
// defaults, except AllowOrigin, which is required. The node's connection
// limits (node-wide, per IP, per user) are admission.Config's, shared with
// the other transports; the protocol's are session.Config's.
type Config struct {
	// Revoked, when set, re-checks a ticket's identity against the
	// revocation list when the ticket is redeemed (a ticket issued before a
	// revocation must not open a stream after it).
	Revoked func(auth.Principal) error
	// AllowOrigin decides whether a browser on origin may open a stream or
	// get a ticket. Required.
	AllowOrigin func(origin string) bool
	// Retry is the reconnection delay advised at stream start. Default
	// DefaultRetry.
	Retry time.Duration
	// ShutdownRetryMin/Max bound the random reconnection delay advised when
	// the server drains, spreading the reconnect storm. Default
	// DefaultShutdownRetryMin and DefaultShutdownRetryMax.
	ShutdownRetryMin, ShutdownRetryMax time.Duration
	// HeartbeatInterval between ": hb" comments. Default DefaultHeartbeatInterval.
	HeartbeatInterval time.Duration
	// WriteTimeout: a stream whose pending bytes see no progress for this
	// long is closed as a slow consumer (the per-write deadline). Default
	// DefaultWriteTimeout.
	WriteTimeout time.Duration
	// WriteBufferBytes bounds bytes queued for a stream and not yet taken by
	// the kernel; an event that would exceed it closes the stream as a slow
	// consumer. Default DefaultWriteBufferBytes.
	WriteBufferBytes int
	// CloseGrace: time given to flush the close event before the connection
	// is dropped. Default DefaultCloseGrace.
	CloseGrace time.Duration
	// TicketTTL: validity of a stream ticket (never beyond its token's
	// expiry). Default DefaultTicketTTL.
	TicketTTL time.Duration
	// MaxTickets outstanding in this node's memory (503 above);
	// MaxTicketsPerUser outstanding per user (429 above). Defaults
	// DefaultMaxTickets and DefaultMaxTicketsPerUser.
	MaxTickets, MaxTicketsPerUser int
	// Tickets, when set, keeps tickets where every node sees them (a
	// ticket issued by one node opens a stream on another). While it fails,
	// tickets are issued in this node's memory. nil: memory only.
	Tickets TicketStore
	// Pollers: nbio poller goroutines. Default DefaultPollers (streams
	// hardly read).
	Pollers int
	// DisableHijack serves every stream from its handler goroutine, as on
	// HTTP/2 and TLS (tests; environments where hijacking misbehaves).
	DisableHijack bool
	// Now is the ticket clock. Default time.Now.
	Now func() time.Time
	// Logger: default the session core's.
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	defaults.Positive(&c.Retry, DefaultRetry)
	defaults.Positive(&c.ShutdownRetryMin, DefaultShutdownRetryMin)
	defaults.Positive(&c.ShutdownRetryMax, DefaultShutdownRetryMax)
	defaults.Positive(&c.HeartbeatInterval, DefaultHeartbeatInterval)
	defaults.Positive(&c.WriteTimeout, DefaultWriteTimeout)
	defaults.Positive(&c.CloseGrace, DefaultCloseGrace)
	defaults.Positive(&c.TicketTTL, DefaultTicketTTL)
	defaults.Positive(&c.WriteBufferBytes, DefaultWriteBufferBytes)
	defaults.Positive(&c.MaxTickets, DefaultMaxTickets)
	defaults.Positive(&c.MaxTicketsPerUser, DefaultMaxTicketsPerUser)
	defaults.Positive(&c.Pollers, DefaultPollers)
	if c.ShutdownRetryMax < c.ShutdownRetryMin {
		c.ShutdownRetryMax = c.ShutdownRetryMin
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Server is the SSE transport. Register its routes, Start it, and Shutdown
// it after the hub has closed its clients.
//
// There is no SSE-only stream cap: streams count against the node-wide
// connection cap (admission.Config.MaxConnections) with every other
// transport's connections, and against the per-IP and per-user caps.
type Server struct {
	cfg     Config // static after New
	core    *session.Core
	adm     *admission.Controller
	audit   *audit.Recorder
	errs    session.HTTPErrors
	log     *slog.Logger
	tickets *tickets
	engine  *nbio.Engine

	reg    wspoll.Registry[*stream, *stream] // hijacked streams
	active atomic.Int64                      // streams of both kinds
	// wg counts handler-goroutine streams and the cleanups of hijacked
	// streams (which may wait on Redis, so they run off the poller).
	wg        sync.WaitGroup
	closed    atomic.Bool
	stop      chan struct{} // closed by Shutdown
	loopDone  chan struct{}
	started   atomic.Bool
	closeOnce sync.Once
}

// New builds the transport on the node's session core (hub, verifier,
// admission, audit); call Start before serving.
func New(cfg Config, core *session.Core) (*Server, error) {
	cfg.setDefaults()
	logging.SetLevel(logging.LevelError) // nbio's own logger writes to stdout
	if cfg.AllowOrigin == nil || core == nil {
		return nil, errors.New("sse: AllowOrigin and the session core are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = core.Logger()
	}
	adm := core.Admission()
	s := &Server{cfg: cfg, core: core, adm: adm, audit: core.Audit(), log: cfg.Logger,
		errs:    session.HTTPErrors{Log: cfg.Logger, ClientIP: adm.ClientIP, Transport: admission.SSE.String()},
		tickets: newTickets(cfg.TicketTTL, cfg.MaxTickets, cfg.MaxTicketsPerUser, cfg.Now),
		stop:    make(chan struct{}), loopDone: make(chan struct{})}
	s.tickets.shared, s.tickets.log, s.tickets.audit = cfg.Tickets, cfg.Logger, core.Audit()
	s.reg.Init()
	s.engine = nbio.NewEngine(nbio.Config{
		Name:    "herald-sse",
		NPoller: cfg.Pollers,
		// A stream's client sends nothing after its request: a small shared
		// read buffer per poller is enough to notice (and refuse) data.
		ReadBufferSize: 1024,
		// Hard cap: nbio drops a connection whose unwritten data would exceed
		// it. The soft cap (WriteBufferBytes) closes it first, with a close
		// event, which may exceed the soft cap by a few bytes.
		MaxWriteBufferSize: cfg.WriteBufferBytes + 64<<10,
	})
	s.engine.OnWrittenSize(s.onWritten)
	s.engine.OnData(s.onData)
	s.engine.OnClose(s.onClose)
	return s, nil
}

// Start starts the poller and the heartbeat loop.
func (s *Server) Start() error {
	if err := s.engine.Start(); err != nil {
		return fmt.Errorf("sse: start poller: %w", err)
	}
	s.started.Store(true)
	go s.loop()
	return nil
}

// Register adds the transport's routes to mux.
func (s *Server) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/me/stream", s.serveStream)
	mux.HandleFunc("POST /v1/me/stream-tickets", s.issueTicket)
	mux.HandleFunc("OPTIONS /v1/me/stream", s.preflight)
	mux.HandleFunc("OPTIONS /v1/me/stream-tickets", s.preflight)
}

// Active is the number of open streams.
func (s *Server) Active() int64 { return s.active.Load() }

// Shutdown refuses new streams, closes the open ones with a shutdown close
// event and a jittered retry, waits (bounded by ctx) for them to flush and
// stops the poller. Call it after hub.Close, which closes attached clients
// the same way; Shutdown catches streams that were not attached yet.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		close(s.stop)
		if s.started.Load() {
			<-s.loopDone
		}
		s.reg.Each(func(st *stream) { st.sess.Close(hub.ReasonShutdown) })
		for s.reg.Len() > 0 && ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
		}
		done := make(chan struct{})
		go func() { s.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
		}
		if s.started.Load() {
			s.engine.Stop()
		}
	})
	return ctx.Err()
}

// shutdownRetry is the jittered reconnection advice sent when draining.
func (s *Server) shutdownRetry() time.Duration {
	lo, hi := s.cfg.ShutdownRetryMin, s.cfg.ShutdownRetryMax
	if hi <= lo {
		return lo
	}
	return lo + rand.N(hi-lo)
}

// loop sends heartbeats to hijacked streams and closes those whose pending
// bytes made no progress within WriteTimeout. One goroutine for all.
func (s *Server) loop() {
	defer close(s.loopDone)
	tick := min(s.cfg.HeartbeatInterval, s.cfg.WriteTimeout/2)
	t := time.NewTicker(max(tick, 5*time.Millisecond))
	defer t.Stop()
	lastHB := time.Now()
	var batch []*stream
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			hb := now.Sub(lastHB) >= s.cfg.HeartbeatInterval-tick/2
			if hb {
				lastHB = now
			}
			deadline := now.Add(-s.cfg.WriteTimeout).UnixNano()
			batch = s.reg.Snapshot(batch[:0])
			for _, st := range batch {
				switch {
				case st.stalled(deadline):
					s.log.Info("stream write timed out", "conn", st.sess.ID(), "queued", st.queued.Load())
					st.sess.Close(hub.ReasonSlowConsumer)
				case hb:
					_ = st.write(heartbeat, false)
				}
			}
			clear(batch)
		}
	}
}
