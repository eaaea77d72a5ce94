package session

import (
	"encoding/json"
	"log/slog"
	"net/http"

	"github.com/heraldhq/herald/internal/admission"
)

// HTTPErrors writes the error bodies of Herald's HTTP endpoints (the
// publish and user APIs, the SSE stream and tickets), one shape for all:
// {"error":{"code","message","correlation_id"}}, with the details in the
// log line under the same correlation id. The logged path is r.URL.Path:
// queries (which may hold a ticket) are never logged.
type HTTPErrors struct {
	Log       *slog.Logger
	ClientIP  func(*http.Request) string
	Transport string // the log's "transport" ("" for none)
}

type errorBody struct {
	Error struct {
		Code          string `json:"code"`
		Message       string `json:"message"`
		CorrelationID string `json:"correlation_id"`
	} `json:"error"`
}

// Fail answers r with code's status and body (msg "" means the code's
// generic message) and logs detail. It returns the correlation id.
func (h HTTPErrors) Fail(w http.ResponseWriter, r *http.Request, code Code, msg string, detail error, attrs ...any) string {
	return h.FailWith(w, r, NewError(code, msg), detail, attrs...)
}

// FailWith answers r with e (a reply's error from Core.Do): its code's
// status, its message and its correlation id, under which the request is
// logged with detail and attrs. An e without a correlation id gets one. It
// returns the correlation id.
func (h HTTPErrors) FailWith(w http.ResponseWriter, r *http.Request, e *Error, detail error, attrs ...any) string {
	var body errorBody
	body.Error.Code, body.Error.Message, body.Error.CorrelationID = e.Code.String(), e.text(), e.CorrelationID
	if body.Error.CorrelationID == "" {
		body.Error.CorrelationID = NewCorrelationID()
	}
	status := e.Code.Status()
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	if h.Log != nil && h.Log.Enabled(r.Context(), level) {
		ip := r.RemoteAddr
		if h.ClientIP != nil {
			ip = h.ClientIP(r)
		}
		args := append([]any{"correlation_id", body.Error.CorrelationID, "status", status, "code", body.Error.Code,
			"method", r.Method, "path", r.URL.Path, "ip", ip}, attrs...)
		if h.Transport != "" {
			args = append(args, "transport", h.Transport)
		}
		if detail != nil {
			args = append(args, "err", detail)
		}
		h.Log.Log(r.Context(), level, "request failed", args...)
	}
	WriteJSON(w, status, body)
	return body.Error.CorrelationID
}

// Refuse answers an admission refusal: its status, Retry-After and message.
func (h HTTPErrors) Refuse(w http.ResponseWriter, r *http.Request, ref admission.Refusal) {
	if ra := ref.RetryAfter(); ra != "" {
		w.Header().Set("Retry-After", ra)
	}
	var body errorBody
	body.Error.Code, body.Error.Message = CodeOf(ref).String(), ref.Message()
	body.Error.CorrelationID = NewCorrelationID()
	WriteJSON(w, ref.Status(), body)
}

// Unauthorized answers 401 with the Bearer challenge.
func (h HTTPErrors) Unauthorized(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="herald"`)
	h.Fail(w, r, CodeUnauthorized, "", nil)
}

// WriteJSON writes v as a JSON response that browsers neither sniff nor cache.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	SetJSONHeaders(w.Header())
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteJSONBytes writes body, already JSON, like WriteJSON.
func WriteJSONBytes(w http.ResponseWriter, status int, body []byte) {
	SetJSONHeaders(w.Header())
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// Header values shared by every response: net/http only reads them, and a
// handler that appends to one gets a copy (each has capacity 1). Setting
// them costs no allocation on the publish path.
var (
	hvJSON    = []string{"application/json"}
	hvNosniff = []string{"nosniff"}
	hvNoStore = []string{"no-store"}
)

// SetJSONHeaders sets the headers of a JSON response that browsers neither
// sniff nor cache.
func SetJSONHeaders(h http.Header) {
	h["Content-Type"] = hvJSON
	h["X-Content-Type-Options"] = hvNosniff
	h["Cache-Control"] = hvNoStore
}
