package session

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/heraldhq/herald/internal/admission"
	"github.com/heraldhq/herald/internal/audit"
	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/defaults"
	"github.com/heraldhq/herald/internal/hub"
	"github.com/heraldhq/herald/internal/notification"
	"github.com/heraldhq/herald/internal/store"
)

// Verifier checks user tokens.
type Verifier interface {
	Verify(token string) (auth.Principal, error)
	Leeway() time.Duration
}

// Inbox runs the client's requests (persist, then fan out).
type Inbox interface {
	List(ctx context.Context, r notification.Recipient, q store.ListQuery) (store.Page, error)
	Counts(ctx context.Context, r notification.Recipient) (store.Counts, error)
	MarkRead(ctx context.Context, r notification.Recipient, ids []string) (store.Change, error)
	MarkAllRead(ctx context.Context, r notification.Recipient) (store.Change, error)
	Delete(ctx context.Context, r notification.Recipient, id string) (store.Change, error)
	MarkSeen(ctx context.Context, r notification.Recipient, upTo *notification.Position) (store.Change, error)
	Archive(ctx context.Context, r notification.Recipient, ids []string, all bool) (store.Change, error)
	Unarchive(ctx context.Context, r notification.Recipient, ids []string, all bool) (store.Change, error)
	Preferences(ctx context.Context, r notification.Recipient) (notification.Preferences, error)
	SetPreferences(ctx context.Context, r notification.Recipient, p notification.Preferences) (store.Change, error)
}

// Presence is told about every authenticated connection: Connected once
// it is attached, Disconnected once it is gone. Both must not block.
type Presence interface {
	Connected(tenant, user, transport string)
	Disconnected(tenant, user, transport string)
}

// Transport is what a session needs of its connection: the hub's Sender
// (frames and close) and a way to answer requests.
type Transport interface {
	hub.Sender
	// Reply encodes and writes r. It returns ErrBufferFull when the
	// connection cannot take it (the session then closes it as a slow
	// consumer).
	Reply(r *Reply) error
}

// ErrBufferFull is what Transport.Reply returns when the outbound buffer is full.
var ErrBufferFull = errors.New("session: outbound buffer full")

// Defaults of Config.
const (
	DefaultAuthTimeout    = 10 * time.Second
	DefaultRequestTimeout = 10 * time.Second
	DefaultMaxInflight    = 4
	DefaultMaxInvalid     = 10
)

// Config tunes the protocol. The zero value means the defaults.
type Config struct {
	// AuthTimeout: a connection not authenticated within it is closed
	// (auth_timeout). Transports run the deadline. Default DefaultAuthTimeout.
	AuthTimeout time.Duration
	// RequestTimeout bounds one request to the inbox. Default DefaultRequestTimeout.
	RequestTimeout time.Duration
	// MaxInflight: concurrent inbox requests per session; more get
	// rate_limited. Default DefaultMaxInflight.
	MaxInflight int
	// MaxInvalid: invalid messages tolerated per session before it is
	// closed (policy_violation). Default DefaultMaxInvalid.
	MaxInvalid int
	// MaxTopics: topics one connection may hold. Default DefaultMaxTopics.
	MaxTopics int
	// SubscribeRate: subscribe requests per second per connection, with
	// bursts of SubscribeBurst; over it a subscribe gets rate_limited.
	// Negative disables. Defaults DefaultSubscribeRate, DefaultSubscribeBurst.
	SubscribeRate  float64
	SubscribeBurst int
	// TopicAuthorizer, when set, is asked about topics the token's claim
	// does not allow (the subscribe-authorization hook, topics.go).
	TopicAuthorizer TopicAuthorizer
	// OnRequest, when set, is told about each valid request (metrics).
	OnRequest func(t admission.Transport, n Name)
	// Presence, when set, counts authenticated connections (presence API,
	// user.online and user.offline webhooks).
	Presence Presence
	Logger   *slog.Logger
	Audit    *audit.Recorder
}

