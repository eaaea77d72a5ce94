package node

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/limit"
)

// BenchmarkPublishDeliver is the publish path end to end, in process: one
// notification per iteration through the node's HTTP handler (no network
// for the publish) to a user with one live WebSocket, until the client has
// read the frame. -benchmem reports what one publish costs the server: the
// harness reuses its request, response writer, request body and WebSocket
// reader, so it allocates nothing per iteration.
func BenchmarkPublishDeliver(b *testing.B) {
	n := startNode(b, func(c *Config) {
		c.Limits.PublishRate = limit.Rate{Per: -1}
		c.Logger = slog.New(slog.DiscardHandler)
	})
	rc := dialRawWS(b, strings.TrimPrefix(n.base, "http://"), token(b, "acme", "bench", "", time.Hour))
	rc.until(b, `{"type":"ready"`)
	body := []byte(`{"tenant":"acme","to":{"users":["bench"]},"type":"bench.test","title":"Build 7 passed","body":"All 1,204 tests passed."}`)
	req, err := http.NewRequest(http.MethodPost, n.base+"/v1/notifications", nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+n.apiKey)
	req.Header.Set("Content-Type", "application/json")
	req.RemoteAddr = "127.0.0.1:40000"
	w := &benchWriter{h: http.Header{}}
	rb := &benchBody{}
	h := n.node.Handler()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rb.Reset(body)
		req.Body = rb
		w.reset()
		h.ServeHTTP(w, req)
		if w.status != http.StatusCreated {
			b.Fatalf("publish: %d", w.status)
		}
		rc.until(b, `{"type":"notification"`)
	}
}

// BenchmarkPublishDeliverConcurrent is BenchmarkPublishDeliver with 32
// publishers at once, each to its own user with its own WebSocket: the
// writer commits them in batches, as at saturation, so -benchmem shows
// what a publish costs on that path (the merged runs of the SQLite
// writer).
func BenchmarkPublishDeliverConcurrent(b *testing.B) {
	n := startNode(b, func(c *Config) {
		c.Limits.PublishRate = limit.Rate{Per: -1}
		c.Logger = slog.New(slog.DiscardHandler)
	})
	const publishers = 32
	type publisher struct {
		rc   *rawWS
		req  *http.Request
		body []byte
		rb   *benchBody
		w    *benchWriter
	}
	pubs := make(chan *publisher, publishers)
	for i := range publishers {
		user := "bench" + strconv.Itoa(i)
		rc := dialRawWS(b, strings.TrimPrefix(n.base, "http://"), token(b, "acme", user, "", time.Hour))
		rc.until(b, `{"type":"ready"`)
		req, err := http.NewRequest(http.MethodPost, n.base+"/v1/notifications", nil)
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+n.apiKey)
		req.Header.Set("Content-Type", "application/json")
		req.RemoteAddr = "127.0.0.1:40000"
		body := []byte(`{"tenant":"acme","to":{"users":["` + user + `"]},"type":"bench.test","title":"Build 7 passed","body":"All 1,204 tests passed."}`)
		pubs <- &publisher{rc: rc, req: req, body: body, rb: &benchBody{}, w: &benchWriter{h: http.Header{}}}
	}
	h := n.node.Handler()
	b.SetParallelism((publishers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		p := <-pubs
		for pb.Next() {
			p.rb.Reset(p.body)
			p.req.Body = p.rb
			p.w.reset()
			h.ServeHTTP(p.w, p.req)
			if p.w.status != http.StatusCreated {
				b.Errorf("publish: %d", p.w.status)
				return
			}
			if err := p.rc.next(`{"type":"notification"`); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// benchBody is a reusable request body: Reset it to a body before each
// request.
type benchBody struct{ bytes.Reader }

func (*benchBody) Close() error { return nil }

// benchWriter is a reusable http.ResponseWriter that keeps the status only.
type benchWriter struct {
	h      http.Header
	status int
}

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *benchWriter) WriteHeader(s int)           { w.status = s }

func (w *benchWriter) reset() {
	clear(w.h)
	w.status = 0
}

// rawWS reads server frames off a WebSocket with one reused buffer, so the
// benchmark measures the server's allocations, not a client library's.
type rawWS struct {
	c   net.Conn
	br  *bufio.Reader
	buf []byte
}

func dialRawWS(tb testing.TB, addr, tok string) *rawWS {
	tb.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	req := "GET /v1/ws HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer " + tok + "\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		tb.Fatal(err)
	}
	br := bufio.NewReaderSize(c, 64<<10)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		tb.Fatalf("upgrade: %v %v", err, resp)
	}
	return &rawWS{c: c, br: br, buf: make([]byte, 64<<10)}
}

// until reads frames until one whose payload starts with prefix.
func (r *rawWS) until(tb testing.TB, prefix string) {
	tb.Helper()
	if err := r.next(prefix); err != nil {
		tb.Fatal(err)
	}
}

// next is until for goroutines other than the test's: it reports instead
// of failing the test.
func (r *rawWS) next(prefix string) error {
	_ = r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		var h [2]byte
		if _, err := io.ReadFull(r.br, h[:]); err != nil {
			return fmt.Errorf("read: %w", err)
		}
		n := int(h[1] & 0x7f)
		switch n {
		case 126:
			var x [2]byte
			_, _ = io.ReadFull(r.br, x[:])
			n = int(binary.BigEndian.Uint16(x[:]))
		case 127:
			var x [8]byte
			_, _ = io.ReadFull(r.br, x[:])
			n = int(binary.BigEndian.Uint64(x[:]))
		}
		if n > len(r.buf) {
			return fmt.Errorf("frame of %d bytes", n)
		}
		if _, err := io.ReadFull(r.br, r.buf[:n]); err != nil {
			return fmt.Errorf("read: %w", err)
		}
		if bytes.HasPrefix(r.buf[:n], []byte(prefix)) {
			return nil
		}
	}
}
