// Package topicauth is the subscribe-authorization hook: for topics a
// token's claim does not allow, Herald asks the backend (--subscribe-auth-url)
// with a POST signed like its outgoing webhooks (Standard Webhooks), caches
// each decision briefly, and denies on any failure.
//
// A Hook is immutable after New apart from its cache, and safe for
// concurrent use.
package topicauth

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/defaults"
	"github.com/heraldhq/herald/internal/webhook"
)

// Defaults of Config.
const (
	DefaultTimeout   = 2 * time.Second
	DefaultCacheTTL  = 30 * time.Second
	DefaultCacheSize = 10_000
	// maxResponse bounds the backend's answer.
	maxResponse = 64 << 10
)

// Config configures a Hook. Zero values mean the defaults.
type Config struct {
	// URL is the backend endpoint (http or https). Required.
	URL string
	// Secret signs the requests: "whsec_" followed by base64, as for
	// Standard Webhooks. Required.
	Secret string
	// Timeout bounds one call; a call that takes longer denies. Default
	// DefaultTimeout.
	Timeout time.Duration
	// CacheTTL: how long a decision (allow or deny) is reused. Default
	// DefaultCacheTTL.
	CacheTTL time.Duration
	// CacheSize bounds the cached decisions. Default DefaultCacheSize.
	CacheSize int
	// Client makes the calls; default one that follows no redirect.
	Client *http.Client
	// Now is the cache's clock (signatures use the wall clock); default
	// time.Now.
	Now func() time.Time
}

// Request is the JSON body Herald POSTs.
type Request struct {
	Type   string   `json:"type"` // "subscribe"
	Tenant string   `json:"tenant"`
	User   string   `json:"user"`
	Role   string   `json:"role,omitempty"`
	Topics []string `json:"topics"`
}

// Response is the backend's answer (status 200): the topics it allows
// among those asked. Topics it leaves out are denied.
type Response struct {
	Allowed []string `json:"allowed"`
}

// Hook calls the backend.
type Hook struct {
	cfg Config          // static
	wh  *webhook.Signer // static: Herald's one Standard Webhooks signer

	mu    sync.Mutex
	cache map[cacheKey]decision // guarded by mu
}

type cacheKey struct{ tenant, user, role, topic string }

type decision struct {
	allow   bool
	expires time.Time
}

// New checks cfg and returns a Hook.
func New(cfg Config) (*Hook, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("topicauth: the URL must be an absolute http(s) URL")
	}
	wh, err := webhook.NewSigner(cfg.Secret)
	if err != nil {
		return nil, fmt.Errorf("topicauth: %w", err)
	}
	defaults.Positive(&cfg.Timeout, DefaultTimeout)
	defaults.Positive(&cfg.CacheTTL, DefaultCacheTTL)
	defaults.Positive(&cfg.CacheSize, DefaultCacheSize)
	if cfg.Client == nil {
		cfg.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Hook{cfg: cfg, wh: wh, cache: make(map[cacheKey]decision)}, nil
}

// Authorize returns the topics the backend allows p to subscribe to. Cached
// decisions are reused; the rest are asked in one call. An error (timeout,
// a status other than 200, a malformed answer) denies every topic asked,
// and is not cached.
func (h *Hook) Authorize(ctx context.Context, p auth.Principal, topics []string) ([]string, error) {
	now := h.cfg.Now()
	var allowed, ask []string
	h.mu.Lock()
	for _, t := range topics {
		d, ok := h.cache[cacheKey{p.Tenant, p.User, p.Role, t}]
		switch {
		case ok && now.Before(d.expires) && d.allow:
			allowed = append(allowed, t)
		case ok && now.Before(d.expires):
		default:
			ask = append(ask, t)
		}
	}
	h.mu.Unlock()
	if len(ask) == 0 {
		return allowed, nil
	}
	yes, err := h.call(ctx, Request{Type: "subscribe", Tenant: p.Tenant, User: p.User, Role: p.Role, Topics: ask})
	if err != nil {
		return allowed, err
	}
	h.remember(p, ask, yes, now.Add(h.cfg.CacheTTL))
	for _, t := range ask {
		if yes[t] {
			allowed = append(allowed, t)
		}
	}
	return allowed, nil
}

func (h *Hook) remember(p auth.Principal, asked []string, yes map[string]bool, expires time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.cache)+len(asked) > h.cfg.CacheSize {
		now := h.cfg.Now()
		for k, d := range h.cache {
			if !now.Before(d.expires) {
				delete(h.cache, k)
			}
		}
		for k := range h.cache { // still full: forget arbitrary entries
			if len(h.cache)+len(asked) <= h.cfg.CacheSize {
				break
			}
			delete(h.cache, k)
		}
	}
	for _, t := range asked {
		h.cache[cacheKey{p.Tenant, p.User, p.Role, t}] = decision{allow: yes[t], expires: expires}
	}
}

// CacheLen is the number of cached decisions (tests).
func (h *Hook) CacheLen() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.cache)
}

// call POSTs req and returns the set of allowed topics.
func (h *Hook) call(ctx context.Context, req Request) (map[string]bool, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("topicauth: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, h.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("topicauth: %w", err)
	}
	if err := sign(h.wh, hr.Header, newMessageID(), time.Now(), body); err != nil { // the wall clock, whatever Now says
		return nil, err
	}
	resp, err := h.cfg.Client.Do(hr)
	if err != nil {
		return nil, fmt.Errorf("topicauth: call: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponse))
		return nil, fmt.Errorf("topicauth: backend answered %d", resp.StatusCode)
	}
	var out Response
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponse)).Decode(&out); err != nil {
		return nil, fmt.Errorf("topicauth: malformed answer: %w", err)
	}
	yes := make(map[string]bool, len(out.Allowed))
	for _, t := range out.Allowed {
		yes[t] = true
	}
	return yes, nil
}

// sign sets the Standard Webhooks headers (webhook-id, webhook-timestamp,
// webhook-signature), with the signer outgoing webhooks use, and the
// content type of a request carrying body.
func sign(wh *webhook.Signer, h http.Header, id string, at time.Time, body []byte) error {
	h.Set("Content-Type", "application/json")
	return wh.Sign(h, id, at, body)
}

func newMessageID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "msg_sub_" + hex.EncodeToString(b[:])
}
