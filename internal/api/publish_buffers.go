package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"
)

// Per-request buffers of the publish path, reused: the body is read into
// a pooled buffer (nothing keeps a reference to it once the request is
// answered: the decoders copy what they keep), and the status recorder
// of OnPublish is pooled too.

// Body buffers: a new one holds initialBodyBuffer bytes; one that grew
// past maxPooledBody (a large batch) is left to the garbage collector, so
// the pool never pins large buffers.
const (
	initialBodyBuffer = 4 << 10
	maxPooledBody     = 64 << 10
)

var bodyPool = sync.Pool{New: func() any {
	b := make([]byte, 0, initialBodyBuffer)
	return &b
}}

// getBuffer returns an empty pooled buffer; putBuffer gives it back with
// what it became (b may have grown).
func getBuffer() *[]byte { return bodyPool.Get().(*[]byte) }

func putBuffer(p *[]byte, b []byte) {
	if cap(b) > maxPooledBody {
		return
	}
	*p = b[:0]
	bodyPool.Put(p)
}

// errBodyTooLarge: the body holds more than the limit (readLimited).
var errBodyTooLarge = errors.New("api: body over the limit")

// readLimited appends rd's bytes to b up to EOF, reading no more than
// limit+1 bytes (errBodyTooLarge then), as io.ReadAll of an
// http.MaxBytesReader does.
func readLimited(rd io.Reader, b []byte, limit int64) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		window := b[len(b):cap(b)]
		if left := limit + 1 - int64(len(b)); int64(len(window)) > left {
			window = window[:left]
		}
		n, err := rd.Read(window)
		b = b[:len(b)+n]
		switch {
		case int64(len(b)) > limit:
			return b, errBodyTooLarge
		case err == io.EOF:
			return b, nil
		case err != nil:
			return b, err
		}
	}
}

// readBodyInto is readBody into buf. A body over the limit is read again
// through http.MaxBytesReader, so the answer and the connection's fate
// are exactly readBody's.
func (a *API) readBodyInto(w http.ResponseWriter, r *http.Request, limit int64, buf []byte) ([]byte, bool) {
	body, err := readLimited(r.Body, buf, limit)
	if errors.Is(err, errBodyTooLarge) {
		_, err = io.ReadAll(http.MaxBytesReader(w, io.NopCloser(io.MultiReader(bytes.NewReader(body), r.Body)), limit))
	}
	if err != nil {
		return body, a.bodyFailed(w, r, err)
	}
	return body, a.validUTF8(w, r, body)
}

// requestHash is the idempotency hash of a publish: the path, a newline
// and the body (prefix separates the live path's hash).
func requestHash(path, prefix string, body []byte) string {
	p := getBuffer()
	b := append(append(append(*p, path...), prefix...), body...)
	sum := sha256.Sum256(b)
	putBuffer(p, b)
	return hex.EncodeToString(sum[:])
}

var recorderPool = sync.Pool{New: func() any { return new(statusRecorder) }}

// recordPublish wraps w to report the request's status and duration to
// OnPublish; the returned func does it, once the request is answered.
func (a *API) recordPublish(w http.ResponseWriter) (*statusRecorder, time.Time) {
	rec := recorderPool.Get().(*statusRecorder)
	rec.ResponseWriter, rec.status = w, http.StatusOK
	return rec, time.Now()
}

// published reports rec's request to OnPublish and recycles rec.
func (a *API) published(rec *statusRecorder, start time.Time) {
	a.cfg.OnPublish(rec.status, time.Since(start))
	rec.ResponseWriter = nil
	recorderPool.Put(rec)
}

// statusRecorder remembers the status code written.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}
