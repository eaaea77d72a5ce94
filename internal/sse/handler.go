package sse

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/hub"
	"github.com/heraldhq/herald/internal/notification"
)

// streamRequest is a validated stream request.
type streamRequest struct {
	p      auth.Principal
	since  *notification.Position
	via    string // "header" or "ticket"
	ip     string
	origin string
}

// serveStream handles GET /v1/me/stream.
func (s *Server) serveStream(w http.ResponseWriter, r *http.Request) {
	sr, ok := s.admitStream(w, r)
	if !ok {
		return
	}
	userKey := sr.p.Tenant + "\x00" + sr.p.User
	if lim := s.cfg.ConnsPerUser; lim != nil {
		if !lim.Acquire(userKey) {
			s.log.Warn("too many streams for user", "event", "limit_exceeded", "tenant", sr.p.Tenant, "user", sr.p.User, "ip", sr.ip, "transport", "sse")
			w.Header().Set("Retry-After", "5")
			s.fail(w, r, http.StatusTooManyRequests, "rate_limited", "too many streams for this user", nil)
			return
		}
	}
	if n := s.active.Add(1); n > int64(s.cfg.MaxStreams) || s.closed.Load() {
		s.active.Add(-1)
		s.release(userKey)
		if s.closed.Load() {
			w.Header().Set("Retry-After", "1")
			s.fail(w, r, http.StatusServiceUnavailable, "unavailable", "server shutting down", nil)
			return
		}
		s.log.Warn("stream limit reached", "event", "limit_exceeded", "limit", s.cfg.MaxStreams, "ip", sr.ip, "transport", "sse")
		w.Header().Set("Retry-After", "5")
		s.fail(w, r, http.StatusServiceUnavailable, "unavailable", "too many streams", nil)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Accel-Buffering", "no")
	id := s.hub.NextConnID()
	hijack := s.canHijack(w, r)
	engine := "handler" // a goroutine and net/http's buffers per stream
	if hijack {
		engine = "poller"
	}
	s.log.Info("connect", "event", "connect", "conn", id, "ip", sr.ip, "origin", sr.origin,
		"user_agent", r.UserAgent(), "transport", "sse", "auth", sr.via, "tenant", sr.p.Tenant, "user", sr.p.User,
		"engine", engine)
	opts := hub.AttachOptions{
		ConnID:    id,
		Transport: "sse",
		Recipient: notification.Recipient{Tenant: sr.p.Tenant, User: sr.p.User, Role: sr.p.Role},
		Since:     sr.since,
		Expires:   sr.p.Expires.Add(s.verifier.Leeway()),
		TokenID:   sr.p.TokenID,
	}
	if hijack {
		s.serveHijacked(w, opts, userKey)
		return
	}
	s.serveInHandler(w, r, opts, userKey)
}

func (s *Server) release(userKey string) {
	if lim := s.cfg.ConnsPerUser; lim != nil {
		lim.Release(userKey)
	}
}

// admitStream checks method, origin, credentials and resume position, and
// answers the request itself when it is refused.
func (s *Server) admitStream(w http.ResponseWriter, r *http.Request) (streamRequest, bool) {
	sr := streamRequest{ip: clientIP(r), origin: r.Header.Get("Origin")}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		s.fail(w, r, http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed", nil)
		return sr, false
	}
	if !s.cors(w, r) {
		return sr, false
	}
	q := r.URL.Query()
	if q.Has("token") || q.Has("access_token") || q.Has("jwt") {
		// A JWT in a URL ends up in proxy and browser logs: refuse it (the
		// value is not logged here either).
		s.fail(w, r, http.StatusBadRequest, "invalid_request", "tokens are not accepted in URLs; use a stream ticket or the Authorization header", nil)
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
			s.fail(w, r, http.StatusBadRequest, "invalid_request", "invalid Last-Event-ID or since position", nil)
			return sr, false
		}
		sr.since = &p
	}
	tok, hasHeader := bearer(r)
	ticket, hasTicket := q.Get("ticket"), q.Has("ticket")
	switch {
	case hasHeader && hasTicket:
		s.fail(w, r, http.StatusBadRequest, "invalid_request", "use either the Authorization header or a ticket", nil)
		return sr, false
	case hasHeader:
		p, err := s.verifier.Verify(tok)
		if err != nil {
			s.log.Warn("token rejected", "event", "token_invalid", "reason", auth.ReasonOf(err), "ip", sr.ip, "transport", "sse")
			s.unauthorized(w, r)
			return sr, false
		}
		sr.p, sr.via = p, "header"
	case hasTicket:
		p, err := s.tickets.redeem(r.Context(), ticket)
		if errors.Is(err, ErrTicketStoreDown) {
			w.Header().Set("Retry-After", "1")
			s.fail(w, r, http.StatusServiceUnavailable, "unavailable", "temporarily unavailable", err)
			return sr, false
		}
		if err != nil {
			s.log.Warn("ticket rejected", "event", "ticket_invalid", "reason", ticketReason(err), "ip", sr.ip, "transport", "sse")
			s.unauthorized(w, r)
			return sr, false
		}
		if s.cfg.Revoked != nil {
			if err := s.cfg.Revoked(p); err != nil { // revoked since the ticket was issued
				s.log.Warn("token rejected", "event", "token_invalid", "reason", auth.ReasonOf(err), "ip", sr.ip, "transport", "sse")
				s.unauthorized(w, r)
				return sr, false
			}
		}
		sr.p, sr.via = p, "ticket"
	default:
		s.unauthorized(w, r)
		return sr, false
	}
	return sr, true
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
	if !s.cors(w, r) {
		return
	}
	tok, _ := bearer(r)
	p, err := s.verifier.Verify(tok)
	if err != nil {
		s.log.Warn("token rejected", "event", "token_invalid", "reason", auth.ReasonOf(err), "ip", clientIP(r), "transport", "sse_ticket")
		s.unauthorized(w, r)
		return
	}
	tk, ttl, err := s.tickets.issue(r.Context(), p)
	switch {
	case errors.Is(err, ErrTicketExpired): // the token is past its exp (within the leeway)
		s.log.Warn("token rejected", "event", "token_invalid", "reason", auth.ReasonExpired, "ip", clientIP(r), "transport", "sse_ticket")
		s.unauthorized(w, r)
		return
	case errors.Is(err, ErrTooManyUserTickets):
		s.log.Warn("too many tickets for user", "event", "rate_limited", "tenant", p.Tenant, "user", p.User, "ip", clientIP(r))
		w.Header().Set("Retry-After", strconv.Itoa(int(s.cfg.TicketTTL/time.Second)+1))
		s.fail(w, r, http.StatusTooManyRequests, "rate_limited", "too many outstanding stream tickets", nil)
		return
	case errors.Is(err, ErrTooManyTickets):
		w.Header().Set("Retry-After", "1")
		s.fail(w, r, http.StatusServiceUnavailable, "unavailable", "temporarily unavailable", err)
		return
	case err != nil:
		s.fail(w, r, http.StatusInternalServerError, "internal", "unable to issue a ticket", err)
		return
	}
	s.log.Debug("stream ticket issued", "event", "ticket_issued", "tenant", p.Tenant, "user", p.User, "ip", clientIP(r))
	secs := int64((ttl + time.Second - 1) / time.Second)
	writeJSON(w, http.StatusOK, struct {
		Ticket    string `json:"ticket"`
		ExpiresIn int64  `json:"expires_in"`
	}{tk, secs})
}

