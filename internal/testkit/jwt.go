package testkit

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Token returns an HS256 JWT of claims signed with secret, as Herald's
// HMAC verifier accepts it. (It does not use auth.SignHS256, so that
// package auth's own tests can import testkit.)
func Token(t testing.TB, secret []byte, claims map[string]any) string {
	t.Helper()
	if len(secret) == 0 {
		t.Fatal("testkit: Token: empty secret")
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(claims)).SignedString(secret)
	if err != nil {
		t.Fatalf("testkit: Token: %v", err)
	}
	return tok
}

// UserToken returns a [Token] for user of tenant, issued now and expiring
// after ttl (a negative ttl gives an expired token), with a "role" claim
// unless role is empty.
func UserToken(t testing.TB, secret []byte, tenant, user, role string, ttl time.Duration) string {
	t.Helper()
	now := time.Now()
	claims := map[string]any{"sub": user, "tenant_id": tenant, "iat": now.Unix(), "exp": now.Add(ttl).Unix()}
	if role != "" {
		claims["role"] = role
	}
	return Token(t, secret, claims)
}
