package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldhq/herald/internal/testkit"
)

func TestMain(m *testing.M) {
	testkit.LeakMain(m)
}

// testNow is the fixed clock of every verifier in these tests.
var testNow = time.Unix(1_700_000_000, 0)

func fixedNow() time.Time { return testNow }

var testSecret = []byte("0123456789abcdef0123456789abcdef") // 32 bytes

type testKeyset struct {
	rsa   *rsa.PrivateKey
	ec    *ecdsa.PrivateKey // P-256
	ec384 *ecdsa.PrivateKey
	ed    ed25519.PrivateKey
}

// keys are generated once per test binary (RSA generation is slow).
var keys = sync.OnceValue(func() testKeyset {
	r, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	ec384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		panic(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	return testKeyset{rsa: r, ec: ec, ec384: ec384, ed: ed}
})

// claims returns a valid claim set, modified by the given edits (a nil value
// deletes the claim).
func claims(edits map[string]any) jwt.MapClaims {
	c := jwt.MapClaims{
		"sub":       "user-1",
		"tenant_id": "acme",
		"role":      "member",
		"exp":       testNow.Add(time.Hour).Unix(),
		"iat":       testNow.Add(-time.Minute).Unix(),
	}
	for k, v := range edits {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func sign(tb testing.TB, m jwt.SigningMethod, key any, c jwt.MapClaims, header map[string]any) string {
	tb.Helper()
	tok := jwt.NewWithClaims(m, c)
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		tb.Fatalf("sign %s: %v", m.Alg(), err)
	}
	return s
}

func hs(tb testing.TB, c jwt.MapClaims) string {
	tb.Helper()
	return sign(tb, jwt.SigningMethodHS256, testSecret, c, nil)
}

// rawToken builds a token from a literal header, claims and signature.
func rawToken(header string, c jwt.MapClaims, sig string) string {
	enc := base64.RawURLEncoding
	payload, _ := json.Marshal(c)
	return enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString(payload) + "." + sig
}

func pemBytes(tb testing.TB, pubs ...crypto.PublicKey) []byte {
	tb.Helper()
	var out []byte
	for _, pub := range pubs {
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})...)
	}
	return out
}

func writeFile(tb testing.TB, data []byte) string {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), "key.pem")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

func newVerifier(tb testing.TB, cfg Config) *Verifier {
	tb.Helper()
	if cfg.Now == nil {
		cfg.Now = fixedNow
	}
	v, err := NewVerifier(tb.Context(), cfg)
	if err != nil {
		tb.Fatalf("NewVerifier: %v", err)
	}
	return v
}

func assertReason(tb testing.TB, v *Verifier, token string, want Reason) Principal {
	tb.Helper()
	p, err := v.Verify(token)
	if want == "" {
		if err != nil {
			tb.Fatalf("Verify: unexpected error %v", err)
		}
		return p
	}
	if err == nil {
		tb.Fatalf("Verify accepted the token, want reason %q", want)
	}
	if !errors.Is(err, ErrInvalidToken) {
		tb.Errorf("error %v does not match ErrInvalidToken", err)
	}
	if got := ReasonOf(err); got != want {
		tb.Fatalf("reason = %q, want %q (err: %v)", got, want, err)
	}
	if !reflect.DeepEqual(p, Principal{}) {
		tb.Errorf("rejected token returned non-zero principal %+v", p)
	}
	return p
}

// verifyCase is one row of TestVerifyMatrix.
type verifyCase struct {
	name   string
	v      *Verifier
	token  string
	want   Reason
	expect func(t *testing.T, p Principal)
}

// verifyFixture holds the verifiers and tokens TestVerifyMatrix's cases share.
type verifyFixture struct {
	k                                                      testKeyset
	pubPEM                                                 []byte
	multi, rsaOnly, strict, noDefault, withDefault, custom *Verifier
	valid                                                  string
	parts                                                  []string
	tamperedPayload, tamperedSig                           string
}

