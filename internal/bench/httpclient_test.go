package bench

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// recordingServer is an httptest server that checks each publish request and
// answers with handle; it counts the connections it accepted.
func recordingServer(t *testing.T, handle http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		switch {
		case err != nil:
			t.Errorf("server: read body: %v", err)
		case r.Method != http.MethodPost || r.URL.Path != "/prefix/v1/notifications":
			t.Errorf("server: got %s %s", r.Method, r.URL.Path)
		case r.Header.Get("Authorization") != "Bearer key-1" || r.Header.Get("Content-Type") != "application/json":
			t.Errorf("server: headers %v", r.Header)
		case r.ContentLength != int64(len(body)) || !strings.HasPrefix(string(body), `{"n":`):
			t.Errorf("server: body %q, Content-Length %d", body, r.ContentLength)
		}
		handle(w, r)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

func newTestPoster(t *testing.T, base string) *httpPoster {
	t.Helper()
	p, err := newHTTPPoster(base+"/prefix/v1/notifications", "key-1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func postN(t *testing.T, p *httpPoster, n int) (statuses []int, bodies []string) {
	t.Helper()
	for i := range n {
		status, body, err := p.post(context.Background(), []byte(`{"n":`+string(rune('0'+i%10))+`}`))
		if err != nil {
			t.Fatalf("post %d: %v", i, err)
		}
		statuses, bodies = append(statuses, status), append(bodies, string(body))
	}
	return statuses, bodies
}

func TestHTTPPosterKeepAlive(t *testing.T) {
	srv, conns := recordingServer(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"id":"x"}`+"\n")
	})
	p := newTestPoster(t, srv.URL)
	statuses, bodies := postN(t, p, 5)
	for i := range statuses {
		if statuses[i] != 201 || bodies[i] != "" {
			t.Errorf("call %d: %d %q, want 201 and no error body", i, statuses[i], bodies[i])
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 5 calls, want 1", n)
	}
}

func TestHTTPPosterErrorBody(t *testing.T) {
	long := strings.Repeat("e", 5000) // larger than the read buffer
	srv, conns := recordingServer(t, func(w http.ResponseWriter, _ *http.Request) {
		body := `{"error":"` + long + `"}`
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, body)
	})
	p := newTestPoster(t, srv.URL)
	statuses, bodies := postN(t, p, 3)
	for i := range statuses {
		if statuses[i] != 400 || bodies[i] != (`{"error":"` + long)[:200] {
			t.Errorf("call %d: %d %q, want 400 and the first 200 bytes", i, statuses[i], bodies[i])
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 3 calls, want 1 (the body must be drained)", n)
	}
}

func TestHTTPPosterChunked(t *testing.T) {
	srv, conns := recordingServer(t, func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusConflict)
		for _, part := range []string{"first part, ", strings.Repeat("x", 6000), " last"} {
			_, _ = io.WriteString(w, part)
			w.(http.Flusher).Flush() // forces chunked encoding
		}
	})
	p := newTestPoster(t, srv.URL)
	statuses, bodies := postN(t, p, 3)
	want := ("first part, " + strings.Repeat("x", 200))[:200]
	for i := range statuses {
		if statuses[i] != 409 || bodies[i] != want {
			t.Errorf("call %d: %d %q, want 409 and %q", i, statuses[i], bodies[i], want)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 3 calls, want 1", n)
	}
}

func TestHTTPPosterConnectionClose(t *testing.T) {
	srv, conns := recordingServer(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusCreated)
	})
	p := newTestPoster(t, srv.URL)
	statuses, _ := postN(t, p, 3)
	for i, s := range statuses {
		if s != 201 {
			t.Errorf("call %d: status %d", i, s)
		}
	}
	if n := conns.Load(); n != 3 {
		t.Errorf("%d connections for 3 calls answered with Connection: close, want 3", n)
	}
}

// The server closing an idle keep-alive connection between two calls must
// cost neither call.
func TestHTTPPosterServerClosedIdle(t *testing.T) {
	srv, conns := recordingServer(t, func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusCreated)
	})
	p := newTestPoster(t, srv.URL)
	postN(t, p, 1)
	srv.CloseClientConnections()
	time.Sleep(50 * time.Millisecond) // let the FIN arrive
	postN(t, p, 1)
	srv.CloseClientConnections()
	postN(t, p, 1) // racing the close this time
	if n := conns.Load(); n != 3 {
		t.Errorf("%d connections, want 3", n)
	}
}

