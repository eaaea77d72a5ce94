package sse

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/heraldhq/herald/internal/admission"
	"github.com/heraldhq/herald/internal/audit"
	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/hub"
	"github.com/heraldhq/herald/internal/notification"
	"github.com/heraldhq/herald/internal/origin"
	"github.com/heraldhq/herald/internal/session"
	"github.com/heraldhq/herald/internal/topic"
)

// streamRequest is a validated stream request.
type streamRequest struct {
	p      auth.Principal
	since  *notification.Position
	via    string // "header" or "ticket"
	ip     string
	origin string
	topics []string // ?topics=a,b: checked and authorized
}

// serveStream handles GET /v1/me/stream. Admission counts a stream the way
// it counts a WebSocket with a header token: every request is an attempt;
// one refused before admission (method, origin, a token in the URL, a bad
// position, bad credentials, recorded as token_invalid or ticket_invalid)
// counts as rejected; the credentials are checked first, so Admit sees an
// authenticated request (no handshake rate, no unauthenticated cap) and
// counts the refusal of a node-wide or per-IP cap. Then the per-user slot
// is reserved (Session.Reserve), still before the response head, so that
// every refusal is an HTTP error and never a stream. An admitted stream is
// opened by Attach, or fails (the hub is closed).
func (s *Server) serveStream(w http.ResponseWriter, r *http.Request) {
	s.adm.Attempt(admission.SSE)
	sr, ok := s.checkStream(w, r)
	if !ok {
		s.adm.Rejected(admission.SSE)
		return
	}
	if s.closed.Load() {
		// On a node, admission's Draining refuses (and counts) first; this
		// catches a transport shut down on its own.
		s.adm.Rejected(admission.SSE)
		s.errs.Refuse(w, r, admission.RefusedDraining)
		return
	}
	slot, refusal := s.adm.Admit(admission.Request{Transport: admission.SSE, IP: sr.ip, Authenticated: true})
	if refusal != admission.RefusedNone {
		s.errs.Refuse(w, r, refusal)
		return
	}
	hijack := s.canHijack(w, r)
	var (
		st *stream
		p  *pipe
		t  session.Transport
	)
	if hijack {
		st = &stream{srv: s}
		t = st
	} else {
		p = &pipe{limit: s.cfg.WriteBufferBytes, wake: make(chan struct{}, 1)}
		t = p
	}
	sess := s.core.NewSession(t, slot)
	if st != nil {
		st.sess = sess
	}
	if err := sess.Reserve(sr.p); err != nil {
		slot.Release()
		s.errs.Refuse(w, r, admission.RefusedPerUser)
		return
	}
	s.active.Add(1)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Accel-Buffering", "no")
	engine := "handler" // a goroutine and net/http's buffers per stream
	if hijack {
		engine = "poller"
	}
	s.audit.Info(audit.Connect, "connect", "conn", sess.ID(), "ip", sr.ip, "origin", sr.origin,
		"user_agent", r.UserAgent(), "transport", "sse", "auth", sr.via, "tenant", sr.p.Tenant, "user", sr.p.User,
		"engine", engine)
	if hijack {
		s.serveHijacked(w, st, sr)
		return
	}
	s.serveInHandler(w, r, p, sess, sr)
}

// finish ends a stream's session and gives back its admission slot. It may
// wait on Redis: never call it in a poller callback.
func (s *Server) finish(sess *session.Session, reason hub.CloseReason) {
	sess.End(reason)
	sess.Slot().Release()
	s.active.Add(-1)
}

// attached reports whether Attach succeeded; otherwise the stream gets the
// close its failure calls for (the hub is closed: the node is draining),
// through close, unless the stream is gone already.
func attached(err error, close func(hub.CloseReason)) bool {
	switch {
	case err == nil:
		return true
	case !errors.Is(err, session.ErrGone):
		close(hub.ReasonShutdown)
	}
	return false
}