// cors applies CORS for an allowlisted Origin: exact Access-Control-Allow-
// Origin (never "*", never an unchecked reflection), credentials allowed,
// Vary: Origin. A disallowed Origin gets 403 before anything else happens.
// Requests without Origin are not browser cross-origin requests.
func (s *Server) cors(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	h := w.Header()
	h.Add("Vary", "Origin")
	if origin == "" {
		return true
	}
	if !s.cfg.AllowOrigin(origin) {
		s.log.Warn("origin rejected", "event", "origin_rejected", "ip", clientIP(r), "origin", origin, "transport", "sse")
		s.fail(w, r, http.StatusForbidden, "forbidden", "origin not allowed", nil)
		return false
	}
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Credentials", "true")
	return true
}

// preflight answers CORS preflights of the stream and ticket endpoints.
func (s *Server) preflight(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	w.Header().Add("Vary", "Origin")
	if origin == "" || !s.cfg.AllowOrigin(origin) {
		if origin != "" {
			s.log.Warn("origin rejected", "event", "origin_rejected", "ip", clientIP(r), "origin", origin, "transport", "sse")
		}
		w.WriteHeader(http.StatusForbidden)
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Credentials", "true")
	h.Set("Access-Control-Allow-Methods", "GET, POST")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Last-Event-ID")
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) unauthorized(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="herald"`)
	s.fail(w, r, http.StatusUnauthorized, "unauthorized", "invalid or missing credentials", nil)
}

// errorBody is the same error shape as the rest of the HTTP API.
type errorBody struct {
	Error struct {
		Code          string `json:"code"`
		Message       string `json:"message"`
		CorrelationID string `json:"correlation_id"`
	} `json:"error"`
}

// fail answers with a generic error and logs it under a correlation id. The
// logged path is r.URL.Path: the query (which may hold a ticket) is not.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, status int, code, msg string, detail error) {
	var body errorBody
	var id [8]byte
	_, _ = rand.Read(id[:])
	body.Error.Code, body.Error.Message, body.Error.CorrelationID = code, msg, hex.EncodeToString(id[:])
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	args := []any{"correlation_id", body.Error.CorrelationID, "status", status, "code", code,
		"method", r.Method, "path", r.URL.Path, "ip", clientIP(r), "transport", "sse"}
	if detail != nil {
		args = append(args, "err", detail)
	}
	s.log.Log(r.Context(), level, "request failed", args...)
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// bearer returns the Authorization header's bearer token and whether an
// Authorization header was present at all (a malformed one yields "").
func bearer(r *http.Request) (string, bool) {
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

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