// rawServer answers each connection with script, reading one request first.
func rawServer(t *testing.T, script func(c net.Conn, br *bufio.Reader)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				script(c, bufio.NewReader(c))
			}()
		}
	}()
	return "http://" + l.Addr().String()
}

// readRequest consumes one request of the poster.
func readRequest(br *bufio.Reader) error {
	req, err := http.ReadRequest(br)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, req.Body)
	return err
}

func TestHTTPPosterRawResponses(t *testing.T) {
	tests := []struct {
		name       string
		resp       string
		status     int
		body       string
		reconnects bool
	}{
		{name: "content-length", resp: "HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\n{}\n", status: 201},
		{name: "chunked with extension and trailer", resp: "HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"4;x=y\r\nboom\r\n3\r\n!!!\r\n0\r\nX-Trailer: 1\r\n\r\n", status: 500, body: "boom!!!"},
		{name: "until EOF", resp: "HTTP/1.1 503 Busy\r\n\r\nbusy", status: 503, body: "busy", reconnects: true},
		{name: "HTTP/1.0", resp: "HTTP/1.0 201 Created\r\nContent-Length: 0\r\n\r\n", status: 201, reconnects: true},
		{name: "HTTP/1.0 keep-alive", resp: "HTTP/1.0 201 Created\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", status: 201},
		{name: "no content", resp: "HTTP/1.1 204 No Content\r\n\r\n", status: 204},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var accepted atomic.Int64
			base := rawServer(t, func(c net.Conn, br *bufio.Reader) {
				accepted.Add(1)
				for readRequest(br) == nil {
					if _, err := io.WriteString(c, tt.resp); err != nil {
						return
					}
					if tt.reconnects {
						return
					}
				}
			})
			p := newTestPoster(t, base)
			statuses, bodies := postN(t, p, 2)
			for i := range statuses {
				if statuses[i] != tt.status || bodies[i] != tt.body {
					t.Errorf("call %d: %d %q, want %d %q", i, statuses[i], bodies[i], tt.status, tt.body)
				}
			}
			want := int64(1)
			if tt.reconnects {
				want = 2
			}
			if n := accepted.Load(); n != want {
				t.Errorf("%d connections, want %d", n, want)
			}
		})
	}
}

func TestHTTPPosterErrors(t *testing.T) {
	t.Run("malformed", func(t *testing.T) {
		base := rawServer(t, func(c net.Conn, br *bufio.Reader) {
			if readRequest(br) == nil {
				_, _ = io.WriteString(c, "SPDY/9 what\r\n\r\n")
			}
		})
		p := newTestPoster(t, base)
		if _, _, err := p.post(context.Background(), []byte(`{"n":1}`)); !errors.Is(err, errHTTPProtocol) {
			t.Errorf("err = %v, want errHTTPProtocol", err)
		}
	})
	t.Run("closed mid-response", func(t *testing.T) {
		base := rawServer(t, func(c net.Conn, br *bufio.Reader) {
			if readRequest(br) == nil {
				_, _ = io.WriteString(c, "HTTP/1.1 201 Created\r\nContent-Length: 10\r\n\r\nabc")
			}
		})
		p := newTestPoster(t, base)
		if _, _, err := p.post(context.Background(), []byte(`{"n":1}`)); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("err = %v, want unexpected EOF", err)
		}
	})
	t.Run("refused", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		_ = l.Close()
		p := newTestPoster(t, "http://"+addr)
		if _, _, err := p.post(context.Background(), []byte(`{"n":1}`)); err == nil {
			t.Error("post to a closed port succeeded")
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		release := make(chan struct{})
		base := rawServer(t, func(c net.Conn, br *bufio.Reader) {
			if readRequest(br) == nil {
				<-release // never answer
			}
		})
		defer close(release)
		p := newTestPoster(t, base)
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		start := time.Now()
		_, _, err := p.post(ctx, []byte(`{"n":1}`))
		if !errors.Is(err, context.Canceled) || time.Since(start) > 5*time.Second {
			t.Errorf("err = %v after %v, want context.Canceled soon", err, time.Since(start))
		}
	})
}

func BenchmarkHTTPPoster(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"id":"01M8DE2M6QPT2947B93SRVBR31"}`+"\n")
	}))
	defer srv.Close()
	p, err := newHTTPPoster(srv.URL+"/v1/notifications", "key")
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	body := appendUnicast(nil, "bench", "b1", 42, time.Now().UnixNano(), 1)
	b.ReportAllocs()
	for b.Loop() {
		if status, _, err := p.post(context.Background(), body); err != nil || status != 201 {
			b.Fatal(status, err)
		}
	}
}
