package demo

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"github.com/heraldhq/herald/internal/defaults"
	"github.com/heraldhq/herald/internal/session"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/heraldhq/herald/internal/audit"
	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/notification"
	"github.com/heraldhq/herald/internal/store"
)

//go:embed static
var static embed.FS

// Verifier checks user tokens.
type Verifier interface {
	Verify(token string) (auth.Principal, error)
}

// Publisher stores and fans out notifications (inbox.Service fits).
type Publisher interface {
	Publish(ctx context.Context, req store.PublishRequest) (store.PublishResult, error)
}

// Config is what the demo needs. Verifier and Publisher are required.
type Config struct {
	Verifier  Verifier
	Publisher Publisher
	// Live publishes the page's live events (never stored); nil: the page
	// cannot send them.
	Live LivePublisher
	// Auth is the node's token configuration: dev tokens are signed with its
	// HMACSecret (none: /v1/dev/token answers 404) and carry its tenant
	// claim (DefaultTenant, else "demo"), issuer and audience.
	Auth auth.Config
	// TokenTTL is the validity of dev tokens. Default 1 h.
	TokenTTL time.Duration
	// AllowOrigin decides which browser origins may call the dev endpoints
	// (requests without Origin are allowed). Default: none.
	AllowOrigin func(origin string) bool
	Logger      *slog.Logger
	// Audit records audit events; nil: logged through Logger, not counted.
	Audit *audit.Recorder
}

// Limits of the dev endpoints.
const (
	maxPublishBody = 16 << 10
	maxUser        = 64
	publishTimeout = 5 * time.Second
	scope          = "dev-demo" // the publisher identity of dev publishes
	defaultType    = "demo.test"
	// DemoTopics is the topics claim of dev tokens; DemoTopic is the topic
	// the page subscribes to and sends its live events to.
	DemoTopics = "demo.*"
	DemoTopic  = "demo.board"
	liveType   = "demo:live"
)

// LivePublisher hands a live event to the broker (the node).
type LivePublisher interface {
	PublishLive(ctx context.Context, l *notification.Live) error
}

type handler struct {
	cfg    Config
	files  fs.FS
	tenant string
	errs   session.HTTPErrors
}

// Register mounts the page and the dev endpoints on mux.
func Register(mux *http.ServeMux, cfg Config) {
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = time.Hour
	}
	if cfg.AllowOrigin == nil {
		cfg.AllowOrigin = func(string) bool { return false }
	}
	defaults.Logger(&cfg.Logger)
	if cfg.Audit == nil {
		cfg.Audit = audit.New(cfg.Logger, nil)
	}
	files, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	h := &handler{cfg: cfg, files: files, tenant: cfg.Auth.DefaultTenant,
		errs: session.HTTPErrors{Log: cfg.Logger, Transport: "dev"}}
	if h.tenant == "" {
		h.tenant = "demo"
	}
	mux.HandleFunc("GET /{$}", h.page("index.html"))
	mux.HandleFunc("GET /demo/{file}", func(w http.ResponseWriter, r *http.Request) {
		h.page(r.PathValue("file"))(w, r)
	})
	mux.HandleFunc("GET /v1/dev/token", h.token)
	mux.HandleFunc("POST /v1/dev/publish", h.publish)
}

// csp allows the page's own script, styles and connections (the WebSocket
// to the same host included) and nothing else.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func (h *handler) page(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if name == "" || strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, ".") {
			http.NotFound(w, r)
			return
		}
		b, err := fs.ReadFile(h.files, name)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		hd := w.Header()
		ct := mime.TypeByExtension(path.Ext(name))
		if ct == "" {
			ct = "application/octet-stream"
		}
		hd.Set("Content-Type", ct)
		hd.Set("Cache-Control", "no-cache")
		hd.Set("Content-Security-Policy", csp)
		hd.Set("X-Frame-Options", "DENY")
		_, _ = w.Write(b)
	}
}

// token handles GET /v1/dev/token?user=<id>.
func (h *handler) token(w http.ResponseWriter, r *http.Request) {
	if !loopback(r) {
		h.errs.Fail(w, r, session.CodeForbidden, "dev tokens are issued to localhost only", nil)
		return
	}
	if !h.originOK(w, r) {
		return
	}
	if len(h.cfg.Auth.HMACSecret) == 0 {
		h.errs.Fail(w, r, session.CodeNotFound, "dev tokens need an HS256 secret (--jwt-secret)", nil)
		return
	}
	user := r.URL.Query().Get("user")
	if user == "" {
		user = "alice"
	}
	if !validUser(user) {
		h.errs.Fail(w, r, session.CodeInvalidRequest, "user must be 1-64 characters from A-Z a-z 0-9 . _ - @", nil)
		return
	}
	now := time.Now()
	exp := now.Add(h.cfg.TokenTTL)
	claim := h.cfg.Auth.TenantClaim
	if claim == "" {
		claim = auth.DefaultTenantClaim
	}
	roleClaim := h.cfg.Auth.RoleClaim
	if roleClaim == "" {
		roleClaim = auth.DefaultRoleClaim
	}
	topicsClaim := h.cfg.Auth.TopicsClaim
	if topicsClaim == "" {
		topicsClaim = auth.DefaultTopicsClaim
	}
	// The demo page may join the topics demo.* (live events).
	claims := map[string]any{"sub": user, claim: h.tenant, roleClaim: "member", topicsClaim: []string{DemoTopics},
		"iat": now.Unix(), "exp": exp.Unix()}
	if h.cfg.Auth.Issuer != "" {
		claims["iss"] = h.cfg.Auth.Issuer
	}
	if h.cfg.Auth.Audience != "" {
		claims["aud"] = h.cfg.Auth.Audience
	}
	tok, err := auth.SignHS256(h.cfg.Auth.HMACSecret, claims)
	if err != nil {
		h.errs.Fail(w, r, session.CodeInternal, "unable to sign a token", err)
		return
	}
	h.cfg.Audit.Info(audit.DevTokenIssued, "dev token issued", "tenant", h.tenant, "user", user)
	session.WriteJSON(w, http.StatusOK, map[string]any{"token": tok, "user": user, "tenant": h.tenant, "expires_at": exp.UTC().Format(time.RFC3339)})
}

