package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/heraldhq/herald/internal/audit"
	"github.com/heraldhq/herald/internal/presence"
	"github.com/heraldhq/herald/internal/session"
)

// Presence answers who is online, cluster-wide.
type Presence interface {
	Lookup(ctx context.Context, tenant string, users []string) ([]presence.Status, error)
}

// MaxPresenceUsers bounds the users of one presence query.
const MaxPresenceUsers = 1000

// RegisterPresence serves GET /v1/presence (API key, like publishing).
func (a *API) RegisterPresence(mux *http.ServeMux, p Presence) {
	mux.HandleFunc("GET /v1/presence", func(w http.ResponseWriter, r *http.Request) { a.presence(w, r, p) })
}

// presenceQuery parses ?tenant=T&user=a&user=b; a tenant-scoped key may
// leave the tenant out.
func presenceQuery(q url.Values, keyTenant string) (string, []string, error) {
	for k := range q {
		if k != "tenant" && k != "user" {
			return "", nil, bad("unknown query parameter %q", k)
		}
	}
	if len(q["tenant"]) > 1 {
		return "", nil, bad("one tenant per query")
	}
	tenant := q.Get("tenant")
	if tenant == "" {
		tenant = keyTenant
	}
	if !validIdent(tenant) {
		return "", nil, bad("tenant missing or malformed")
	}
	users := q["user"]
	if len(users) == 0 || len(users) > MaxPresenceUsers {
		return "", nil, bad("give 1 to %d user parameters", MaxPresenceUsers)
	}
	for _, u := range users {
		if !validIdent(u) {
			return "", nil, bad("malformed user id")
		}
	}
	return tenant, users, nil
}

func (a *API) presence(w http.ResponseWriter, r *http.Request, p Presence) {
	key, ok := a.apiKey(w, r)
	if !ok {
		return
	}
	if !a.adm.AllowPublish(key.ID) { // the publish API's rate, per key
		w.Header().Set("Retry-After", "1")
		a.keyErrs.Fail(w, r, session.CodeRateLimited, "rate limit exceeded", nil, "key_id", key.ID)
		return
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		a.keyErrs.Fail(w, r, session.CodeInvalidRequest, "malformed query", err)
		return
	}
	tenant, users, err := presenceQuery(q, key.Tenant)
	if err != nil {
		msg := "invalid request"
		if len(q["user"]) > MaxPresenceUsers || len(q["user"]) == 0 {
			msg = fmt.Sprintf("give 1 to %d user parameters", MaxPresenceUsers)
		}
		a.keyErrs.Fail(w, r, session.CodeInvalidRequest, msg, err, "key_id", key.ID)
		return
	}
	if !key.Allows(tenant) {
		a.cfg.Audit.Warn(audit.Forbidden, "api key used outside its tenant", "key_id", key.ID, "ip", a.adm.ClientIP(r), "path", r.URL.Path)
		a.keyErrs.Fail(w, r, session.CodeForbidden, "this API key may not read that tenant", errForbidden, "key_id", key.ID)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.RequestTimeout)
	defer cancel()
	st, err := p.Lookup(ctx, tenant, users)
	if err != nil {
		w.Header().Set("Retry-After", "1")
		code := session.CodeUnavailable
		if errors.Is(err, context.Canceled) {
			code = session.CodeInternal
		}
		a.keyErrs.Fail(w, r, code, "presence is unavailable; retry", err, "key_id", key.ID)
		return
	}
	session.WriteJSON(w, http.StatusOK, struct {
		Tenant string            `json:"tenant"`
		Users  []presence.Status `json:"users"`
	}{tenant, st})
}
