package api

import (
	"context"
	"net/http"
	"strconv"

	"github.com/heraldhq/herald/internal/admission"
	"github.com/heraldhq/herald/internal/audit"
	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/notification"
	"github.com/heraldhq/herald/internal/origin"
	"github.com/heraldhq/herald/internal/session"
)

// userHandler answers one user API call for the authenticated p; ip is the
// client address.
type userHandler func(w http.ResponseWriter, r *http.Request, p auth.Principal, ip string)

// user checks a user API call before h runs it: CORS for allowlisted
// origins, the JWT (Bearer), then the per-user request rate shared with the
// live transports. The user API holds no connection, so admission applies
// its rate only, never a connection slot.
func (a *API) user(h userHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ip := a.adm.ClientIP(r)
		if !origin.CORS(w, r, a.cfg.AllowOrigin) {
			a.originRejected(r, ip)
			a.errs.Fail(w, r, session.CodeForbidden, "origin not allowed", nil)
			return
		}
		tok, _ := auth.BearerToken(r)
		p, err := a.core.Verify(tok, admission.REST, ip)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="herald"`)
			a.errs.Fail(w, r, session.CodeUnauthorized, "invalid or missing token", nil)
			return
		}
		if ok, _ := a.adm.AllowRequest(admission.REST, p.Tenant, p.User); !ok {
			a.errs.Refuse(w, r, admission.RefusedRequestRate)
			return
		}
		h(w, r, p, ip)
	})
}

// preflight answers CORS preflights of every /v1/me/ path.
func (a *API) preflight(w http.ResponseWriter, r *http.Request) {
	if !origin.Preflight(w, r, a.cfg.AllowOrigin, "GET, POST, PUT, DELETE", "Authorization, Content-Type") {
		a.originRejected(r, a.adm.ClientIP(r))
	}
}

func (a *API) originRejected(r *http.Request, ip string) {
	a.cfg.Audit.Warn(audit.OriginRejected, "origin rejected", "ip", ip, "origin", r.Header.Get("Origin"), "transport", "rest")
}

// list handles GET /v1/me/notifications. The query's HTTP rules come
// first (limit is a positive integer, unread is true/false/1/0, with their
// own messages); then the request is parsed like a live transport's.
func (a *API) list(w http.ResponseWriter, r *http.Request, p auth.Principal, ip string) {
	q := r.URL.Query()
	var args session.Args
	if b := q.Get("before"); b != "" {
		if !notification.ValidID(b) {
			a.errs.Fail(w, r, session.CodeInvalidRequest, "invalid before cursor", nil)
			return
		}
		args.Before = &b
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			a.errs.Fail(w, r, session.CodeInvalidRequest, "limit must be a positive integer", err)
			return
		}
		args.Limit = &n
	}
	unread := false
	switch q.Get("unread") {
	case "", "false", "0":
	case "true", "1":
		unread = true
	default:
		a.errs.Fail(w, r, session.CodeInvalidRequest, "unread must be true or false", nil)
		return
	}
	args.Unread = &unread
	if q.Has("category") {
		c := q.Get("category")
		args.Category = &c
	}
	switch q.Get("archived") {
	case "", "false", "0":
	case "true", "1":
		archived := true
		args.Archived = &archived
	default:
		a.errs.Fail(w, r, session.CodeInvalidRequest, "archived must be true or false", nil)
		return
	}
	a.do(w, r, p, ip, session.NameList, &args)
}

// unreadCount handles GET /v1/me/unread-count.
func (a *API) unreadCount(w http.ResponseWriter, r *http.Request, p auth.Principal, ip string) {
	a.do(w, r, p, ip, session.NameUnreadCount, nil)
}

// read handles POST /v1/me/notifications/{id}/read.
func (a *API) read(w http.ResponseWriter, r *http.Request, p auth.Principal, ip string) {
	a.byID(w, r, p, ip, session.NameMarkRead)
}

// readAll handles POST /v1/me/notifications/read-all.
func (a *API) readAll(w http.ResponseWriter, r *http.Request, p auth.Principal, ip string) {
	a.do(w, r, p, ip, session.NameMarkAllRead, nil)
}

// delete handles DELETE /v1/me/notifications/{id}.
func (a *API) delete(w http.ResponseWriter, r *http.Request, p auth.Principal, ip string) {
	a.byID(w, r, p, ip, session.NameDelete)
}

// byID runs a request on the notification named in the path. A malformed
// id names no notification: 404, as an unknown one.
func (a *API) byID(w http.ResponseWriter, r *http.Request, p auth.Principal, ip string, n session.Name) {
	id := r.PathValue("id")
	if !notification.ValidID(id) {
		a.errs.Fail(w, r, session.CodeNotFound, "", nil)
		return
	}
	a.do(w, r, p, ip, n, &session.Args{ID: &id})
}

// do parses the request name with args as every transport does, runs it
// through the session core and writes its reply: the reply's fields as one
// object (a page, a count), or for a change {"changed":[…],"unread":N}.
func (a *API) do(w http.ResponseWriter, r *http.Request, p auth.Principal, ip string, n session.Name, args *session.Args) {
	req, err := session.Parse(n.String(), args, session.Ref{Ack: session.NoAck})
	if err != nil {
		a.errs.Fail(w, r, session.CodeInvalidRequest, "", err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.RequestTimeout)
	defer cancel()
	rep := a.core.Do(ctx, session.Recipient(p), req, "ip", ip, "transport", admission.REST.String())
	if rep.Err != nil {
		if rep.Err.Code == session.CodeUnavailable {
			w.Header().Set("Retry-After", "1")
		}
		a.errs.FailWith(w, r, rep.Err, nil, "tenant", p.Tenant, "user", p.User)
		return
	}
	if rep.HasResult() {
		size := 64
		if rep.Page != nil {
			size += 256 * len(rep.Page.Items)
		}
		writeRaw(w, append(rep.AppendObject(make([]byte, 0, size)), '\n'))
		return
	}
	ids := rep.Change.IDs
	if ids == nil {
		ids = []string{}
	}
	by := rep.Change.Counts.ByCategory
	if by == nil {
		by = map[string]int64{}
	}
	session.WriteJSON(w, http.StatusOK, struct {
		Changed    []string         `json:"changed"`
		Unread     int64            `json:"unread"`
		Unseen     int64            `json:"unseen"`
		ByCategory map[string]int64 `json:"by_category"`
	}{ids, rep.Change.Unread, rep.Change.Counts.Unseen, by})
}

// writeRaw writes b, a JSON body, with session.WriteJSON's headers.
func writeRaw(w http.ResponseWriter, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}
