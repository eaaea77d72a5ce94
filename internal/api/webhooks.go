package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/heraldhq/herald/internal/audit"
	"github.com/heraldhq/herald/internal/session"
	"github.com/heraldhq/herald/internal/store"
)

// WebhookEndpoints manages tenants' own webhook endpoints. Put validates
// the URL (scheme, link-local and metadata addresses) and the secret; its
// validation errors wrap ErrInvalidEndpoint.
type WebhookEndpoints interface {
	PutWebhookEndpoint(ctx context.Context, e store.WebhookEndpoint) error
	WebhookEndpoints(ctx context.Context) ([]store.WebhookEndpoint, error)
	DeleteWebhookEndpoint(ctx context.Context, tenant string) error
}

// ErrInvalidEndpoint marks an endpoint refused for its URL or secret.
var ErrInvalidEndpoint = errors.New("api: invalid webhook endpoint")

type endpointBody struct {
	URL    string `json:"url"`
	Secret string `json:"secret"`
}

type endpointView struct {
	Tenant    string    `json:"tenant"`
	URL       string    `json:"url"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
	// Secret is only in the answer to a PUT that generated it.
	Secret string `json:"secret,omitempty"`
}

// RegisterWebhookAdmin adds PUT, GET and DELETE
// /v1/admin/tenants/{tenant}/webhook (admin API key). newSecret makes a
// secret when a PUT gives none.
func (a *API) RegisterWebhookAdmin(mux *http.ServeMux, eps WebhookEndpoints, newSecret func() string) {
	const path = "/v1/admin/tenants/{tenant}/webhook"
	mux.HandleFunc("PUT "+path, func(w http.ResponseWriter, r *http.Request) { a.putEndpoint(w, r, eps, newSecret) })
	mux.HandleFunc("GET "+path, func(w http.ResponseWriter, r *http.Request) { a.getEndpoint(w, r, eps) })
	mux.HandleFunc("DELETE "+path, func(w http.ResponseWriter, r *http.Request) { a.deleteEndpoint(w, r, eps) })
}

// adminTenant authenticates an admin key and reads the path's tenant.
func (a *API) adminTenant(w http.ResponseWriter, r *http.Request) (string, string, bool) {
	key, ok := a.admin(w, r)
	if !ok {
		return "", "", false
	}
	tenant := r.PathValue("tenant")
	if !validIdent(tenant) {
		a.keyErrs.Fail(w, r, session.CodeInvalidRequest, "malformed tenant", nil)
		return "", "", false
	}
	return key.ID, tenant, true
}

func (a *API) putEndpoint(w http.ResponseWriter, r *http.Request, eps WebhookEndpoints, newSecret func() string) {
	keyID, tenant, ok := a.adminTenant(w, r)
	if !ok {
		return
	}
	body, ok := a.readBody(w, r, 8<<10)
	if !ok {
		return
	}
	var b endpointBody
	if err := decodeStrict(body, &b); err != nil {
		a.keyErrs.Fail(w, r, session.CodeInvalidRequest, "invalid request", err)
		return
	}
	view := endpointView{Tenant: tenant, URL: b.URL}
	if b.Secret == "" {
		b.Secret = newSecret()
		view.Secret = b.Secret
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.RequestTimeout)
	defer cancel()
	err := eps.PutWebhookEndpoint(ctx, store.WebhookEndpoint{Tenant: tenant, URL: b.URL, Secret: b.Secret})
	switch {
	case errors.Is(err, ErrInvalidEndpoint):
		a.cfg.Audit.Warn(audit.WebhookURLRefused, "webhook endpoint refused", "key_id", keyID, "tenant", tenant, "err", err)
		a.keyErrs.Fail(w, r, session.CodeInvalidRequest, err.Error(), err, "key_id", keyID)
		return
	case err != nil:
		a.retryLater(w, r, "not stored; retry", err, keyID)
		return
	}
	a.cfg.Audit.Info(audit.WebhookEndpointSet, "webhook endpoint set", "key_id", keyID, "tenant", tenant)
	session.WriteJSON(w, http.StatusOK, view)
}

func (a *API) getEndpoint(w http.ResponseWriter, r *http.Request, eps WebhookEndpoints) {
	keyID, tenant, ok := a.adminTenant(w, r)
	if !ok {
		return
	}
	list, err := eps.WebhookEndpoints(r.Context())
	if err != nil {
		a.retryLater(w, r, "not read; retry", err, keyID)
		return
	}
	for _, e := range list {
		if e.Tenant == tenant {
			session.WriteJSON(w, http.StatusOK, endpointView{Tenant: tenant, URL: e.URL, UpdatedAt: e.UpdatedAt})
			return
		}
	}
	a.keyErrs.Fail(w, r, session.CodeNotFound, "this tenant has no webhook endpoint of its own", nil)
}

func (a *API) deleteEndpoint(w http.ResponseWriter, r *http.Request, eps WebhookEndpoints) {
	keyID, tenant, ok := a.adminTenant(w, r)
	if !ok {
		return
	}
	err := eps.DeleteWebhookEndpoint(r.Context(), tenant)
	switch {
	case errors.Is(err, store.ErrNotFound):
		a.keyErrs.Fail(w, r, session.CodeNotFound, "this tenant has no webhook endpoint of its own", nil)
		return
	case err != nil:
		a.retryLater(w, r, "not deleted; retry", err, keyID)
		return
	}
	a.cfg.Audit.Info(audit.WebhookEndpointGone, "webhook endpoint deleted", "key_id", keyID, "tenant", tenant)
	w.WriteHeader(http.StatusNoContent)
}

// retryLater answers 503 with Retry-After: the store did not answer.
func (a *API) retryLater(w http.ResponseWriter, r *http.Request, msg string, err error, keyID string) {
	w.Header().Set("Retry-After", "1")
	a.keyErrs.Fail(w, r, session.CodeUnavailable, msg, err, "key_id", keyID)
}
