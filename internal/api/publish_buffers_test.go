package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReadLimited(t *testing.T) {
	for _, tt := range []struct {
		name    string
		body    string
		limit   int64
		wantErr error
	}{
		{"empty", "", 10, nil},
		{"under", "abc", 10, nil},
		{"exact", "0123456789", 10, nil},
		{"over", "0123456789x", 10, errBodyTooLarge},
		{"far over", strings.Repeat("x", 3*initialBodyBuffer), 2 * initialBodyBuffer, errBodyTooLarge},
		{"grows", strings.Repeat("y", 3*initialBodyBuffer), 4 * initialBodyBuffer, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, rd := range []io.Reader{strings.NewReader(tt.body), iotest.OneByteReader(strings.NewReader(tt.body)), iotest.DataErrReader(strings.NewReader(tt.body))} {
				got, err := readLimited(rd, make([]byte, 0, 16), tt.limit)
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err %v, want %v", err, tt.wantErr)
				}
				if tt.wantErr == nil && string(got) != tt.body {
					t.Fatalf("read %q, want %q", got, tt.body)
				}
				if int64(len(got)) > tt.limit+1 {
					t.Fatalf("read %d bytes, more than limit+1", len(got))
				}
			}
		})
	}
	if _, err := readLimited(iotest.ErrReader(io.ErrUnexpectedEOF), nil, 10); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err %v, want the reader's", err)
	}
}

// A body over the limit is answered as http.MaxBytesReader has it: 413.
func TestReadBodyIntoTooLarge(t *testing.T) {
	var a API
	for _, tt := range []struct {
		body   string
		status int
		msg    string
	}{
		{strings.Repeat("x", 100), http.StatusOK, ""},
		{strings.Repeat("x", 101), http.StatusRequestEntityTooLarge, "request body too large"},
		{"\xff", http.StatusBadRequest, "invalid request"},
	} {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodPost, "/v1/notifications", strings.NewReader(tt.body))
		body, ok := a.readBodyInto(w, r, 100, nil)
		if ok != (tt.status == http.StatusOK) || w.Code != tt.status || !strings.Contains(w.Body.String(), tt.msg) {
			t.Errorf("%d bytes: ok %v, %d %s; want %d %q", len(tt.body), ok, w.Code, w.Body, tt.status, tt.msg)
		}
		if ok && !bytes.Equal(body, []byte(tt.body)) {
			t.Errorf("body %q", body)
		}
	}
}

// The idempotency hash is stored with a request: it must stay the one of
// before (sha256 of path, prefix and body, hex).
func TestRequestHashUnchanged(t *testing.T) {
	body := []byte(`{"tenant":"acme"}`)
	for _, prefix := range []string{"\n", "\nlive\n"} {
		sum := sha256.Sum256(append([]byte("/v1/notifications"+prefix), body...))
		if got, want := requestHash("/v1/notifications", prefix, body), hex.EncodeToString(sum[:]); got != want {
			t.Errorf("prefix %q: %s, want %s", prefix, got, want)
		}
	}
}
