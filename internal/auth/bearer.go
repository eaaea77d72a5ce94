package auth

import (
	"net/http"
	"strings"
)

// BearerToken returns the Authorization header's bearer token and whether
// an Authorization header was present at all (a malformed one yields "",
// true). It is the one place Herald parses that header.
func BearerToken(r *http.Request) (token string, present bool) {
	v := r.Header.Get("Authorization")
	if v == "" {
		return "", false
	}
	scheme, tok, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", true
	}
	return strings.TrimSpace(tok), true
}
