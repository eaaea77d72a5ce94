package auth

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/goleak"
)

type jwk struct {
	kid string
	alg jwkset.ALG
	use jwkset.USE
	key any // public key, or []byte for an "oct" key
}

// jwksServer serves a JWK Set that tests can swap at any time.
type jwksServer struct {
	*httptest.Server
	body   atomic.Pointer[[]byte]
	status atomic.Int32
	hits   atomic.Int32
}

func newJWKSServer(tb testing.TB, keys ...jwk) *jwksServer {
	tb.Helper()
	s := &jwksServer{}
	s.status.Store(http.StatusOK)
	s.set(tb, keys...)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(int(s.status.Load()))
		_, _ = w.Write(*s.body.Load())
	}))
	tb.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(tb testing.TB, keys ...jwk) {
	tb.Helper()
	set := jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{}}
	for _, k := range keys {
		_, private := k.key.([]byte)
		j, err := jwkset.NewJWKFromKey(k.key, jwkset.JWKOptions{
			Marshal:  jwkset.JWKMarshalOptions{Private: private},
			Metadata: jwkset.JWKMetadataOptions{KID: k.kid, ALG: k.alg, USE: k.use},
		})
		if err != nil {
			tb.Fatalf("jwk %s: %v", k.kid, err)
		}
		set.Keys = append(set.Keys, j.Marshal())
	}
	b, err := json.Marshal(set)
	if err != nil {
		tb.Fatal(err)
	}
	s.body.Store(&b)
}

func jwksConfig(s *jwksServer) Config {
	return Config{JWKSURL: s.URL + "/jwks.json", HTTPClient: s.Client(), Now: fixedNow}
}

func TestJWKS(t *testing.T) {
	k := keys()
	octKey := []byte("jwks-oct-key-jwks-oct-key-jwks-o")
	srv := newJWKSServer(t,
		jwk{kid: "r1", alg: jwkset.AlgRS256, use: jwkset.UseSig, key: &k.rsa.PublicKey},
		jwk{kid: "e1", alg: jwkset.AlgES256, key: &k.ec.PublicKey},
		jwk{kid: "d1", key: k.ed.Public()},
		jwk{kid: "h1", alg: jwkset.AlgHS256, key: octKey},
		jwk{kid: "x1", use: jwkset.UseEnc, key: &k.ec384.PublicKey},
	)
	v := newVerifier(t, jwksConfig(srv))
	cfg := jwksConfig(srv)
	cfg.HMACSecret = testSecret
	withSecret := newVerifier(t, cfg)
	kid := func(id any) map[string]any { return map[string]any{"kid": id} }

	tests := []struct {
		name  string
		v     *Verifier
		token string
		want  Reason
	}{
		{"RS256 by kid", v, sign(t, jwt.SigningMethodRS256, k.rsa, claims(nil), kid("r1")), ""},
		{"ES256 by kid", v, sign(t, jwt.SigningMethodES256, k.ec, claims(nil), kid("e1")), ""},
		{"EdDSA by kid", v, sign(t, jwt.SigningMethodEdDSA, k.ed, claims(nil), kid("d1")), ""},
		{"no kid searches the set", v, sign(t, jwt.SigningMethodES256, k.ec, claims(nil), nil), ""},
		{"no kid, no fitting key", v, sign(t, jwt.SigningMethodES256, mustEC(t), claims(nil), nil), ReasonSignature},
		{"alg differs from the JWK alg", v, sign(t, jwt.SigningMethodPS256, k.rsa, claims(nil), kid("r1")), ReasonUnknownKey},
		{"kid of another key type", v, sign(t, jwt.SigningMethodRS256, k.rsa, claims(nil), kid("e1")), ReasonUnknownKey},
		{"wrong signer for kid", v, sign(t, jwt.SigningMethodES256, mustEC(t), claims(nil), kid("e1")), ReasonSignature},
		{"encryption key", v, sign(t, jwt.SigningMethodES384, k.ec384, claims(nil), kid("x1")), ReasonUnknownKey},
		{"HS256 never with JWKS", v, sign(t, jwt.SigningMethodHS256, octKey, claims(nil), kid("h1")), ReasonAlgorithm},
		{"HS256 uses only the secret", withSecret, sign(t, jwt.SigningMethodHS256, octKey, claims(nil), kid("h1")), ReasonSignature},
		{"HS256 with secret", withSecret, sign(t, jwt.SigningMethodHS256, testSecret, claims(nil), kid("r1")), ""},
		{"kid not a string", v, sign(t, jwt.SigningMethodRS256, k.rsa, claims(nil), kid(7)), ReasonUnknownKey},
		{"unknown kid", v, sign(t, jwt.SigningMethodRS256, k.rsa, claims(nil), kid("nope")), ReasonUnknownKey},
		{"unknown kid again", v, sign(t, jwt.SigningMethodRS256, k.rsa, claims(nil), kid("nope2")), ReasonUnknownKey},
		{"expired", v, sign(t, jwt.SigningMethodRS256, k.rsa, claims(map[string]any{"exp": testNow.Add(-time.Hour).Unix()}), kid("r1")), ReasonExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			assertReason(t, tt.v, tt.token, tt.want)
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("Verify took %v; unknown kids must not block", d)
			}
		})
	}
}

