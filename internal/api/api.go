// Package api serves Herald's HTTP API: the publish API for backends (API
// key), the user REST API (JWT), and health endpoints. Handlers are safe for
// concurrent use; an API is immutable after New.
package api

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/heraldhq/herald/internal/admission"
	"github.com/heraldhq/herald/internal/audit"
	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/defaults"
	"github.com/heraldhq/herald/internal/session"
	"github.com/heraldhq/herald/internal/store"
)

// Keyring authenticates API keys.
type Keyring interface {
	Authenticate(presented string) (auth.APIKey, bool)
}

// Publisher is the write path (persist, then fan out). The user API's
// requests run through the session core instead (session.Core.Do).
type Publisher interface {
	Publish(ctx context.Context, req store.PublishRequest) (store.PublishResult, error)
}

// Check is one readiness check: it returns nil when healthy.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
}

// Defaults of Config.
const (
	DefaultMaxBodyBytes      = 64 << 10
	DefaultMaxBatchBodyBytes = 8 << 20
	DefaultMaxBatch          = 1000
	DefaultPublishTimeout    = 5 * time.Second
	DefaultRequestTimeout    = 10 * time.Second
)

// Config tunes the API. The zero value means the defaults. The user API's
// per-user request rate is admission.Config.Requests, shared with the live
// transports' requests.
type Config struct {
	// MaxBodyBytes bounds a single publish body (413 above). Default
	// DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// MaxBatchBodyBytes bounds a batch publish body. Default DefaultMaxBatchBodyBytes.
	MaxBatchBodyBytes int64
	// MaxBatch: items per batch publish. Default DefaultMaxBatch.
	MaxBatch int
	// PublishTimeout: how long a publish waits for its commit before 503.
	// Default DefaultPublishTimeout.
	PublishTimeout time.Duration
	// RequestTimeout bounds user API calls. Default DefaultRequestTimeout.
	RequestTimeout time.Duration
	// AllowOrigin decides CORS for the user API (never for the publish API).
	AllowOrigin func(origin string) bool
	// Live publishes live events ("ephemeral": true); nil refuses them
	// (503). LiveDedupe remembers their Idempotency-Keys for
	// LiveIdempotencyWindow; nil: a bounded in-memory set (one node).
	Live                  LivePublisher
	LiveDedupe            LiveDedupe
	LiveIdempotencyWindow time.Duration
	// OnPublish, when set, observes each publish request's outcome and
	// duration (arrival to commit or failure).
	OnPublish func(status int, d time.Duration)
	Logger    *slog.Logger
	// Audit records audit events; nil: logged through Logger, not counted.
	Audit *audit.Recorder
}

func (c *Config) setDefaults() {
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.MaxBatchBodyBytes <= 0 {
		c.MaxBatchBodyBytes = DefaultMaxBatchBodyBytes
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = DefaultMaxBatch
	}
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = DefaultPublishTimeout
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.LiveIdempotencyWindow <= 0 {
		c.LiveIdempotencyWindow = DefaultLiveIdempotencyWindow
	}
	if c.LiveDedupe == nil {
		c.LiveDedupe = NewMemoryDedupe(c.LiveIdempotencyWindow, DefaultDedupeEntries)
	}
	if c.AllowOrigin == nil {
		c.AllowOrigin = func(string) bool { return false }
	}
	defaults.Logger(&c.Logger)
	if c.Audit == nil {
		c.Audit = audit.New(c.Logger, nil)
	}
}

// API holds the handlers' dependencies.
type API struct {
	cfg    Config // static after New
	core   *session.Core
	adm    *admission.Controller
	keys   Keyring
	inbox  Publisher
	checks []Check
	log    *slog.Logger
	errs   session.HTTPErrors // the user API's error bodies
	// keyErrs: the API-key endpoints' (publish, admin), through fail.
	keyErrs session.HTTPErrors
}

// New returns the API. core (the node's session core) runs the user API's
// requests, checks its tokens and applies admission; pub publishes.
func New(cfg Config, core *session.Core, k Keyring, pub Publisher, checks ...Check) *API {
	cfg.setDefaults()
	adm := core.Admission()
	return &API{cfg: cfg, core: core, adm: adm, keys: k, inbox: pub, checks: checks, log: cfg.Logger,
		errs:    session.HTTPErrors{Log: cfg.Logger, ClientIP: adm.ClientIP, Transport: admission.REST.String()},
		keyErrs: session.HTTPErrors{Log: cfg.Logger, ClientIP: adm.ClientIP, Transport: admission.Publish.String()}}
}

// Register adds the API's routes to mux.
func (a *API) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/notifications", a.publish)
	mux.HandleFunc("POST /v1/notifications/batch", a.publishBatch)

	mux.Handle("GET /v1/me/notifications", a.user(a.list))
	mux.Handle("GET /v1/me/unread-count", a.user(a.unreadCount))
	mux.Handle("POST /v1/me/notifications/read-all", a.user(a.readAll))
	mux.Handle("POST /v1/me/notifications/{id}/read", a.user(a.read))
	mux.Handle("DELETE /v1/me/notifications/{id}", a.user(a.delete))
	mux.Handle("POST /v1/me/notifications/seen", a.user(a.seen))
	mux.Handle("POST /v1/me/notifications/{id}/archive", a.user(a.archive))
	mux.Handle("POST /v1/me/notifications/{id}/unarchive", a.user(a.unarchive))
	mux.Handle("POST /v1/me/notifications/archive-all", a.user(a.archiveAll))
	mux.Handle("POST /v1/me/notifications/unarchive-all", a.user(a.unarchiveAll))
	mux.Handle("GET /v1/me/preferences", a.user(a.preferences))
	mux.Handle("PUT /v1/me/preferences", a.user(a.setPreferences))
	mux.HandleFunc("OPTIONS /v1/me/", a.preflight)

	mux.HandleFunc("GET /livez", a.livez)
	mux.HandleFunc("HEAD /livez", a.livez)
	mux.HandleFunc("GET /readyz", a.readyz)
}

func (a *API) livez(w http.ResponseWriter, _ *http.Request) {
	session.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (a *API) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	results := map[string]string{}
	ok := true
	for _, c := range a.checks {
		if err := c.Fn(ctx); err != nil {
			ok = false
			results[c.Name] = "fail"
			a.log.Warn("readiness check failed", "check", c.Name, "err", err)
		} else {
			results[c.Name] = "ok"
		}
	}
	status, code := "ok", http.StatusOK
	if !ok {
		status, code = "fail", http.StatusServiceUnavailable
	}
	session.WriteJSON(w, code, map[string]any{"status": status, "checks": results})
}

// RegisterStats serves GET /v1/admin/stats (admin API key) with snapshot's value.
func (a *API) RegisterStats(mux *http.ServeMux, snapshot func() any) {
	mux.HandleFunc("GET /v1/admin/stats", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := a.admin(w, r); !ok {
			return
		}
		session.WriteJSON(w, http.StatusOK, snapshot())
	})
}
