// Package api serves Herald's HTTP API: the publish API for backends (API
// key), the user REST API (JWT), and health endpoints. Handlers are safe for
// concurrent use; an API is immutable after New.
package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/notification"
	"github.com/heraldhq/herald/internal/store"
)

// Verifier checks user tokens.
type Verifier interface {
	Verify(token string) (auth.Principal, error)
}

// Keyring authenticates API keys.
type Keyring interface {
	Authenticate(presented string) (auth.APIKey, bool)
}

// Inbox is the write and read path (persist, then fan out).
type Inbox interface {
	Publish(ctx context.Context, req store.PublishRequest) (store.PublishResult, error)
	List(ctx context.Context, r notification.Recipient, q store.ListQuery) (store.Page, error)
	UnreadCount(ctx context.Context, r notification.Recipient) (int64, error)
	MarkRead(ctx context.Context, r notification.Recipient, ids []string) (store.Change, error)
	MarkAllRead(ctx context.Context, r notification.Recipient) (store.Change, error)
	Delete(ctx context.Context, r notification.Recipient, id string) (store.Change, error)
}

// RateLimiter is a keyed token bucket; Allow returns the consecutive
// refusals for the key.
type RateLimiter interface {
	Allow(key string) (ok bool, strikes int)
}

// Check is one readiness check: it returns nil when healthy.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
}

// Config tunes the API. The zero value means the defaults.
type Config struct {
	// MaxBodyBytes bounds a single publish body (413 above). Default 64 KiB.
	MaxBodyBytes int64
	// MaxBatchBodyBytes bounds a batch publish body. Default 8 MiB.
	MaxBatchBodyBytes int64
	// MaxBatch: items per batch publish. Default 1000.
	MaxBatch int
	// PublishTimeout: how long a publish waits for its commit before 503. Default 5 s.
	PublishTimeout time.Duration
	// RequestTimeout bounds user API calls. Default 10 s.
	RequestTimeout time.Duration
	// AllowOrigin decides CORS for the user API (never for the publish API).
	AllowOrigin func(origin string) bool
	// UserRate limits user API calls per user (shared with the live
	// transports' client events); PublishRate limits publishes per API key.
	// Nil: no limit.
	UserRate    RateLimiter
	PublishRate RateLimiter
	// OnPublish, when set, observes each publish request's outcome and
	// duration (arrival to commit or failure).
	OnPublish func(status int, d time.Duration)
	Logger    *slog.Logger
}

func (c *Config) setDefaults() {
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 64 << 10
	}
	if c.MaxBatchBodyBytes <= 0 {
		c.MaxBatchBodyBytes = 8 << 20
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 1000
	}
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = 5 * time.Second
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 10 * time.Second
	}
	if c.AllowOrigin == nil {
		c.AllowOrigin = func(string) bool { return false }
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// API holds the handlers' dependencies.
type API struct {
	cfg      Config
	verifier Verifier
	keys     Keyring
	inbox    Inbox
	checks   []Check
	log      *slog.Logger
}

// New returns the API.
func New(cfg Config, v Verifier, k Keyring, in Inbox, checks ...Check) *API {
	cfg.setDefaults()
	return &API{cfg: cfg, verifier: v, keys: k, inbox: in, checks: checks, log: cfg.Logger}
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
	mux.HandleFunc("OPTIONS /v1/me/", a.preflight)

	mux.HandleFunc("GET /livez", a.livez)
	mux.HandleFunc("HEAD /livez", a.livez)
	mux.HandleFunc("GET /readyz", a.readyz)
}

// errorBody is every error response: a stable code, a generic message and
// a correlation id that appears in the server log line with the details.
type errorBody struct {
	Error struct {
		Code          string `json:"code"`
		Message       string `json:"message"`
		CorrelationID string `json:"correlation_id"`
	} `json:"error"`
}

func newCorrelationID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// fail answers with a generic error and logs the detail under a correlation id.
func (a *API) fail(w http.ResponseWriter, r *http.Request, status int, code, msg string, detail error, attrs ...any) {
	var body errorBody
	body.Error.Code, body.Error.Message = code, msg
	body.Error.CorrelationID = newCorrelationID()
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	args := append([]any{"correlation_id", body.Error.CorrelationID, "status", status, "code", code,
		"method", r.Method, "path", r.URL.Path, "ip", clientIP(r)}, attrs...)
	if detail != nil {
		args = append(args, "err", detail)
	}
	a.log.Log(r.Context(), level, "request failed", args...)
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func clientIP(r *http.Request) string {
	if i := strings.LastIndexByte(r.RemoteAddr, ':'); i > 0 {
		return strings.Trim(r.RemoteAddr[:i], "[]")
	}
	return r.RemoteAddr
}

func bearerToken(r *http.Request) string {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

func (a *API) livez(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
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
	writeJSON(w, code, map[string]any{"status": status, "checks": results})
}

// RegisterStats serves GET /v1/admin/stats (admin API key) with snapshot's value.
func (a *API) RegisterStats(mux *http.ServeMux, snapshot func() any) {
	mux.HandleFunc("GET /v1/admin/stats", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := a.admin(w, r); !ok {
			return
		}
		writeJSON(w, http.StatusOK, snapshot())
	})
}
