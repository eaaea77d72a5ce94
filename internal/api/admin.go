package api

import (
	"context"
	"github.com/heraldhq/herald/internal/session"
	"net/http"
	"time"

	"github.com/heraldhq/herald/internal/audit"
	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/revocation"
)

// Revoker applies and persists revocations (and closes live connections on
// every node).
type Revoker interface {
	Revoke(ctx context.Context, r revocation.Revocation) error
	Lift(ctx context.Context, tenant, user string) error
}

// maxTokenIDLen bounds a jti in a revocation request.
const maxTokenIDLen = 256

type revokeBody struct {
	Tenant    string     `json:"tenant"`
	User      string     `json:"user"`
	JTI       string     `json:"jti"`
	ExpiresAt *time.Time `json:"expires_at"`
}

// RegisterAdmin adds the admin routes (admin API key) to mux.
func (a *API) RegisterAdmin(mux *http.ServeMux, rv Revoker) {
	mux.HandleFunc("POST /v1/admin/revocations", func(w http.ResponseWriter, r *http.Request) { a.revoke(w, r, rv) })
	mux.HandleFunc("DELETE /v1/admin/revocations/users/{tenant}/{user}", func(w http.ResponseWriter, r *http.Request) { a.lift(w, r, rv) })
}

// admin authenticates an admin API key.
func (a *API) admin(w http.ResponseWriter, r *http.Request) (auth.APIKey, bool) {
	key, ok := a.apiKey(w, r)
	if !ok {
		return key, false
	}
	if !key.Admin {
		a.cfg.Audit.Warn(audit.Forbidden, "non-admin key on admin API", "key_id", key.ID, "ip", a.adm.ClientIP(r), "path", r.URL.Path)
		a.keyErrs.Fail(w, r, session.CodeForbidden, "an admin API key is required", nil, "key_id", key.ID)
		return key, false
	}
	return key, true
}

func (a *API) revoke(w http.ResponseWriter, r *http.Request, rv Revoker) {
	key, ok := a.admin(w, r)
	if !ok {
		return
	}
	body, ok := a.readBody(w, r, 4<<10)
	if !ok {
		return
	}
	var b revokeBody
	if err := decodeStrict(body, &b); err != nil {
		a.keyErrs.Fail(w, r, session.CodeInvalidRequest, "invalid request", err)
		return
	}
	now := time.Now()
	rev := revocation.Revocation{At: now}
	switch {
	case b.JTI != "" && b.User == "" && b.Tenant == "":
		if len(b.JTI) > maxTokenIDLen || !validIdent(b.JTI) {
			a.keyErrs.Fail(w, r, session.CodeInvalidRequest, "malformed jti", nil)
			return
		}
		if b.ExpiresAt == nil || !b.ExpiresAt.After(now) {
			a.keyErrs.Fail(w, r, session.CodeInvalidRequest, "expires_at (the token's exp, in the future) is required with jti", nil)
			return
		}
		rev.TokenID, rev.Until = b.JTI, *b.ExpiresAt
	case b.JTI == "" && b.ExpiresAt == nil && validIdent(b.Tenant) && validIdent(b.User):
		rev.Tenant, rev.User = b.Tenant, b.User
	default:
		a.keyErrs.Fail(w, r, session.CodeInvalidRequest, "give either tenant and user, or jti and expires_at", nil)
		return
	}
	if err := rv.Revoke(r.Context(), rev); err != nil {
		w.Header().Set("Retry-After", "1")
		a.keyErrs.Fail(w, r, session.CodeUnavailable, "revocation not stored; retry", err)
		return
	}
	a.cfg.Audit.Warn(audit.Revoked, "revoked", "key_id", key.ID, "tenant", rev.Tenant, "user", rev.User, "token", rev.TokenID != "")
	session.WriteJSON(w, http.StatusCreated, map[string]any{"revoked_at": now.UTC()})
}

func (a *API) lift(w http.ResponseWriter, r *http.Request, rv Revoker) {
	key, ok := a.admin(w, r)
	if !ok {
		return
	}
	tenant, user := r.PathValue("tenant"), r.PathValue("user")
	if !validIdent(tenant) || !validIdent(user) {
		a.keyErrs.Fail(w, r, session.CodeInvalidRequest, "malformed tenant or user", nil)
		return
	}
	if err := rv.Lift(r.Context(), tenant, user); err != nil {
		w.Header().Set("Retry-After", "1")
		a.keyErrs.Fail(w, r, session.CodeUnavailable, "not stored; retry", err)
		return
	}
	a.cfg.Audit.Warn(audit.RevocationLifted, "revocation lifted", "key_id", key.ID, "tenant", tenant, "user", user)
	w.WriteHeader(http.StatusNoContent)
}
