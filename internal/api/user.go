package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/hub"
	"github.com/heraldhq/herald/internal/notification"
	"github.com/heraldhq/herald/internal/store"
)

type principalKey struct{}

// PrincipalFrom returns the authenticated user of a user API request.
func PrincipalFrom(ctx context.Context) (auth.Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(auth.Principal)
	return p, ok
}

// user authenticates a user request (JWT Bearer) and applies CORS for
// allowlisted origins.
func (a *API) user(next func(http.ResponseWriter, *http.Request, notification.Recipient)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.cors(w, r) {
			return
		}
		p, err := a.verifier.Verify(bearerToken(r))
		if err != nil {
			a.log.Warn("token rejected", "event", "token_invalid", "reason", auth.ReasonOf(err), "ip", clientIP(r), "transport", "rest")
			w.Header().Set("WWW-Authenticate", `Bearer realm="herald"`)
			a.fail(w, r, http.StatusUnauthorized, "unauthorized", "invalid or missing token", nil)
			return
		}
		if a.cfg.UserRate != nil {
			if ok, strikes := a.cfg.UserRate.Allow(p.Tenant + "\x00" + p.User); !ok {
				if strikes == 1 || strikes%10 == 0 {
					a.log.Warn("rate limited", "event", "rate_limited", "scope", "user_api", "tenant", p.Tenant, "user", p.User, "strikes", strikes)
				}
				w.Header().Set("Retry-After", "1")
				a.fail(w, r, http.StatusTooManyRequests, "rate_limited", "rate limit exceeded", nil)
				return
			}
		}
		ctx, cancel := context.WithTimeout(context.WithValue(r.Context(), principalKey{}, p), a.cfg.RequestTimeout)
		defer cancel()
		next(w, r.WithContext(ctx), notification.Recipient{Tenant: p.Tenant, User: p.User, Role: p.Role})
	})
}

// cors sets CORS headers for an allowlisted Origin and rejects others (403).
// Requests without Origin are not cross-origin browser requests.
func (a *API) cors(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	if !a.cfg.AllowOrigin(origin) {
		a.log.Warn("origin rejected", "event", "origin_rejected", "ip", clientIP(r), "origin", origin, "transport", "rest")
		a.fail(w, r, http.StatusForbidden, "forbidden", "origin not allowed", nil)
		return false
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
	h.Set("Access-Control-Allow-Credentials", "true")
	return true
}

func (a *API) preflight(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin == "" || !a.cfg.AllowOrigin(origin) {
		if origin != "" {
			a.log.Warn("origin rejected", "event", "origin_rejected", "ip", clientIP(r), "origin", origin, "transport", "rest")
		}
		w.WriteHeader(http.StatusForbidden)
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
	h.Set("Access-Control-Allow-Credentials", "true")
	h.Set("Access-Control-Allow-Methods", "GET, POST, DELETE")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) list(w http.ResponseWriter, r *http.Request, rc notification.Recipient) {
	q := r.URL.Query()
	lq := store.ListQuery{Before: q.Get("before")}
	if lq.Before != "" && !notification.ValidID(lq.Before) {
		a.fail(w, r, http.StatusBadRequest, "invalid_request", "invalid before cursor", nil)
		return
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			a.fail(w, r, http.StatusBadRequest, "invalid_request", "limit must be a positive integer", err)
			return
		}
		lq.Limit = min(n, store.MaxListLimit)
	}
	switch q.Get("unread") {
	case "", "false", "0":
	case "true", "1":
		lq.UnreadOnly = true
	default:
		a.fail(w, r, http.StatusBadRequest, "invalid_request", "unread must be true or false", nil)
		return
	}
	page, err := a.inbox.List(r.Context(), rc, lq)
	if err != nil {
		a.storeFail(w, r, err, rc)
		return
	}
	// Encode with the same code as the live transports.
	b := make([]byte, 0, 256*len(page.Items)+64)
	b = append(b, `{"notifications":[`...)
	for i := range page.Items {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, hub.EncodeNotification(&page.Items[i].Notification, page.Items[i].Read)...)
		b = append(b, '}')
	}
	b = append(b, `],"next":`...)
	if page.Next == "" {
		b = append(b, "null"...)
	} else {
		b = strconv.AppendQuote(b, page.Next)
	}
	b = append(b, "}\n"...)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b)
}

func (a *API) unreadCount(w http.ResponseWriter, r *http.Request, rc notification.Recipient) {
	n, err := a.inbox.UnreadCount(r.Context(), rc)
	if err != nil {
		a.storeFail(w, r, err, rc)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int64{"count": n})
}

func (a *API) read(w http.ResponseWriter, r *http.Request, rc notification.Recipient) {
	id := r.PathValue("id")
	if !notification.ValidID(id) {
		a.fail(w, r, http.StatusNotFound, "not_found", "not found", nil)
		return
	}
	ch, err := a.inbox.MarkRead(r.Context(), rc, []string{id})
	a.changed(w, r, rc, ch, err)
}

func (a *API) readAll(w http.ResponseWriter, r *http.Request, rc notification.Recipient) {
	ch, err := a.inbox.MarkAllRead(r.Context(), rc)
	a.changed(w, r, rc, ch, err)
}

func (a *API) delete(w http.ResponseWriter, r *http.Request, rc notification.Recipient) {
	id := r.PathValue("id")
	if !notification.ValidID(id) {
		a.fail(w, r, http.StatusNotFound, "not_found", "not found", nil)
		return
	}
	ch, err := a.inbox.Delete(r.Context(), rc, id)
	a.changed(w, r, rc, ch, err)
}

func (a *API) changed(w http.ResponseWriter, r *http.Request, rc notification.Recipient, ch store.Change, err error) {
	if err != nil {
		a.storeFail(w, r, err, rc)
		return
	}
	ids := ch.IDs
	if ids == nil {
		ids = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"changed": ids, "unread": ch.Unread})
}

func (a *API) storeFail(w http.ResponseWriter, r *http.Request, err error, rc notification.Recipient) {
	if errors.Is(err, store.ErrNotFound) {
		a.fail(w, r, http.StatusNotFound, "not_found", "not found", nil, "tenant", rc.Tenant, "user", rc.User)
		return
	}
	if errors.Is(err, store.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		w.Header().Set("Retry-After", "1")
		a.fail(w, r, http.StatusServiceUnavailable, "unavailable", "temporarily unavailable", err, "tenant", rc.Tenant, "user", rc.User)
		return
	}
	a.fail(w, r, http.StatusInternalServerError, "internal", "unable to process request", err, "tenant", rc.Tenant, "user", rc.User)
}
