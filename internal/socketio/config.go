package socketio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"time"

	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/notification"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/ws"
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

// Config tunes the Socket.IO endpoint. The zero value means the documented
// defaults, except AllowOrigin, which is required.
type Config struct {
	// AllowOrigin decides whether a browser on origin may connect ("" — no
	// Origin header — is passed too). Required.
	AllowOrigin func(origin string) bool
	// PingInterval and PingTimeout are the Engine.IO heartbeat, sent to the
	// client in the open packet: the server pings every PingInterval after
	// the last pong and closes a session whose pong does not arrive within
	// PingTimeout. Defaults 25 s and 20 s (as Socket.IO's).
	PingInterval, PingTimeout time.Duration
	// MaxPayload bounds one WebSocket message, one polling POST body and the
	// attachments of one binary packet (Socket.IO's maxHttpBufferSize; the
	// client also reads it to batch polling writes). Default 100 000 bytes.
	MaxPayload int
	// MaxAttachments bounds the binary attachments of one packet. Default 10.
	MaxAttachments int
	// AuthTimeout: a session with no namespace connected with a valid token
	// within it is closed (auth_timeout). Default 10 s.
	AuthTimeout time.Duration
	// UpgradeTimeout: a polling→WebSocket upgrade not completed within it is
	// abandoned (the session stays on polling). Default 10 s.
	UpgradeTimeout time.Duration
	// WriteBufferBytes bounds bytes queued for a session: not yet taken by the
	// kernel (WebSocket) or not yet fetched by a GET (polling). A message
	// that would exceed it closes the session as a slow consumer. Default 256 KiB.
	WriteBufferBytes int
	// CloseGrace: time given to the last packets and the close handshake
	// before the connection or polling session is dropped. Default 2 s.
	CloseGrace time.Duration
	// RequestTimeout bounds one client request (mark read, list…). Default 10 s.
	RequestTimeout time.Duration
	// MaxInflight: concurrent requests per socket; more get rate_limited. Default 4.
	MaxInflight int
	// MaxInvalid: invalid events tolerated per session before it is closed
	// (policy_violation). Default 10.
	MaxInvalid int
	// MaxAuthFailures: rejected CONNECTs per session before it is closed. Default 3.
	MaxAuthFailures int
	// MaxSessions on this node (polling and WebSocket); new handshakes over
	// it get 503. Default 10000.
	MaxSessions int
	// Namespaces clients may connect to. Default "/" and "/notifications".
	Namespaces []string
	// Pollers: nbio poller goroutines. Default GOMAXPROCS/2, at least 1.
	Pollers int
	// ReconnectSpread: on shutdown each socket's notification:error carries
	// reconnect_after_ms, a random delay in [0, ReconnectSpread) to wait
	// before reconnecting (as /v1/ws's close reason does). Default 5 s.
	ReconnectSpread time.Duration
	// Limits shared with the other transports (same keys); nil fields mean no limit.
	Limits ws.Limits
	// OnMessage, when set, is called with the name of each valid client event.
	OnMessage func(event string)
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
	def(&c.PingInterval, 25*time.Second)
	def(&c.PingTimeout, 20*time.Second)
	def(&c.AuthTimeout, 10*time.Second)
	def(&c.UpgradeTimeout, 10*time.Second)
	def(&c.CloseGrace, 2*time.Second)
	def(&c.RequestTimeout, 10*time.Second)
	def(&c.ReconnectSpread, 5*time.Second)
	defInt(&c.MaxPayload, 100_000)
	defInt(&c.MaxAttachments, 10)
	defInt(&c.WriteBufferBytes, 256<<10)
	defInt(&c.MaxInflight, 4)
	defInt(&c.MaxInvalid, 10)
	defInt(&c.MaxAuthFailures, 3)
	defInt(&c.MaxSessions, 10000)
	defInt(&c.Pollers, max(1, runtime.GOMAXPROCS(0)/2))
	defInt(&c.Limits.AbuseStrikes, 20)
	if len(c.Namespaces) == 0 {
		c.Namespaces = []string{"/", "/notifications"}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// Validate checks the configuration after defaults are applied.
func (c *Config) Validate() error {
	var errs []error
	if c.AllowOrigin == nil {
		errs = append(errs, errors.New("socketio: AllowOrigin is required"))
	}
	if len(c.Namespaces) > 8 {
		errs = append(errs, errors.New("socketio: at most 8 namespaces"))
	}
	for _, n := range c.Namespaces {
		if !strings.HasPrefix(n, "/") || strings.ContainsAny(n, `,"\`) || len(n) > maxNamespaceLen {
			errs = append(errs, fmt.Errorf("socketio: invalid namespace %q (must start with / and contain no comma or quote)", n))
		}
	}
	if c.MaxPayload < 1024 {
		errs = append(errs, fmt.Errorf("socketio: MaxPayload %d is under 1024 bytes", c.MaxPayload))
	}
	if c.WriteBufferBytes < 4096 {
		errs = append(errs, fmt.Errorf("socketio: WriteBufferBytes %d is under 4096 bytes", c.WriteBufferBytes))
	}
	return errors.Join(errs...)
}
