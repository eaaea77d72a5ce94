package session

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/admission"
)

type errorReply struct {
	Error struct {
		Code          string `json:"code"`
		Message       string `json:"message"`
		CorrelationID string `json:"correlation_id"`
	} `json:"error"`
}

// decodeError checks the response's headers and decodes its error body,
// which must have exactly the documented shape.
func decodeError(t testing.TB, rec *httptest.ResponseRecorder) errorReply {
	t.Helper()
	h := rec.Header()
	if h.Get("Content-Type") != "application/json" || h.Get("X-Content-Type-Options") != "nosniff" ||
		h.Get("Cache-Control") != "no-store" {
		t.Errorf("headers %v", h)
	}
	dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	dec.DisallowUnknownFields()
	var body errorReply
	if err := dec.Decode(&body); err != nil {
		t.Fatalf("body %s: %v", rec.Body, err)
	}
	if dec.More() {
		t.Errorf("trailing data in %s", rec.Body)
	}
	if body.Error.Code == "" || body.Error.Message == "" || body.Error.CorrelationID == "" {
		t.Errorf("incomplete error body %s", rec.Body)
	}
	return body
}

func TestHTTPErrorsFail(t *testing.T) {
	tests := []struct {
		name      string
		code      Code
		msg       string
		detail    error
		wantMsg   string
		wantLevel string
	}{
		{name: "generic message", code: CodeNotFound, wantMsg: "not found", wantLevel: "INFO"},
		{name: "own message", code: CodeInvalidRequest, msg: "limit must be positive", wantMsg: "limit must be positive",
			wantLevel: "INFO"},
		{name: "server error with detail", code: CodeInternal, detail: errors.New("disk on fire"),
			wantMsg: "unable to process request", wantLevel: "ERROR"},
		{name: "unavailable", code: CodeUnavailable, wantMsg: "temporarily unavailable", wantLevel: "ERROR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			h := HTTPErrors{Log: slog.New(slog.NewTextHandler(&logs, nil)), Transport: admission.REST.String(),
				ClientIP: func(*http.Request) string { return "198.51.100.7" }}
			req := httptest.NewRequest(http.MethodPost, "/v1/me/notifications?ticket=SECRET", nil)
			rec := httptest.NewRecorder()
			id := h.Fail(rec, req, tt.code, tt.msg, tt.detail, "tenant", "t1")
			if rec.Code != tt.code.Status() {
				t.Errorf("status %d, want %d", rec.Code, tt.code.Status())
			}
			body := decodeError(t, rec)
			if body.Error.Code != tt.code.String() || body.Error.Message != tt.wantMsg || body.Error.CorrelationID != id {
				t.Errorf("body %+v, want %s/%q/%s", body.Error, tt.code, tt.wantMsg, id)
			}
			log := logs.String()
			for _, want := range []string{"level=" + tt.wantLevel, "correlation_id=" + id, "code=" + tt.code.String(),
				"path=/v1/me/notifications", "ip=198.51.100.7", "transport=rest", "tenant=t1"} {
				if !strings.Contains(log, want) {
					t.Errorf("log %q lacks %q", log, want)
				}
			}
			if strings.Contains(log, "SECRET") {
				t.Errorf("log %q contains the query", log)
			}
			if tt.detail != nil && !strings.Contains(log, tt.detail.Error()) {
				t.Errorf("log %q lacks the detail", log)
			}
			if tt.detail != nil && strings.Contains(rec.Body.String(), tt.detail.Error()) {
				t.Errorf("body %s shows the detail", rec.Body)
			}
		})
	}
}

func TestHTTPErrorsFailWith(t *testing.T) {
	h := HTTPErrors{} // no logger: nothing is logged, the body is still written
	req := httptest.NewRequest(http.MethodGet, "/v1/me/notifications", nil)

	rec := httptest.NewRecorder()
	e := NewError(CodeUnavailable, "")
	if id := h.FailWith(rec, req, e, nil); id != e.CorrelationID {
		t.Errorf("correlation id %q, want the error's %q", id, e.CorrelationID)
	}
	if body := decodeError(t, rec); rec.Code != http.StatusServiceUnavailable || body.Error.CorrelationID != e.CorrelationID {
		t.Errorf("%d %+v", rec.Code, body)
	}

	rec = httptest.NewRecorder()
	id := h.FailWith(rec, req, &Error{Code: CodeForbidden}, nil)
	body := decodeError(t, rec)
	if id == "" || body.Error.CorrelationID != id || rec.Code != http.StatusForbidden || body.Error.Message != "forbidden" {
		t.Errorf("%d %+v (id %q)", rec.Code, body, id)
	}
}

func TestHTTPErrorsRefuse(t *testing.T) {
	for _, ref := range admission.Refusals() {
		t.Run(ref.Label(), func(t *testing.T) {
			rec := httptest.NewRecorder()
			HTTPErrors{}.Refuse(rec, httptest.NewRequest(http.MethodGet, "/v1/sse", nil), ref)
			if rec.Code != ref.Status() {
				t.Errorf("status %d, want %d", rec.Code, ref.Status())
			}
			if got := rec.Header().Get("Retry-After"); got != ref.RetryAfter() || got == "" {
				t.Errorf("Retry-After %q, want %q", got, ref.RetryAfter())
			}
			body := decodeError(t, rec)
			if body.Error.Code != CodeOf(ref).String() || body.Error.Message != ref.Message() {
				t.Errorf("body %+v", body.Error)
			}
		})
	}
}

func TestHTTPErrorsUnauthorized(t *testing.T) {
	rec := httptest.NewRecorder()
	HTTPErrors{}.Unauthorized(rec, httptest.NewRequest(http.MethodGet, "/v1/me/notifications", nil))
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("status %d", rec.Code)
	}
	if got := rec.Header().Get("WWW-Authenticate"); got != `Bearer realm="herald"` {
		t.Errorf("WWW-Authenticate %q", got)
	}
	body := decodeError(t, rec)
	if body.Error.Code != "unauthorized" || body.Error.Message != CodeUnauthorized.Message() {
		t.Errorf("body %+v", body.Error)
	}
}

func TestWriteJSON(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteJSON(rec, http.StatusCreated, map[string]int{"n": 1})
	if rec.Code != http.StatusCreated || strings.TrimSpace(rec.Body.String()) != `{"n":1}` ||
		rec.Header().Get("Content-Type") != "application/json" {
		t.Errorf("%d %q %v", rec.Code, rec.Body, rec.Header())
	}
}