func TestJWKSRotation(t *testing.T) {
	k := keys()
	srv := newJWKSServer(t, jwk{kid: "old", alg: jwkset.AlgRS256, key: &k.rsa.PublicKey})
	v := newVerifier(t, jwksConfig(srv))
	oldTok := sign(t, jwt.SigningMethodRS256, k.rsa, claims(nil), map[string]any{"kid": "old"})
	assertReason(t, v, oldTok, "")
	before := srv.hits.Load()

	// The IdP rotates: the new key replaces the old one.
	srv.set(t, jwk{kid: "new", alg: jwkset.AlgES256, key: &k.ec.PublicKey})
	newTok := sign(t, jwt.SigningMethodES256, k.ec, claims(nil), map[string]any{"kid": "new"})
	p := assertReason(t, v, newTok, "")
	if p.User != "user-1" {
		t.Fatalf("principal = %+v", p)
	}
	if got := srv.hits.Load() - before; got != 1 {
		t.Fatalf("unknown kid caused %d fetches, want 1", got)
	}
	// The refresh replaced the cache, so the revoked key is gone, and the
	// rate limiter answers at once instead of fetching again.
	start := time.Now()
	assertReason(t, v, oldTok, ReasonUnknownKey)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("rate-limited lookup took %v", d)
	}
	if got := srv.hits.Load() - before; got != 1 {
		t.Fatalf("rate limit not applied: %d fetches", got)
	}
	assertReason(t, v, newTok, "")
}

func TestJWKSStartupFailure(t *testing.T) {
	k := keys()
	tests := []struct {
		name    string
		prepare func(s *jwksServer)
		wantErr string
	}{
		{"http error", func(s *jwksServer) { s.status.Store(http.StatusInternalServerError) }, "JWKSURL"},
		{"empty set", func(s *jwksServer) { s.set(t) }, "no supported key"},
		{"not JSON", func(s *jwksServer) { b := []byte("<html>"); s.body.Store(&b) }, "JWKSURL"},
		{"unreachable", func(s *jwksServer) { s.Close() }, "JWKSURL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newJWKSServer(t, jwk{kid: "r1", key: &k.rsa.PublicKey})
			ignore := goleak.IgnoreCurrent()
			tt.prepare(srv)
			_, err := NewVerifier(context.Background(), jwksConfig(srv))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("NewVerifier() error = %v, want %q", err, tt.wantErr)
			}
			srv.Close()
			// The refresh goroutine was started and must be gone again.
			goleak.VerifyNone(t, ignore)
		})
	}
}

func TestJWKSGoroutineStopsOnCancel(t *testing.T) {
	k := keys()
	ignore := goleak.IgnoreCurrent()
	srv := newJWKSServer(t, jwk{kid: "r1", key: &k.rsa.PublicKey})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	v, err := NewVerifier(ctx, jwksConfig(srv))
	if err != nil {
		t.Fatal(err)
	}
	assertReason(t, v, sign(t, jwt.SigningMethodRS256, k.rsa, claims(nil), map[string]any{"kid": "r1"}), "")
	srv.Close()
	if goleak.Find(ignore) == nil {
		t.Fatal("expected a running JWKS refresh goroutine before cancel")
	}
	cancel()
	goleak.VerifyNone(t, ignore)
	// After shutdown an unknown kid fails fast instead of fetching.
	assertReason(t, v, sign(t, jwt.SigningMethodRS256, k.rsa, claims(nil), map[string]any{"kid": "zz"}), ReasonUnknownKey)
}
