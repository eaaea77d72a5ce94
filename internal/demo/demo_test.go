package demo

import (
	"encoding/json"
	"github.com/heraldhq/herald/internal/audit/audittest"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/heraldhq/herald/internal/audit"
	"github.com/heraldhq/herald/internal/auth"
)

func serve(cfg Config, r *http.Request) *httptest.ResponseRecorder {
	mux := http.NewServeMux()
	Register(mux, cfg)
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, r)
	return w
}

func TestTokenOnlyForLoopback(t *testing.T) {
	cfg := Config{Auth: auth.Config{HMACSecret: []byte("0123456789abcdef0123456789abcdef")}}
	for _, c := range []struct {
		name, remote, host string
		want               int
	}{
		{"loopback v4", "127.0.0.1:5000", "127.0.0.1:8080", 200},
		{"localhost name", "127.0.0.1:5000", "localhost:8080", 200},
		{"loopback v6", "[::1]:5000", "[::1]:8080", 200},
		{"remote address", "192.0.2.7:5000", "127.0.0.1:8080", 403},
		{"rebound host name", "127.0.0.1:5000", "attacker.example:8080", 403},
	} {
		r := httptest.NewRequest("GET", "/v1/dev/token?user=alice", nil)
		r.RemoteAddr, r.Host = c.remote, c.host
		if w := serve(cfg, r); w.Code != c.want {
			t.Errorf("%s: %d %s, want %d", c.name, w.Code, w.Body, c.want)
		}
	}
}

func TestTokenNeedsHMACSecret(t *testing.T) {
	r := httptest.NewRequest("GET", "/v1/dev/token", nil)
	r.RemoteAddr, r.Host = "127.0.0.1:5000", "127.0.0.1:8080"
	if w := serve(Config{Auth: auth.Config{JWKSURL: "https://idp.example/jwks"}}, r); w.Code != http.StatusNotFound {
		t.Fatalf("without a secret: %d %s", w.Code, w.Body)
	}
}

func TestTokenClaims(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	cfg := Config{Auth: auth.Config{HMACSecret: secret, TenantClaim: "org", DefaultTenant: "acme", Issuer: "me", Audience: "herald"}}
	r := httptest.NewRequest("GET", "/v1/dev/token?user=bob", nil)
	r.RemoteAddr, r.Host = "127.0.0.1:5000", "localhost"
	w := serve(cfg, r)
	if w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	var body struct{ Token string }
	if err := jsonDecode(w.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewVerifier(t.Context(), cfg.Auth)
	if err != nil {
		t.Fatal(err)
	}
	p, err := v.Verify(body.Token)
	if err != nil || p.User != "bob" || p.Tenant != "acme" || p.Role != "member" {
		t.Fatalf("verify: %+v %v", p, err)
	}
}

// Every issued dev token is an audit event counted through the Recorder; a
// refused request is not.
func TestTokenIssuedIsAudited(t *testing.T) {
	var counted audittest.Counter
	cfg := Config{Auth: auth.Config{HMACSecret: []byte("0123456789abcdef0123456789abcdef")}, Audit: counted.Recorder()}
	r := httptest.NewRequest("GET", "/v1/dev/token?user=alice", nil)
	r.RemoteAddr, r.Host = "192.0.2.7:5000", "127.0.0.1:8080"
	if w, n := serve(cfg, r), len(counted.Of(audit.DevTokenIssued)); w.Code != http.StatusForbidden || n != 0 {
		t.Fatalf("remote: %d, %d dev_token_issued counted", w.Code, n)
	}
	r = httptest.NewRequest("GET", "/v1/dev/token?user=alice", nil)
	r.RemoteAddr, r.Host = "127.0.0.1:5000", "127.0.0.1:8080"
	if w, n := serve(cfg, r), len(counted.Of(audit.DevTokenIssued)); w.Code != http.StatusOK || n != 1 {
		t.Fatalf("loopback: %d, %d dev_token_issued counted, want 1", w.Code, n)
	}
}

func jsonDecode(b []byte, v any) error { return json.Unmarshal(b, v) }