// newVerifyFixture builds the verifiers and the valid and tampered tokens.
func newVerifyFixture(t *testing.T) *verifyFixture {
	k := keys()
	pubPEM := pemBytes(t, &k.rsa.PublicKey)
	allKeys := writeFile(t, pemBytes(t, &k.rsa.PublicKey, &k.ec.PublicKey, k.ed.Public()))

	multi := newVerifier(t, Config{HMACSecret: testSecret, PublicKeyFile: allKeys})
	rsaOnly := newVerifier(t, Config{PublicKeyFile: writeFile(t, pubPEM)})
	strict := newVerifier(t, Config{HMACSecret: testSecret, Issuer: "https://idp.example", Audience: "herald"})
	noDefault := newVerifier(t, Config{HMACSecret: testSecret})
	withDefault := newVerifier(t, Config{HMACSecret: testSecret, DefaultTenant: "default"})
	custom := newVerifier(t, Config{HMACSecret: testSecret, TenantClaim: "org", RoleClaim: "https://herald/role", TopicsClaim: "https://herald/topics"})

	valid := hs(t, claims(nil))
	parts := strings.Split(valid, ".")
	tamperedPayload := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"admin","tenant_id":"acme","exp":1900000000}`)) + "." + parts[2]
	sig := []byte(parts[2])
	if sig[0] == 'A' { // change the first character: canonical base64, wrong MAC
		sig[0] = 'B'
	} else {
		sig[0] = 'A'
	}
	tamperedSig := parts[0] + "." + parts[1] + "." + string(sig)

	return &verifyFixture{
		k: k, pubPEM: pubPEM,
		multi: multi, rsaOnly: rsaOnly, strict: strict, noDefault: noDefault, withDefault: withDefault, custom: custom,
		valid: valid, parts: parts, tamperedPayload: tamperedPayload, tamperedSig: tamperedSig,
	}
}

// verifyAlgorithmCases accepts a valid token under every supported algorithm and key source.
func verifyAlgorithmCases(t *testing.T, f *verifyFixture) []verifyCase {
	return []verifyCase{
		{name: "HS256", v: f.multi, token: hs(t, claims(nil))},
		{name: "HS384", v: f.multi, token: sign(t, jwt.SigningMethodHS384, testSecret, claims(nil), nil)},
		{name: "HS512", v: f.multi, token: sign(t, jwt.SigningMethodHS512, testSecret, claims(nil), nil)},
		{name: "RS256", v: f.multi, token: sign(t, jwt.SigningMethodRS256, f.k.rsa, claims(nil), nil)},
		{name: "RS512", v: f.multi, token: sign(t, jwt.SigningMethodRS512, f.k.rsa, claims(nil), nil)},
		{name: "PS256", v: f.multi, token: sign(t, jwt.SigningMethodPS256, f.k.rsa, claims(nil), nil)},
		{name: "ES256", v: f.multi, token: sign(t, jwt.SigningMethodES256, f.k.ec, claims(nil), nil)},
		{name: "EdDSA", v: f.multi, token: sign(t, jwt.SigningMethodEdDSA, f.k.ed, claims(nil), nil)},
		{name: "RS256 key-file only", v: f.rsaOnly, token: sign(t, jwt.SigningMethodRS256, f.k.rsa, claims(nil), nil)},
	}
}

// verifySignatureCases rejects unsafe algorithms, key confusion and bad signatures.
func verifySignatureCases(t *testing.T, f *verifyFixture) []verifyCase {
	return []verifyCase{
		{name: "alg none", v: f.multi, token: rawToken(`{"alg":"none","typ":"JWT"}`, claims(nil), ""), want: ReasonAlgorithm},
		{name: "alg None", v: f.multi, token: rawToken(`{"alg":"None","typ":"JWT"}`, claims(nil), ""), want: ReasonAlgorithm},
		{name: "alg NONE", v: f.multi, token: rawToken(`{"alg":"NONE","typ":"JWT"}`, claims(nil), ""), want: ReasonAlgorithm},
		{name: "alg nOnE", v: f.multi, token: rawToken(`{"alg":"nOnE","typ":"JWT"}`, claims(nil), ""), want: ReasonAlgorithm},
		{name: "alg missing", v: f.multi, token: rawToken(`{"typ":"JWT"}`, claims(nil), ""), want: ReasonAlgorithm},
		{name: "key confusion HS256 with RSA PEM as secret", v: f.rsaOnly,
			token: sign(t, jwt.SigningMethodHS256, f.pubPEM, claims(nil), nil), want: ReasonAlgorithm},
		{name: "key confusion with secret configured too", v: f.multi,
			token: sign(t, jwt.SigningMethodHS256, pemBytes(t, &f.k.rsa.PublicKey, &f.k.ec.PublicKey, f.k.ed.Public()), claims(nil), nil), want: ReasonSignature},
		{name: "ES384 without P-384 key", v: f.multi, token: sign(t, jwt.SigningMethodES384, f.k.ec384, claims(nil), nil), want: ReasonAlgorithm},
		{name: "ES256 signed by another key", v: f.multi, token: sign(t, jwt.SigningMethodES256, mustEC(t), claims(nil), nil), want: ReasonSignature},
		{name: "HS256 wrong secret", v: f.multi, token: sign(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-xx"), claims(nil), nil), want: ReasonSignature},
		{name: "tampered payload", v: f.multi, token: f.tamperedPayload, want: ReasonSignature},
		{name: "tampered signature", v: f.multi, token: f.tamperedSig, want: ReasonSignature},
		{name: "crit header", v: f.multi, token: sign(t, jwt.SigningMethodHS256, testSecret, claims(nil), map[string]any{"crit": []string{"b64"}}), want: ReasonMalformed},
	}
}

// verifyTimeCases covers exp, nbf and iat, with and without leeway.
func verifyTimeCases(t *testing.T, f *verifyFixture) []verifyCase {
	return []verifyCase{
		{name: "expired beyond leeway", v: f.multi, token: hs(t, claims(map[string]any{"exp": testNow.Add(-time.Minute).Unix()})), want: ReasonExpired},
		{name: "expired within leeway", v: f.multi, token: hs(t, claims(map[string]any{"exp": testNow.Add(-10 * time.Second).Unix()}))},
		{name: "no exp", v: f.multi, token: hs(t, claims(map[string]any{"exp": nil})), want: ReasonMissingExp},
		{name: "exp not a number", v: f.multi, token: hs(t, claims(map[string]any{"exp": "tomorrow"})), want: ReasonClaims},
		{name: "nbf beyond leeway", v: f.multi, token: hs(t, claims(map[string]any{"nbf": testNow.Add(2 * time.Minute).Unix()})), want: ReasonNotYetValid},
		{name: "nbf within leeway", v: f.multi, token: hs(t, claims(map[string]any{"nbf": testNow.Add(10 * time.Second).Unix()}))},
		{name: "iat in the future", v: f.multi, token: hs(t, claims(map[string]any{"iat": testNow.Add(time.Hour).Unix()})), want: ReasonNotYetValid},
	}
}

// verifyIssuerAudienceCases covers the iss and aud checks.
func verifyIssuerAudienceCases(t *testing.T, f *verifyFixture) []verifyCase {
	return []verifyCase{
		{name: "issuer and audience ok", v: f.strict, token: hs(t, claims(map[string]any{"iss": "https://idp.example", "aud": []string{"other", "herald"}}))},
		{name: "wrong iss", v: f.strict, token: hs(t, claims(map[string]any{"iss": "https://evil.example", "aud": "herald"})), want: ReasonIssuer},
		{name: "missing iss", v: f.strict, token: hs(t, claims(map[string]any{"aud": "herald"})), want: ReasonIssuer},
		{name: "non-string iss", v: f.strict, token: hs(t, claims(map[string]any{"iss": 7, "aud": "herald"})), want: ReasonIssuer},
		{name: "wrong aud", v: f.strict, token: hs(t, claims(map[string]any{"iss": "https://idp.example", "aud": "other"})), want: ReasonAudience},
		{name: "missing aud", v: f.strict, token: hs(t, claims(map[string]any{"iss": "https://idp.example"})), want: ReasonAudience},
		{name: "iss ignored when not configured", v: f.multi, token: hs(t, claims(map[string]any{"iss": "anyone", "aud": "any"}))},
	}
}

// verifySubjectCases covers the subject and control characters in string claims.
func verifySubjectCases(t *testing.T, f *verifyFixture) []verifyCase {
	return []verifyCase{
		{name: "missing sub", v: f.multi, token: hs(t, claims(map[string]any{"sub": nil})), want: ReasonClaims},
		{name: "empty sub", v: f.multi, token: hs(t, claims(map[string]any{"sub": ""})), want: ReasonClaims},
		{name: "non-string sub", v: f.multi, token: hs(t, claims(map[string]any{"sub": 42})), want: ReasonClaims},
		{name: "sub too long", v: f.multi, token: hs(t, claims(map[string]any{"sub": strings.Repeat("u", 129)})), want: ReasonClaims},
		{name: "sub 128 bytes", v: f.multi, token: hs(t, claims(map[string]any{"sub": strings.Repeat("u", 128)}))},
		{name: "sub with control char", v: f.multi, token: hs(t, claims(map[string]any{"sub": "user\n1"})), want: ReasonClaims},
		{name: "tenant with control char", v: f.multi, token: hs(t, claims(map[string]any{"tenant_id": "ac\x00me"})), want: ReasonClaims},
		{name: "role with control char", v: f.multi, token: hs(t, claims(map[string]any{"role": "admin\r"})), want: ReasonClaims},
		{name: "name with control char", v: f.multi, token: hs(t, claims(map[string]any{"name": "Eve\x1b[31m"})), want: ReasonClaims},
	}
}

// verifyPrincipalCases covers tenant resolution, claim names and the returned Principal.
func verifyPrincipalCases(t *testing.T, f *verifyFixture) []verifyCase {
	return []verifyCase{
		{name: "tenant from claim", v: f.withDefault, token: hs(t, claims(nil)), expect: func(t *testing.T, p Principal) {
			if p.Tenant != "acme" {
				t.Errorf("tenant = %q, want acme", p.Tenant)
			}
		}},
		{name: "default tenant", v: f.withDefault, token: hs(t, claims(map[string]any{"tenant_id": nil})), expect: func(t *testing.T, p Principal) {
			if p.Tenant != "default" {
				t.Errorf("tenant = %q, want default", p.Tenant)
			}
		}},
		{name: "missing tenant rejected", v: f.noDefault, token: hs(t, claims(map[string]any{"tenant_id": nil})), want: ReasonClaims},
		{name: "empty tenant rejected", v: f.withDefault, token: hs(t, claims(map[string]any{"tenant_id": ""})), want: ReasonClaims},
		{name: "non-string tenant rejected", v: f.withDefault, token: hs(t, claims(map[string]any{"tenant_id": 7})), want: ReasonClaims},
		{name: "custom claim names", v: f.custom, token: hs(t, claims(map[string]any{"tenant_id": nil, "role": nil, "org": "globex", "https://herald/role": "admin"})),
			expect: func(t *testing.T, p Principal) {
				if p.Tenant != "globex" || p.Role != "admin" {
					t.Errorf("tenant/role = %q/%q, want globex/admin", p.Tenant, p.Role)
				}
			}},
		{name: "custom tenant claim missing", v: f.custom, token: hs(t, claims(nil)), want: ReasonClaims},
		{name: "non-string role ignored", v: f.multi, token: hs(t, claims(map[string]any{"role": []string{"admin"}})), expect: func(t *testing.T, p Principal) {
			if p.Role != "" {
				t.Errorf("role = %q, want empty", p.Role)
			}
		}},
		{name: "all fields", v: f.multi, token: hs(t, claims(map[string]any{"email": "u@example.com", "name": "Ada", "jti": "tok-1"})),
			expect: func(t *testing.T, p Principal) {
				want := Principal{
					User: "user-1", Tenant: "acme", Role: "member", Email: "u@example.com", Name: "Ada", TokenID: "tok-1",
					IssuedAt: time.Unix(testNow.Add(-time.Minute).Unix(), 0), Expires: time.Unix(testNow.Add(time.Hour).Unix(), 0),
				}
				if !p.IssuedAt.Equal(want.IssuedAt) || !p.Expires.Equal(want.Expires) {
					t.Errorf("times = %v/%v, want %v/%v", p.IssuedAt, p.Expires, want.IssuedAt, want.Expires)
				}
				p.IssuedAt, p.Expires, want.IssuedAt, want.Expires = time.Time{}, time.Time{}, time.Time{}, time.Time{}
				if !reflect.DeepEqual(p, want) {
					t.Errorf("principal = %+v, want %+v", p, want)
				}
			}},
		{name: "topics claim", v: f.multi, token: hs(t, claims(map[string]any{"topics": []any{"project.*", "chat:general", "bad name", 7, "a*b"}})),
			expect: func(t *testing.T, p Principal) {
				if !reflect.DeepEqual(p.Topics, []string{"project.*", "chat:general"}) {
					t.Errorf("topics = %q, want the two valid patterns", p.Topics)
				}
			}},
		{name: "topics claim not a list grants nothing", v: f.multi, token: hs(t, claims(map[string]any{"topics": "project.*"})),
			expect: func(t *testing.T, p Principal) {
				if p.Topics != nil {
					t.Errorf("topics = %q, want none", p.Topics)
				}
			}},
		{name: "custom topics claim", v: f.custom, token: hs(t, claims(map[string]any{"org": "globex", "topics": []any{"x"}, "https://herald/topics": []any{"room.*"}})),
			expect: func(t *testing.T, p Principal) {
				if !reflect.DeepEqual(p.Topics, []string{"room.*"}) {
					t.Errorf("topics = %q, want [room.*] from the custom claim", p.Topics)
				}
			}},
		{name: "no iat", v: f.multi, token: hs(t, claims(map[string]any{"iat": nil})), expect: func(t *testing.T, p Principal) {
			if !p.IssuedAt.IsZero() {
				t.Errorf("IssuedAt = %v, want zero", p.IssuedAt)
			}
		}},
	}
}

// verifyMalformedCases covers oversize and structurally malformed tokens.
func verifyMalformedCases(t *testing.T, f *verifyFixture) []verifyCase {
	return []verifyCase{
		{name: "oversize", v: f.multi, token: hs(t, claims(map[string]any{"pad": strings.Repeat("x", MaxTokenBytes)})), want: ReasonTooLarge},
		{name: "oversize garbage", v: f.multi, token: strings.Repeat("a", MaxTokenBytes+1), want: ReasonTooLarge},
		{name: "empty", v: f.multi, token: "", want: ReasonMalformed},
		{name: "a.b", v: f.multi, token: "a.b", want: ReasonMalformed},
		{name: "a.b.c", v: f.multi, token: "a.b.c", want: ReasonMalformed},
		{name: "four segments", v: f.multi, token: "a.b.c.d", want: ReasonMalformed},
		{name: "valid plus extra segment", v: f.multi, token: f.valid + ".x", want: ReasonMalformed},
		{name: "header not JSON", v: f.multi, token: "bm90LWpzb24." + f.parts[1] + "." + f.parts[2], want: ReasonMalformed},
		{name: "padded base64", v: f.multi, token: f.parts[0] + "=." + f.parts[1] + "." + f.parts[2], want: ReasonMalformed},
	}
}

func TestVerifyMatrix(t *testing.T) {
	f := newVerifyFixture(t)
	var tests []verifyCase
	for _, cases := range []func(*testing.T, *verifyFixture) []verifyCase{
		verifyAlgorithmCases, verifySignatureCases, verifyTimeCases, verifyIssuerAudienceCases,
		verifySubjectCases, verifyPrincipalCases, verifyMalformedCases,
	} {
		tests = append(tests, cases(t, f)...)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := assertReason(t, tt.v, tt.token, tt.want)
			if tt.expect != nil {
				tt.expect(t, p)
			}
		})
	}
}

func mustEC(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func TestLeeway(t *testing.T) {
	tests := []struct {
		name string
		in   time.Duration
		want time.Duration
	}{
		{"default", 0, DefaultLeeway},
		{"negative means none", -time.Second, 0},
		{"explicit", 5 * time.Second, 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newVerifier(t, Config{HMACSecret: testSecret, Leeway: tt.in})
			if got := v.Leeway(); got != tt.want {
				t.Fatalf("Leeway() = %v, want %v", got, tt.want)
			}
		})
	}
	v := newVerifier(t, Config{HMACSecret: testSecret, Leeway: -1})
	assertReason(t, v, hs(t, claims(map[string]any{"exp": testNow.Add(-time.Second).Unix()})), ReasonExpired)
}

func TestConfigValidate(t *testing.T) {
	keyFile := "/nonexistent/key.pem" // Validate never reads the file
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // substring; "" = valid
	}{
		{"secret", Config{HMACSecret: testSecret}, ""},
		{"key file", Config{PublicKeyFile: keyFile}, ""},
		{"jwks", Config{JWKSURL: "https://idp.example/jwks.json"}, ""},
		{"all sources", Config{HMACSecret: testSecret, PublicKeyFile: keyFile, JWKSURL: "https://idp.example/jwks"}, ""},
		{"explicit algs", Config{HMACSecret: testSecret, PublicKeyFile: keyFile, Algorithms: []string{"HS256", "RS256"}}, ""},
		{"no source", Config{}, "no key source"},
		{"short secret", Config{HMACSecret: []byte("short")}, "HMACSecret"},
		{"alg none", Config{HMACSecret: testSecret, Algorithms: []string{"HS256", "none"}}, "never allowed"},
		{"alg NONE", Config{HMACSecret: testSecret, Algorithms: []string{"NONE"}}, "never allowed"},
		{"unknown alg", Config{HMACSecret: testSecret, Algorithms: []string{"HS256", "hs256"}}, "unknown algorithm"},
		{"HS with only a public key", Config{PublicKeyFile: keyFile, Algorithms: []string{"HS256", "RS256"}}, "needs HMACSecret"},
		{"HS with only JWKS", Config{JWKSURL: "https://idp.example/jwks", Algorithms: []string{"HS256"}}, "needs HMACSecret"},
		{"RS with only a secret", Config{HMACSecret: testSecret, Algorithms: []string{"HS256", "RS256"}}, "needs PublicKeyFile or JWKSURL"},
		{"secret unused", Config{HMACSecret: testSecret, PublicKeyFile: keyFile, Algorithms: []string{"RS256"}}, "allows no HS256"},
		{"key file unused", Config{HMACSecret: testSecret, PublicKeyFile: keyFile, Algorithms: []string{"HS256"}}, "no asymmetric"},
		{"jwks not a URL", Config{JWKSURL: "idp.example/jwks"}, "JWKSURL"},
		{"jwks bad scheme", Config{JWKSURL: "file:///etc/jwks.json"}, "JWKSURL"},
		{"same claim names", Config{HMACSecret: testSecret, TenantClaim: "role"}, "TenantClaim and RoleClaim"},
		{"topics claim is the role claim", Config{HMACSecret: testSecret, TopicsClaim: "role"}, "TopicsClaim"},
		{"bad default tenant", Config{HMACSecret: testSecret, DefaultTenant: "a\nb"}, "DefaultTenant"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("Validate() = nil, want error containing %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("Validate() = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestNewVerifierKeyFile(t *testing.T) {
	k := keys()
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k.ec)
	if err != nil {
		t.Fatal(err)
	}
	privPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)})
	cert := selfSignedCert(t, k.ec)

	tests := []struct {
		name    string
		file    []byte
		algs    []string
		wantErr string
		token   string // verified when the verifier builds
	}{
		{name: "PKCS1 RSA", file: pkcs1, token: sign(t, jwt.SigningMethodPS384, k.rsa, claims(nil), nil)},
		{name: "certificate", file: cert, token: sign(t, jwt.SigningMethodES256, k.ec, claims(nil), nil)},
		{name: "private key refused", file: privPEM, wantErr: "private key"},
		{name: "small RSA refused", file: pemBytes(t, &small.PublicKey), wantErr: "1024 bits"},
		{name: "no PEM", file: []byte("hello"), wantErr: "no PEM"},
		{name: "unsupported block", file: pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{1}}), wantErr: "unsupported type"},
		{name: "alg without matching key", file: pemBytes(t, &k.rsa.PublicKey), algs: []string{"RS256", "ES256"}, wantErr: "can verify ES256"},
		{name: "explicit subset", file: pemBytes(t, &k.rsa.PublicKey), algs: []string{"PS256"}, token: sign(t, jwt.SigningMethodPS256, k.rsa, claims(nil), nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{PublicKeyFile: writeFile(t, tt.file), Algorithms: tt.algs, Now: fixedNow}
			v, err := NewVerifier(t.Context(), cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("NewVerifier() error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			assertReason(t, v, tt.token, "")
		})
	}
	t.Run("explicit subset rejects others", func(t *testing.T) {
		v := newVerifier(t, Config{PublicKeyFile: writeFile(t, pemBytes(t, &k.rsa.PublicKey)), Algorithms: []string{"PS256"}})
		assertReason(t, v, sign(t, jwt.SigningMethodRS256, k.rsa, claims(nil), nil), ReasonAlgorithm)
	})
	t.Run("missing file", func(t *testing.T) {
		_, err := NewVerifier(t.Context(), Config{PublicKeyFile: filepath.Join(t.TempDir(), "nope.pem")})
		if err == nil || !strings.Contains(err.Error(), "PublicKeyFile") {
			t.Fatalf("error = %v, want PublicKeyFile error", err)
		}
	})
}

func selfSignedCert(tb testing.TB, key *ecdsa.PrivateKey) []byte {
	tb.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: testNow.Add(-time.Hour), NotAfter: testNow.Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestTokenError(t *testing.T) {
	v := newVerifier(t, Config{HMACSecret: testSecret})
	_, err := v.Verify("a.b")
	wrapped := fmt.Errorf("ws handshake: %w", err)
	if !errors.Is(wrapped, ErrInvalidToken) {
		t.Fatal("wrapped TokenError does not match ErrInvalidToken")
	}
	if got := ReasonOf(wrapped); got != ReasonMalformed {
		t.Fatalf("ReasonOf = %q", got)
	}
	if te, ok := errors.AsType[*TokenError](wrapped); !ok || !errors.Is(te, jwt.ErrTokenMalformed) {
		t.Fatalf("TokenError does not unwrap to the jwt cause: %v", err)
	}
	if ReasonOf(nil) != "" || ReasonOf(errors.New("x")) != "" {
		t.Fatal("ReasonOf of a non-token error must be empty")
	}
	// The token itself never appears in the error text.
	tok := hs(t, claims(map[string]any{"exp": testNow.Add(-time.Hour).Unix()}))
	if _, err := v.Verify(tok); err == nil || strings.Contains(err.Error(), tok) || strings.Contains(err.Error(), strings.Split(tok, ".")[2]) {
		t.Fatalf("error leaks the token: %v", err)
	}
}

func TestSignHS256(t *testing.T) {
	tok, err := SignHS256(testSecret, map[string]any{"sub": "dev", "tenant_id": "t", "exp": testNow.Add(time.Minute).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	p := assertReason(t, newVerifier(t, Config{HMACSecret: testSecret}), tok, "")
	if p.User != "dev" || p.Tenant != "t" {
		t.Fatalf("principal = %+v", p)
	}
	if _, err := SignHS256(nil, map[string]any{"sub": "x"}); err == nil {
		t.Fatal("SignHS256 with empty secret succeeded")
	}
}

func TestVerifyConcurrent(t *testing.T) {
	k := keys()
	v := newVerifier(t, Config{HMACSecret: testSecret, PublicKeyFile: writeFile(t, pemBytes(t, &k.rsa.PublicKey))})
	good := []string{hs(t, claims(nil)), sign(t, jwt.SigningMethodRS256, k.rsa, claims(nil), nil)}
	bad := hs(t, claims(map[string]any{"sub": nil}))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 50 {
				if _, err := v.Verify(good[i%2]); err != nil {
					t.Errorf("Verify: %v", err)
					return
				}
				if _, err := v.Verify(bad); ReasonOf(err) != ReasonClaims {
					t.Errorf("Verify(bad) = %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func FuzzVerify(f *testing.F) {
	other := []byte("fuzz-secret-fuzz-secret-fuzz-sec")
	f.Add("")
	f.Add("a.b.c")
	f.Add("a.b.c.d")
	f.Add(rawToken(`{"alg":"none"}`, claims(nil), ""))
	f.Add(rawToken(`{"alg":"HS256","crit":["x"]}`, claims(nil), "AAAA"))
	f.Add(sign(f, jwt.SigningMethodHS256, other, claims(nil), nil))
	f.Add(sign(f, jwt.SigningMethodHS512, other, claims(map[string]any{"exp": nil}), map[string]any{"kid": "k"}))
	v := newVerifier(f, Config{HMACSecret: testSecret, DefaultTenant: "t"})
	f.Fuzz(func(t *testing.T, token string) {
		p, err := v.Verify(token)
		if err == nil {
			t.Fatalf("random token verified: %q -> %+v", token, p)
		}
		if !errors.Is(err, ErrInvalidToken) || ReasonOf(err) == "" {
			t.Fatalf("error without reason: %v", err)
		}
	})
}