// checkStream checks method, origin, resume position and credentials, and
// answers the request itself when it is refused.
func (s *Server) checkStream(w http.ResponseWriter, r *http.Request) (streamRequest, bool) {
	sr := streamRequest{ip: s.adm.ClientIP(r), origin: r.Header.Get("Origin")}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		s.errs.Fail(w, r, session.CodeMethodNotAllowed, "", nil)
		return sr, false
	}
	if !s.cors(w, r, sr.ip) {
		return sr, false
	}
	q := r.URL.Query()
	if q.Has("token") || q.Has("access_token") || q.Has("jwt") {
		// A JWT in a URL ends up in proxy and browser logs: refuse it (the
		// value is not logged here either).
		s.errs.Fail(w, r, session.CodeInvalidRequest,
			"tokens are not accepted in URLs; use a stream ticket or the Authorization header", nil)
		return sr, false
	}
	// EventSource resends the original URL on reconnect, so Last-Event-ID
	// (the newer position) wins over ?since=.
	if pos := r.Header.Get("Last-Event-ID"); pos != "" || q.Get("since") != "" {
		if pos == "" {
			pos = q.Get("since")
		}
		p, err := notification.ParsePosition(strings.TrimSpace(pos))
		if err != nil {
			s.errs.Fail(w, r, session.CodeInvalidRequest, "invalid Last-Event-ID or since position", nil)
			return sr, false
		}
		sr.since = &p
	}
	tok, hasHeader := auth.BearerToken(r)
	ticket, hasTicket := q.Get("ticket"), q.Has("ticket")
	switch {
	case hasHeader && hasTicket:
		s.errs.Fail(w, r, session.CodeInvalidRequest, "use either the Authorization header or a ticket", nil)
		return sr, false
	case hasTicket:
		p, ok := s.redeem(w, r, ticket, sr.ip)
		if !ok {
			return sr, false
		}
		sr.p, sr.via = p, "ticket"
	default: // no credentials at all is a missing token (token_invalid, reason missing)
		p, err := s.core.Verify(tok, admission.SSE, sr.ip)
		if err != nil {
			s.errs.Unauthorized(w, r)
			return sr, false
		}
		sr.p, sr.via = p, "header"
	}
	return sr, s.checkTopics(w, r, &sr)
}

// checkTopics reads ?topics=a,b and authorizes it like a subscribe
// (session.Core.CheckTopics), answering the request itself on refusal:
// the stream never starts with fewer topics than it asked for.
func (s *Server) checkTopics(w http.ResponseWriter, r *http.Request, sr *streamRequest) bool {
	q := r.URL.Query()
	if !q.Has("topics") {
		return true
	}
	topics, err := session.ParseTopics(topic.Split(q.Get("topics")))
	if err != nil {
		s.errs.Fail(w, r, session.CodeInvalidRequest, "invalid topics", err)
		return false
	}
	if e := s.core.CheckTopics(r.Context(), sr.p, topics, "ip", sr.ip, "transport", "sse"); e != nil {
		s.errs.Fail(w, r, e.Code, e.Message, nil)
		return false
	}
	sr.topics = topics
	return true
}

// join subscribes an attached stream to its topics.
func (s *Server) join(sess *session.Session, topics []string) {
	if len(topics) == 0 {
		return
	}
	if err := sess.Join(topics); err != nil {
		s.log.Debug("stream topics not joined", "conn", sess.ID(), "err", err)
	}
}

