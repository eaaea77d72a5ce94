package client_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/node"
	"github.com/heraldhq/herald/internal/testkit"
)

// Credentials of the test nodes.
const (
	testSecret = "client-test-secret-client-test-secret-0123"
	publishKey = "client-test-publish-key-0123456789"
	scopedKey  = "client-test-scoped-key-0123456789"
	adminKey   = "client-test-admin-key-0123456789"
)

// herald is a real Herald node on a loopback port, with its own SQLite database.
type herald struct {
	t    testing.TB
	node *node.Node
	base string // http://127.0.0.1:port
	db   string // the SQLite file
}

func nodeConfig(t testing.TB, mutate ...func(*node.Config)) node.Config {
	t.Helper()
	cfg := node.Config{
		Database: filepath.Join(t.TempDir(), "herald.db"),
		Auth:     auth.Config{HMACSecret: []byte(testSecret)},
		APIKeys:  []string{publishKey, scopedKey + "@acme", "admin:" + adminKey},
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	for _, m := range mutate {
		m(&cfg)
	}
	return cfg
}

// startHerald builds a node and serves it on a new loopback port until the test ends.
func startHerald(t testing.TB, mutate ...func(*node.Config)) *herald {
	t.Helper()
	cfg := nodeConfig(t, mutate...)
	n, err := node.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("node.New: %v", err)
	}
	addr := testkit.Serve(t, n.Serve, n.Shutdown)
	return &herald{t: t, node: n, base: "http://" + addr, db: cfg.Database}
}

// newClient is a client of h with key, which closes its idle connections
// when the test ends (the leak check would see them).
func newClient(t testing.TB, base, key string, opts ...client.Option) *client.Client {
	t.Helper()
	c := client.New(base, key, opts...)
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// userToken is a JWT of user (tenant, role) that the test nodes accept.
func userToken(t testing.TB, tenant, user, role string) string {
	t.Helper()
	return testkit.UserToken(t, []byte(testSecret), tenant, user, role, time.Hour)
}

// inboxItem is a notification as GET /v1/me/notifications lists it.
type inboxItem struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	Title     string          `json:"title"`
	Body      string          `json:"body"`
	Data      json.RawMessage `json:"data"`
	ExpiresAt string          `json:"expires_at"`
}

// inbox lists what the holder of token sees, newest first, through the user REST API.
func (h *herald) inbox(token string) []inboxItem {
	h.t.Helper()
	status, body := h.get("/v1/me/notifications", token)
	if status != http.StatusOK {
		h.t.Fatalf("list: %d %s", status, body)
	}
	var page struct{ Notifications []inboxItem }
	if err := json.Unmarshal(body, &page); err != nil {
		h.t.Fatalf("list: %v: %s", err, body)
	}
	return page.Notifications
}

func (h *herald) get(path, bearer string) (int, []byte) {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+bearer)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

// attempt is one HTTP exchange seen by a recorder.
type attempt struct {
	status   int   // 0 on a network error
	err      error // the transport's error
	replayed bool  // Idempotent-Replayed: true
	idemKey  string
	body     string
	at       time.Time
}

// recorder is an http.RoundTripper that records every attempt a client
// makes (the wire is real; it only watches).
type recorder struct {
	next     http.RoundTripper
	mu       sync.Mutex
	attempts []attempt // guarded by mu
	onResult func(attempt)
}

func newRecorder(t testing.TB) *recorder {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	return &recorder{next: tr}
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	a := attempt{idemKey: req.Header.Get("Idempotency-Key"), at: time.Now()}
	if req.GetBody != nil {
		if b, err := req.GetBody(); err == nil {
			raw, _ := io.ReadAll(b)
			a.body = string(raw)
		}
	}
	res, err := r.next.RoundTrip(req)
	a.err = err
	if res != nil {
		a.status = res.StatusCode
		a.replayed = res.Header.Get("Idempotent-Replayed") == "true"
	}
	r.mu.Lock()
	r.attempts = append(r.attempts, a)
	on := r.onResult
	r.mu.Unlock()
	if on != nil {
		on(a)
	}
	return res, err
}

func (r *recorder) seen() []attempt {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]attempt(nil), r.attempts...)
}

func (r *recorder) client() *http.Client {
	return &http.Client{Transport: r, Timeout: 20 * time.Second}
}

// reservePort returns a loopback address nothing listens on (for now).
func reservePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