type publishBody struct {
	Type        string `json:"type"`
	Title       string `json:"title"`
	Body        string `json:"body"`
	Category    string `json:"category"`     // optional
	CollapseKey string `json:"collapse_key"` // optional
	// Ephemeral sends a live event to DemoTopic instead (never stored).
	Ephemeral bool `json:"ephemeral"`
}

// publish handles POST /v1/dev/publish: a test notification to the caller.
func (h *handler) publish(w http.ResponseWriter, r *http.Request) {
	if !h.originOK(w, r) {
		return
	}
	p, err := h.cfg.Verifier.Verify(bearer(r))
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="herald"`)
		h.errs.Fail(w, r, session.CodeUnauthorized, "invalid or missing token", err)
		return
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPublishBody))
	if err != nil {
		h.errs.Fail(w, r, session.CodeTooLarge, "request body too large", err)
		return
	}
	var b publishBody
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil || dec.More() {
		h.errs.Fail(w, r, session.CodeInvalidRequest, "invalid request", err)
		return
	}
	if b.Type == "" {
		b.Type = defaultType
	}
	switch {
	case !notification.ValidType(b.Type):
		err = errors.New("type malformed")
	case !notification.ValidTitle(b.Title):
		err = errors.New("title missing or too long")
	case !notification.ValidBody(b.Body):
		err = errors.New("body too long")
	case b.Category != "" && !notification.ValidCategory(b.Category):
		err = errors.New("category malformed")
	case b.CollapseKey != "" && !notification.ValidCollapseKey(b.CollapseKey):
		err = errors.New("collapse_key malformed")
	}
	if err != nil {
		h.errs.Fail(w, r, session.CodeInvalidRequest, "invalid request", err)
		return
	}
	if b.Ephemeral {
		h.publishLive(w, r, p.Tenant, b)
		return
	}
	d := notification.Draft{Tenant: p.Tenant, Audience: notification.Audience{Kind: notification.AudienceUsers, Users: []string{p.User}},
		Type: b.Type, Title: b.Title, Body: b.Body, Category: b.Category, CollapseKey: b.CollapseKey}
	ctx, cancel := context.WithTimeout(r.Context(), publishTimeout)
	defer cancel()
	res, err := h.cfg.Publisher.Publish(ctx, store.PublishRequest{Scope: scope, Drafts: []notification.Draft{d}})
	switch {
	case errors.Is(err, store.ErrInvalid):
		h.errs.Fail(w, r, session.CodeInvalidRequest, "invalid request", err)
		return
	case err != nil:
		w.Header().Set("Retry-After", "1")
		h.errs.Fail(w, r, session.CodeUnavailable, "notification not stored", err)
		return
	}
	session.WriteJSON(w, http.StatusCreated, map[string]string{"id": res.IDs[0]})
}

// publishLive sends the page's live event to DemoTopic: everyone watching
// the demo board of the tenant sees it, and nothing is stored.
func (h *handler) publishLive(w http.ResponseWriter, r *http.Request, tenant string, b publishBody) {
	if h.cfg.Live == nil {
		h.errs.Fail(w, r, session.CodeUnavailable, "live events are not enabled", nil)
		return
	}
	if b.Type == defaultType {
		b.Type = liveType
	}
	l := &notification.Live{ID: ulid.Make().String(), Tenant: tenant, Topics: []string{DemoTopic}, Type: b.Type,
		Title: b.Title, Body: b.Body, CreatedAt: time.Now().UTC()}
	ctx, cancel := context.WithTimeout(r.Context(), publishTimeout)
	defer cancel()
	if err := h.cfg.Live.PublishLive(ctx, l); err != nil {
		w.Header().Set("Retry-After", "1")
		h.errs.Fail(w, r, session.CodeUnavailable, "live event not sent", err)
		return
	}
	session.WriteJSON(w, http.StatusAccepted, map[string]any{"id": l.ID, "ephemeral": true})
}

// originOK rejects browser requests from origins outside the allowlist.
func (h *handler) originOK(w http.ResponseWriter, r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" || h.cfg.AllowOrigin(o) {
		return true
	}
	h.errs.Fail(w, r, session.CodeForbidden, "origin not allowed", nil)
	return false
}

// loopback reports whether the request comes from a loopback address and
// names a loopback host (localhost, 127.0.0.0/8, ::1) in its Host header.
func loopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return false
	}
	name := r.Host
	if hn, _, err := net.SplitHostPort(name); err == nil {
		name = hn
	}
	name = strings.Trim(name, "[]")
	if strings.EqualFold(name, "localhost") {
		return true
	}
	ip := net.ParseIP(name)
	return ip != nil && ip.IsLoopback()
}

func validUser(s string) bool {
	if s == "" || len(s) > maxUser {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' || c == '@') {
			return false
		}
	}
	return true
}

func bearer(r *http.Request) string {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

// fail answers with the API's error shape and logs the detail.