func (c *Config) setDefaults() {
	if c.AuthTimeout <= 0 {
		c.AuthTimeout = DefaultAuthTimeout
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.MaxInflight <= 0 {
		c.MaxInflight = DefaultMaxInflight
	}
	if c.MaxInvalid <= 0 {
		c.MaxInvalid = DefaultMaxInvalid
	}
	if c.MaxTopics <= 0 {
		c.MaxTopics = DefaultMaxTopics
	}
	if c.SubscribeRate == 0 {
		c.SubscribeRate = DefaultSubscribeRate
	}
	if c.SubscribeBurst <= 0 {
		c.SubscribeBurst = DefaultSubscribeBurst
	}
	defaults.Logger(&c.Logger)
	if c.Audit == nil {
		c.Audit = audit.New(c.Logger, nil)
	}
}

// Core is what every session of a node shares.
type Core struct {
	cfg      Config // static after New
	hub      *hub.Hub
	verifier Verifier
	inbox    Inbox
	adm      *admission.Controller
	log      *slog.Logger
	audit    *audit.Recorder
}

// New returns a Core.
func New(cfg Config, h *hub.Hub, v Verifier, in Inbox, adm *admission.Controller) (*Core, error) {
	cfg.setDefaults()
	if h == nil || v == nil || in == nil || adm == nil {
		return nil, errors.New("session: hub, verifier, inbox and admission are required")
	}
	return &Core{cfg: cfg, hub: h, verifier: v, inbox: in, adm: adm, log: cfg.Logger, audit: cfg.Audit}, nil
}

// AuthTimeout is the authentication deadline transports enforce.
func (c *Core) AuthTimeout() time.Duration { return c.cfg.AuthTimeout }

// Admission is the node's admission controller.
func (c *Core) Admission() *admission.Controller { return c.adm }

// Audit is the node's audit recorder.
func (c *Core) Audit() *audit.Recorder { return c.audit }

// Logger is the node's logger.
func (c *Core) Logger() *slog.Logger { return c.log }

// Verify checks a token for a connection that is not a session yet (an
// HTTP request, a handshake header). A refusal is recorded (token_invalid).
func (c *Core) Verify(token string, t admission.Transport, ip string) (auth.Principal, error) {
	if token == "" {
		c.audit.Warn(audit.TokenInvalid, "token rejected", "reason", auth.ReasonMissing, "ip", ip, "transport", t.String())
		return auth.Principal{}, auth.ErrMissingToken
	}
	if len(token) > MaxTokenLen {
		c.audit.Warn(audit.TokenInvalid, "token rejected", "reason", auth.ReasonTooLarge, "ip", ip, "transport", t.String())
		return auth.Principal{}, &auth.TokenError{Reason: auth.ReasonTooLarge}
	}
	p, err := c.verifier.Verify(token)
	if err != nil {
		c.audit.Warn(audit.TokenInvalid, "token rejected", "reason", auth.ReasonOf(err), "ip", ip, "transport", t.String())
	}
	return p, err
}

// Recipient is the inbox identity of a principal.
func Recipient(p auth.Principal) notification.Recipient {
	return notification.Recipient{Tenant: p.Tenant, User: p.User, Role: p.Role}
}

// NextConnID returns a fresh connection id (the hub's sequence), for
// transports that log a connection before its session exists.
func (c *Core) NextConnID() uint64 { return c.hub.NextConnID() }

// connected and disconnected tell Presence, when there is one.
func (c *Core) connected(tenant, user string, t admission.Transport) {
	if p := c.cfg.Presence; p != nil {
		p.Connected(tenant, user, t.String())
	}
}

func (c *Core) disconnected(tenant, user string, t admission.Transport) {
	if p := c.cfg.Presence; p != nil {
		p.Disconnected(tenant, user, t.String())
	}
}
