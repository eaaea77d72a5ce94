package api

import (
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/heraldhq/herald/internal/audit"
	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/notification"
	"github.com/heraldhq/herald/internal/session"
)

// The inbox-model endpoints (issue 15): seen, archive, preferences. Each
// parses its request as the live transports do (session.Parse) and runs it
// through the session core, so REST, WebSocket and Socket.IO share one
// implementation and one set of rules.

// maxInboxBody bounds the JSON body of a seen or preferences request.
const maxInboxBody = 8 << 10

// seen handles POST /v1/me/notifications/seen: an empty body (or {})
// marks everything seen, {"position":"<p>"} up to p.
func (a *API) seen(w http.ResponseWriter, r *http.Request, p auth.Principal, ip string) {
	var args session.Args
	if !a.userBody(w, r, &args, "position") {
		return
	}
	a.do(w, r, p, ip, session.NameSeen, &args)
}

// archive handles POST /v1/me/notifications/{id}/archive.
func (a *API) archive(w http.ResponseWriter, r *http.Request, p auth.Principal, ip string) {
	a.byID(w, r, p, ip, session.NameArchive)
}

// unarchive handles POST /v1/me/notifications/{id}/unarchive.
func (a *API) unarchive(w http.ResponseWriter, r *http.Request, p auth.Principal, ip string) {
	a.byID(w, r, p, ip, session.NameUnarchive)
}

// archiveAll handles POST /v1/me/notifications/archive-all.
func (a *API) archiveAll(w http.ResponseWriter, r *http.Request, p auth.Principal, ip string) {
	all := true
	a.do(w, r, p, ip, session.NameArchive, &session.Args{All: &all})
}

// unarchiveAll handles POST /v1/me/notifications/unarchive-all.
func (a *API) unarchiveAll(w http.ResponseWriter, r *http.Request, p auth.Principal, ip string) {
	all := true
	a.do(w, r, p, ip, session.NameUnarchive, &session.Args{All: &all})
}

// preferences handles GET /v1/me/preferences.
func (a *API) preferences(w http.ResponseWriter, r *http.Request, p auth.Principal, ip string) {
	a.do(w, r, p, ip, session.NamePreferences, nil)
}

// setPreferences handles PUT /v1/me/preferences.
func (a *API) setPreferences(w http.ResponseWriter, r *http.Request, p auth.Principal, ip string) {
	var args session.Args
	if !a.userBody(w, r, &args, "muted_categories", "muted_types") {
		return
	}
	a.do(w, r, p, ip, session.NameSetPreferences, &args)
}

// userBody reads an optional JSON object of the user API into args:
// at most maxInboxBody bytes, no duplicate or unknown names (only fields).
func (a *API) userBody(w http.ResponseWriter, r *http.Request, args *session.Args, fields ...string) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxInboxBody))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		a.errs.Fail(w, r, session.CodeTooLarge, "request body too large", err)
		return false
	case err != nil:
		a.errs.Fail(w, r, session.CodeInvalidRequest, "unable to read request body", err)
		return false
	case len(body) == 0:
		return true
	}
	if err := decodeArgs(body, args, fields); err != nil {
		a.errs.Fail(w, r, session.CodeInvalidRequest, "invalid request: "+err.Error(), err)
		return false
	}
	return true
}

// decodeArgs decodes body, a JSON object with only the named fields, into
// args.
func decodeArgs(body []byte, args *session.Args, fields []string) error {
	var names map[string]any
	if err := decodeStrict(body, &names); err != nil {
		return errors.New("the body must be one JSON object")
	}
	for k := range names {
		ok := false
		for _, f := range fields {
			ok = ok || k == f
		}
		if !ok {
			return errors.New("unknown field " + k)
		}
	}
	if err := decodeFields(body, args); err != nil {
		return errors.New("malformed field")
	}
	return nil
}

// RegisterPreferencesAdmin adds the admin routes of user preferences:
// GET and PUT /v1/admin/tenants/{tenant}/users/{user}/preferences. An
// admin key may act on any tenant; a tenant-scoped key on its own tenant.
func (a *API) RegisterPreferencesAdmin(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/admin/tenants/{tenant}/users/{user}/preferences", func(w http.ResponseWriter, r *http.Request) {
		a.adminPreferences(w, r, session.NamePreferences)
	})
	mux.HandleFunc("PUT /v1/admin/tenants/{tenant}/users/{user}/preferences", func(w http.ResponseWriter, r *http.Request) {
		a.adminPreferences(w, r, session.NameSetPreferences)
	})
}

func (a *API) adminPreferences(w http.ResponseWriter, r *http.Request, n session.Name) {
	key, ok := a.apiKey(w, r)
	if !ok {
		return
	}
	tenant, user := r.PathValue("tenant"), r.PathValue("user")
	if !validIdent(tenant) || !validIdent(user) {
		a.keyErrs.Fail(w, r, session.CodeInvalidRequest, "malformed tenant or user", nil)
		return
	}
	if !key.Allows(tenant) {
		a.cfg.Audit.Warn(audit.Forbidden, "api key used outside its tenant", "key_id", key.ID, "ip", a.adm.ClientIP(r), "path", r.URL.Path)
		a.keyErrs.Fail(w, r, session.CodeForbidden, "this API key may not act on that tenant", nil, "key_id", key.ID)
		return
	}
	var args session.Args
	if n == session.NameSetPreferences {
		body, ok := a.readBody(w, r, maxInboxBody)
		if !ok {
			return
		}
		if err := decodeArgs(body, &args, []string{"muted_categories", "muted_types"}); err != nil {
			a.keyErrs.Fail(w, r, session.CodeInvalidRequest, "invalid request: "+err.Error(), err)
			return
		}
	}
	req, err := session.Parse(n.String(), &args, session.Ref{Ack: session.NoAck})
	if err != nil {
		a.keyErrs.Fail(w, r, session.CodeInvalidRequest, err.Error(), err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.RequestTimeout)
	defer cancel()
	rcpt := notification.Recipient{Tenant: tenant, User: user}
	rep := a.core.Do(ctx, rcpt, req, "key_id", key.ID, "transport", "admin")
	if rep.Err != nil {
		if rep.Err.Code == session.CodeUnavailable {
			w.Header().Set("Retry-After", "1")
		}
		a.keyErrs.FailWith(w, r, rep.Err, nil, "tenant", tenant, "user", user)
		return
	}
	if n == session.NameSetPreferences {
		a.cfg.Audit.Info(audit.PreferencesSet, "preferences set", "key_id", key.ID, "tenant", tenant, "user", user)
	}
	writeRaw(w, append(rep.AppendObject(make([]byte, 0, 128)), '\n'))
}
