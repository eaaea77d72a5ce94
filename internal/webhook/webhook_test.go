package webhook

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/testkit"
)

func TestMain(m *testing.M) { testkit.LeakMain(m, testkit.ServerLeakOptions()...) }

// receiver wraps testkit's receiver with the bodies decoded.
type receiver struct {
	*testkit.WebhookReceiver
	t testing.TB
}

func newReceiver(t testing.TB, secret string) *receiver {
	return &receiver{testkit.NewWebhookReceiver(t, secret), t}
}

func (r *receiver) delivered() []Body {
	var out []Body
	for _, d := range r.Delivered() {
		var b Body
		d.Decode(r.t, &b)
		out = append(out, b)
	}
	return out
}

func openSQLite(t testing.TB, path string) *store.SQLite {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "herald.db")
	}
	s, err := store.OpenSQLite(context.Background(), store.SQLiteConfig{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// fastConfig retries quickly so tests run in well under a second.
func fastConfig(url, secret string) Config {
	return Config{URL: url, Secret: secret, Owner: "node-a", Poll: 10 * time.Millisecond,
		RetryBase: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond, AttemptTimeout: 2 * time.Second,
		Lease: 5 * time.Second, StatsInterval: 10 * time.Millisecond, EndpointRefresh: 50 * time.Millisecond}
}

func start(t testing.TB, cfg Config, out Outbox) *Service {
	t.Helper()
	s, err := New(cfg, out)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func emit(t testing.TB, s *Service, bodies ...Body) {
	t.Helper()
	if err := s.Emit(context.Background(), bodies...); err != nil {
		t.Fatal(err)
	}
}

func online(tenant, user string) Body {
	return Body{Type: store.WebhookUserOnline, Tenant: tenant, User: user}
}

func TestSignerMatchesTheLibrary(t *testing.T) {
	secret := NewSecret()
	sg, err := NewSigner(secret)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"id":"msg_1","type":"user.online"}`)
	h := http.Header{}
	ts := time.Now()
	if err := sg.Sign(h, "msg_1", ts, body); err != nil {
		t.Fatal(err)
	}
	wh, _ := standardwebhooks.NewWebhook(secret)
	if err := wh.Verify(body, h); err != nil {
		t.Fatalf("the library refuses Herald's signature: %v", err)
	}
	if !strings.HasPrefix(h.Get(HeaderSignature), "v1,") || h.Get(HeaderID) != "msg_1" {
		t.Fatalf("headers %v", h)
	}
	if err := wh.Verify([]byte(`{"tampered":true}`), h); err == nil {
		t.Fatal("a tampered body verified")
	}
	for _, bad := range []string{"", "secret", "whsec_", "whsec_!!!", "whsec_c2hvcnQ=", SecretPrefix + strings.Repeat("QUFB", 30)} {
		if _, err := NewSigner(bad); !errors.Is(err, ErrBadSecret) {
			t.Errorf("secret %q: %v", bad, err)
		}
	}
}

func TestCheckURL(t *testing.T) {
	for _, tc := range []struct {
		url       string
		allowLL   bool
		wantError error
	}{
		{"https://hooks.example.com/herald", false, nil},
		{"http://127.0.0.1:9000/hook", false, nil},
		{"http://10.0.0.5/hook", false, nil},
		{"ftp://example.com/", false, ErrBadURL},
		{"javascript:alert(1)", false, ErrBadURL},
		{"/relative", false, ErrBadURL},
		{"https://user:pw@example.com/", false, ErrBadURL},
		{"", false, ErrBadURL},
		{"https://example.com/" + strings.Repeat("a", MaxURLLen), false, ErrBadURL},
		{"http://169.254.169.254/latest/meta-data/", false, ErrForbiddenAddress},
		{"http://[fe80::1]/", false, ErrForbiddenAddress},
		{"http://[::ffff:169.254.169.254]/", false, ErrForbiddenAddress},
		{"http://metadata.google.internal/computeMetadata/v1/", false, ErrForbiddenAddress},
		{"http://METADATA.google.internal./", false, ErrForbiddenAddress},
		{"http://100.100.100.200/", false, ErrForbiddenAddress},
		{"http://[fd00:ec2::254]/", false, ErrForbiddenAddress},
		{"http://169.254.169.254/", true, nil},
		{"http://metadata.google.internal/", true, nil},
	} {
		if err := CheckURL(tc.url, tc.allowLL); !errors.Is(err, tc.wantError) {
			t.Errorf("CheckURL(%q, %v) = %v, want %v", tc.url, tc.allowLL, err, tc.wantError)
		}
	}
}

// TestClientRefusesAtDialTime: the client checks the address it dials, not
// only the URL it was configured with (a name can resolve to a metadata
// address later: DNS rebinding), follows no redirect and times out.
func TestClientRefusesAtDialTime(t *testing.T) {
	c := NewClient(time.Second, false)
	for _, u := range []string{"http://169.254.169.254/latest/meta-data/", "http://[fe80::1%25lo]:80/"} {
		resp, err := c.Get(u)
		if resp != nil {
			_ = resp.Body.Close()
		}
		if !errors.Is(err, ErrForbiddenAddress) {
			t.Errorf("GET %s: %v, want ErrForbiddenAddress", u, err)
		}
	}
	var followed atomic.Bool
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { followed.Store(true) }))
	defer target.Close()
	redirect := httptest.NewServer(http.RedirectHandler(target.URL, http.StatusFound))
	defer redirect.Close()
	resp, err := c.Post(redirect.URL, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusFound || followed.Load() {
		t.Fatalf("redirect followed: status %d, target hit %v", resp.StatusCode, followed.Load())
	}
	defer c.CloseIdleConnections()
}

func TestConfigValidate(t *testing.T) {
	secret := NewSecret()
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"none", Config{}, true},
		{"global", Config{URL: "https://h.example/", Secret: secret}, true},
		{"url without secret", Config{URL: "https://h.example/"}, false},
		{"secret without url", Config{Secret: secret}, false},
		{"bad secret", Config{URL: "https://h.example/", Secret: "plain"}, false},
		{"metadata", Config{URL: "http://169.254.169.254/", Secret: secret}, false},
		{"metadata allowed", Config{URL: "http://169.254.169.254/", Secret: secret, AllowLinkLocal: true}, true},
		{"file url", Config{URL: "file:///etc/passwd", Secret: secret}, false},
		{"short lease", Config{Lease: 5 * time.Second}, false},
	} {
		if err := tc.cfg.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

func TestBackoff(t *testing.T) {
	base, ceiling := time.Second, time.Minute
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 4: 8 * time.Second, 7: time.Minute, 60: time.Minute} {
		for range 50 {
			if d := backoff(n, base, ceiling); d < want/2 || d > want {
				t.Fatalf("backoff(%d) = %s, want within [%s, %s]", n, d, want/2, want)
			}
		}
	}
}
