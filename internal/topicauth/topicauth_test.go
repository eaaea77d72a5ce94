package topicauth

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/heraldhq/herald/internal/auth"
)

const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// backend verifies each request's signature and allows the topics in
// allow; it counts the calls.
type backend struct {
	allow  []string
	status int
	delay  chan struct{} // when set, each call waits for it
	calls  atomic.Int32
	last   atomic.Pointer[Request]
	srv    *httptest.Server
}

func newBackend(t *testing.T, allow ...string) *backend {
	t.Helper()
	b := &backend{allow: allow, status: http.StatusOK}
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.calls.Add(1)
		body, _ := io.ReadAll(r.Body)
		if err := wh.Verify(body, r.Header); err != nil {
			t.Errorf("signature: %v", err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var req Request
		if err := json.Unmarshal(body, &req); err != nil {
			t.Errorf("body: %v", err)
		}
		b.last.Store(&req)
		if b.delay != nil {
			select {
			case <-b.delay:
			case <-r.Context().Done():
				return
			}
		}
		if b.status != http.StatusOK {
			w.WriteHeader(b.status)
			return
		}
		var out Response
		for _, t := range req.Topics {
			if slices.Contains(b.allow, t) {
				out.Allowed = append(out.Allowed, t)
			}
		}
		_ = json.NewEncoder(w).Encode(out)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

var alice = auth.Principal{Tenant: "acme", User: "alice", Role: "member"}

func newHook(t *testing.T, cfg Config) *Hook {
	t.Helper()
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestAllowDenyAndCache(t *testing.T) {
	b := newBackend(t, "room.1")
	now := time.Unix(1_800_000_000, 0)
	h := newHook(t, Config{URL: b.srv.URL, Secret: secret, CacheTTL: time.Minute, Now: func() time.Time { return now }})
	got, err := h.Authorize(context.Background(), alice, []string{"room.1", "room.2"})
	if err != nil || !slices.Equal(got, []string{"room.1"}) {
		t.Fatalf("Authorize = %q, %v", got, err)
	}
	if req := b.last.Load(); req.Type != "subscribe" || req.Tenant != "acme" || req.User != "alice" || req.Role != "member" {
		t.Fatalf("the backend was asked %+v", req)
	}
	// Both decisions are cached: no second call.
	got, _ = h.Authorize(context.Background(), alice, []string{"room.2", "room.1"})
	if !slices.Equal(got, []string{"room.1"}) || b.calls.Load() != 1 {
		t.Fatalf("cached: %q after %d calls", got, b.calls.Load())
	}
	// Another user is asked about separately.
	bob := alice
	bob.User = "bob"
	if _, err := h.Authorize(context.Background(), bob, []string{"room.1"}); err != nil || b.calls.Load() != 2 {
		t.Fatalf("another user: %v after %d calls", err, b.calls.Load())
	}
	// After the TTL the backend is asked again.
	now = now.Add(2 * time.Minute)
	if _, err := h.Authorize(context.Background(), alice, []string{"room.1"}); err != nil || b.calls.Load() != 3 {
		t.Fatalf("expired: %v after %d calls", err, b.calls.Load())
	}
}

func TestFailuresDenyAndAreNotCached(t *testing.T) {
	b := newBackend(t, "room.1")
	h := newHook(t, Config{URL: b.srv.URL, Secret: secret, Timeout: 50 * time.Millisecond})
	b.status = http.StatusInternalServerError
	if got, err := h.Authorize(context.Background(), alice, []string{"room.1"}); err == nil || len(got) != 0 {
		t.Fatalf("a 500 allowed %q (%v)", got, err)
	}
	b.status = http.StatusOK
	b.delay = make(chan struct{})
	if got, err := h.Authorize(context.Background(), alice, []string{"room.1"}); err == nil || len(got) != 0 {
		t.Fatalf("a timeout allowed %q (%v)", got, err)
	}
	close(b.delay)
	if h.CacheLen() != 0 {
		t.Fatal("a failure was cached")
	}
	if got, err := h.Authorize(context.Background(), alice, []string{"room.1"}); err != nil || len(got) != 1 {
		t.Fatalf("after recovery: %q, %v", got, err)
	}
}

func TestMalformedAnswerDenies(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"allowed":`))
	}))
	defer srv.Close()
	h := newHook(t, Config{URL: srv.URL, Secret: secret})
	if got, err := h.Authorize(context.Background(), alice, []string{"a"}); err == nil || len(got) != 0 {
		t.Fatalf("malformed answer: %q, %v", got, err)
	}
	redirect := httptest.NewServer(http.RedirectHandler(srv.URL, http.StatusFound))
	defer redirect.Close()
	h = newHook(t, Config{URL: redirect.URL, Secret: secret})
	if _, err := h.Authorize(context.Background(), alice, []string{"a"}); err == nil {
		t.Fatal("a redirect was followed")
	}
}

func TestCacheIsBounded(t *testing.T) {
	b := newBackend(t)
	h := newHook(t, Config{URL: b.srv.URL, Secret: secret, CacheSize: 10})
	for i := 0; i < 30; i++ {
		p := alice
		p.User = string(rune('a' + i))
		if _, err := h.Authorize(context.Background(), p, []string{"x", "y"}); err != nil {
			t.Fatal(err)
		}
		if n := h.CacheLen(); n > 10 {
			t.Fatalf("cache holds %d decisions, over its bound of 10", n)
		}
	}
}

func TestNewChecksConfig(t *testing.T) {
	for _, cfg := range []Config{
		{URL: "", Secret: secret},
		{URL: "ftp://x", Secret: secret},
		{URL: "http://x", Secret: ""},
		{URL: "http://x", Secret: "whsec_!!!"},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}