// redeem spends a stream ticket and re-checks its identity against the
// revocation list; it answers the request itself on failure.
func (s *Server) redeem(w http.ResponseWriter, r *http.Request, ticket, ip string) (auth.Principal, bool) {
	p, err := s.tickets.redeem(r.Context(), ticket)
	if errors.Is(err, ErrTicketStoreDown) {
		w.Header().Set("Retry-After", "1")
		s.errs.Fail(w, r, session.CodeUnavailable, "", err)
		return p, false
	}
	if err != nil {
		s.audit.Warn(audit.TicketInvalid, "ticket rejected", "reason", ticketReason(err), "ip", ip, "transport", "sse")
		s.errs.Unauthorized(w, r)
		return p, false
	}
	if s.cfg.Revoked != nil {
		if err := s.cfg.Revoked(p); err != nil { // revoked since the ticket was issued
			s.audit.Warn(audit.TokenInvalid, "token rejected", "reason", auth.ReasonOf(err), "ip", ip, "transport", "sse")
			s.errs.Unauthorized(w, r)
			return p, false
		}
	}
	return p, true
}

// ticketReason is the log class of a ticket error (never the ticket).
func ticketReason(err error) string {
	switch {
	case errors.Is(err, ErrTicketMalformed):
		return "malformed"
	case errors.Is(err, ErrTicketExpired):
		return "expired"
	default:
		return "unknown" // forged, replayed, or expired and swept
	}
}

// issueTicket handles POST /v1/me/stream-tickets.
func (s *Server) issueTicket(w http.ResponseWriter, r *http.Request) {
	ip := s.adm.ClientIP(r)
	if !s.cors(w, r, ip) {
		return
	}
	tok, _ := auth.BearerToken(r)
	p, err := s.core.Verify(tok, admission.SSE, ip)
	if err != nil {
		s.errs.Unauthorized(w, r)
		return
	}
	tk, ttl, err := s.tickets.issue(r.Context(), p)
	switch {
	case errors.Is(err, ErrTicketExpired): // the token is past its exp (within the leeway)
		s.audit.Warn(audit.TokenInvalid, "token rejected", "reason", auth.ReasonExpired, "ip", ip, "transport", "sse")
		s.errs.Unauthorized(w, r)
		return
	case errors.Is(err, ErrTooManyUserTickets):
		s.audit.Warn(audit.RateLimited, "too many tickets for user", "scope", "tickets", "tenant", p.Tenant,
			"user", p.User, "ip", ip, "transport", "sse")
		w.Header().Set("Retry-After", strconv.Itoa(int(s.cfg.TicketTTL/time.Second)+1))
		s.errs.Fail(w, r, session.CodeRateLimited, "too many outstanding stream tickets", nil)
		return
	case errors.Is(err, ErrTooManyTickets):
		w.Header().Set("Retry-After", "1")
		s.errs.Fail(w, r, session.CodeUnavailable, "", err)
		return
	case err != nil:
		s.errs.Fail(w, r, session.CodeInternal, "unable to issue a ticket", err)
		return
	}
	s.audit.Debug(audit.TicketIssued, "stream ticket issued", "tenant", p.Tenant, "user", p.User, "ip", ip,
		"transport", "sse")
	secs := int64((ttl + time.Second - 1) / time.Second)
	session.WriteJSON(w, http.StatusOK, struct {
		Ticket    string `json:"ticket"`
		ExpiresIn int64  `json:"expires_in"`
	}{tk, secs})
}

// cors applies CORS (origin.CORS); a disallowed Origin is recorded and
// answered 403 before anything else happens.
func (s *Server) cors(w http.ResponseWriter, r *http.Request, ip string) bool {
	if origin.CORS(w, r, s.cfg.AllowOrigin) {
		return true
	}
	s.originRejected(r, ip)
	s.errs.Fail(w, r, session.CodeForbidden, "origin not allowed", nil)
	return false
}

// preflight answers CORS preflights of the stream and ticket endpoints.
func (s *Server) preflight(w http.ResponseWriter, r *http.Request) {
	if !origin.Preflight(w, r, s.cfg.AllowOrigin, "GET, POST", "Authorization, Content-Type, Last-Event-ID") {
		s.originRejected(r, s.adm.ClientIP(r))
	}
}

func (s *Server) originRejected(r *http.Request, ip string) {
	s.audit.Warn(audit.OriginRejected, "origin rejected", "ip", ip, "origin", r.Header.Get("Origin"), "transport", "sse")
}
