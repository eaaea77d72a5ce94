package socketio

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/heraldhq/herald/internal/defaults"
)

// Defaults of Config (Socket.IO's own defaults where it has them).
const (
	DefaultPingInterval     = 25 * time.Second
	DefaultPingTimeout      = 20 * time.Second
	DefaultMaxPayload       = 100_000
	DefaultMaxAttachments   = 10
	DefaultUpgradeTimeout   = 10 * time.Second
	DefaultWriteBufferBytes = 256 << 10
	DefaultCloseGrace       = 2 * time.Second
	DefaultMaxAuthFailures  = 3
	DefaultReconnectSpread  = 5 * time.Second
)

// Config tunes the Socket.IO endpoint. The zero value means the documented
// defaults, except AllowOrigin, which is required. The protocol's own
// settings (auth deadline, request limits) are in session.Config, the
// node's limits in admission.Config.
type Config struct {
	// AllowOrigin decides whether a browser on origin may connect ("" — no
	// Origin header — is passed too). Required.
	AllowOrigin func(origin string) bool
	// PingInterval and PingTimeout are the Engine.IO heartbeat, sent to the
	// client in the open packet: the server pings every PingInterval after
	// the last pong and closes a session whose pong does not arrive within
	// PingTimeout. Defaults DefaultPingInterval and DefaultPingTimeout.
	PingInterval, PingTimeout time.Duration
	// MaxPayload bounds one WebSocket message, one polling POST body and the
	// attachments of one binary packet (Socket.IO's maxHttpBufferSize; the
	// client also reads it to batch polling writes). Default DefaultMaxPayload.
	MaxPayload int
	// MaxAttachments bounds the binary attachments of one packet. Default DefaultMaxAttachments.
	MaxAttachments int
	// UpgradeTimeout: a polling→WebSocket upgrade not completed within it is
	// abandoned (the session stays on polling). Default DefaultUpgradeTimeout.
	UpgradeTimeout time.Duration
	// WriteBufferBytes bounds bytes queued for a session: not yet taken by the
	// kernel (WebSocket) or not yet fetched by a GET (polling). A message
	// that would exceed it closes the session as a slow consumer. Default
	// DefaultWriteBufferBytes.
	WriteBufferBytes int
	// CloseGrace: time given to the last packets and the close handshake
	// before the connection or polling session is dropped. Default DefaultCloseGrace.
	CloseGrace time.Duration
	// MaxAuthFailures: rejected CONNECTs per session before it is closed.
	// Default DefaultMaxAuthFailures.
	MaxAuthFailures int
	// Namespaces clients may connect to. Default "/" and "/notifications".
	Namespaces []string
	// Pollers: nbio poller goroutines. Default GOMAXPROCS/2, at least 1.
	Pollers int
	// ReconnectSpread: on shutdown each socket's notification:error carries
	// reconnect_after_ms, a random delay in [0, ReconnectSpread) to wait
	// before reconnecting (as /v1/ws's close reason does). Default DefaultReconnectSpread.
	ReconnectSpread time.Duration
	Logger          *slog.Logger
}

func (c *Config) setDefaults() {
	defaults.Positive(&c.PingInterval, DefaultPingInterval)
	defaults.Positive(&c.PingTimeout, DefaultPingTimeout)
	defaults.Positive(&c.UpgradeTimeout, DefaultUpgradeTimeout)
	defaults.Positive(&c.CloseGrace, DefaultCloseGrace)
	defaults.Positive(&c.ReconnectSpread, DefaultReconnectSpread)
	defaults.Positive(&c.MaxPayload, DefaultMaxPayload)
	defaults.Positive(&c.MaxAttachments, DefaultMaxAttachments)
	defaults.Positive(&c.WriteBufferBytes, DefaultWriteBufferBytes)
	defaults.Positive(&c.MaxAuthFailures, DefaultMaxAuthFailures)
	defaults.Positive(&c.Pollers, defaults.Pollers())
	if len(c.Namespaces) == 0 {
		c.Namespaces = []string{"/", "/notifications"}
	}
	defaults.Logger(&c.Logger)
}

// Validate checks the configuration after defaults are applied.
func (c *Config) Validate() error {
	var errs []error
	if c.AllowOrigin == nil {
		errs = append(errs, errors.New("socketio: AllowOrigin is required"))
	}
	if len(c.Namespaces) > maxNamespaces {
		errs = append(errs, fmt.Errorf("socketio: at most %d namespaces", maxNamespaces))
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
