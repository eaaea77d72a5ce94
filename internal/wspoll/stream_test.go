package wspoll

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/lesismal/nbio"
	nbws "github.com/lesismal/nbio/nbhttp/websocket"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t testing.TB) (server, client net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if server, err = l.Accept(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close(); _ = server.Close() })
	return server, client
}

func waitDone(t testing.TB, s *stream) {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(DropFlushTimeout + 5*time.Second):
		t.Fatal("the stream's writer did not end")
	}
}

// TestStreamNeverBlocksOnASlowClient: a client that reads nothing never
// blocks Write; past the hard cap Write fails with nbio.ErrOverflow, the
// stream ends, and its reader sees that reason.
func TestStreamNeverBlocksOnASlowClient(t *testing.T) {
	server, _ := tcpPair(t) // the client never reads
	const hardCap = 1 << 20
	s := newStream(server, hardCap, nil)
	frame := make([]byte, 16<<10) // frame-sized writes: the kernel's buffers fill first, then the queue
	var err error
	var slowest time.Duration
	for i := 0; i < 4096 && err == nil; i++ {
		start := time.Now()
		_, err = s.Write(frame)
		slowest = max(slowest, time.Since(start))
	}
	if !errors.Is(err, nbio.ErrOverflow) {
		t.Fatalf("writes past the hard cap: %v, want ErrOverflow", err)
	}
	// A write that waited for the client would never return: nothing reads.
	if slowest > 500*time.Millisecond {
		t.Fatalf("a write took %v", slowest)
	}
	if _, err := s.Read(make([]byte, 1)); !errors.Is(err, nbio.ErrOverflow) {
		t.Fatalf("read after overflow: %v, want ErrOverflow", err)
	}
	if _, err := s.Write([]byte("x")); !errors.Is(err, nbio.ErrOverflow) {
		t.Fatalf("write after overflow: %v", err)
	}
	waitDone(t, s) // the flush deadline ends the blocked write
}

// TestStreamFlushesOnClose: what was queued before Close reaches the
// client, then EOF; the reader stops at once with io.EOF; every byte is
// reported written.
func TestStreamFlushesOnClose(t *testing.T) {
	server, client := tcpPair(t)
	var written atomic.Int64
	s := newStream(server, 0, func(n int) { written.Add(int64(n)) })
	readErr := make(chan error, 1)
	go func() {
		_, err := s.Read(make([]byte, 16)) // blocked: the client sends nothing
		readErr <- err
	}()
	want := bytes.Repeat([]byte("frame;"), 10000)
	for i := 0; i < len(want); i += 6000 {
		if _, err := s.Write(want[i:min(i+6000, len(want))]); err != nil {
			t.Fatal(err)
		}
	}
	_ = s.Close()
	_ = s.Close() // idempotent
	if _, err := s.Write([]byte("late")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
	select {
	case err := <-readErr:
		if !errors.Is(err, io.EOF) {
			t.Fatalf("reader ended with %v, want io.EOF", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the reader did not stop on Close")
	}
	got, err := io.ReadAll(client)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("client read %d bytes (err %v), want %d", len(got), err, len(want))
	}
	waitDone(t, s)
	if written.Load() != int64(len(want)) {
		t.Fatalf("written %d, want %d", written.Load(), len(want))
	}
}

// TestStreamWriteError: once the client is gone, the write error ends the
// stream and is what the reader and later writes see.
func TestStreamWriteError(t *testing.T) {
	server, client := tcpPair(t)
	s := newStream(server, 0, nil)
	_ = client.(*net.TCPConn).SetLinger(0)
	_ = client.Close() // RST
	deadline := time.Now().Add(5 * time.Second)
	var err error
	for err == nil && time.Now().Before(deadline) {
		_, err = s.Write(make([]byte, 4096))
		time.Sleep(5 * time.Millisecond)
	}
	if err == nil || errors.Is(err, net.ErrClosed) {
		t.Fatalf("write to a reset socket: %v", err)
	}
	waitDone(t, s)
}

// TestUpgradeServesEchoes upgrades through the build's Upgrade (the poller,
// or with -tags herald_nopoller and on Windows the goroutine fallback),
// echoes a message both ways, counts the Outbound down to zero and closes
// with Drop.
func TestUpgradeServesEchoes(t *testing.T) {
	e := NewEngine("wspoll-test", 1, 1<<20)
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Stop)
	u := NewUpgrader(e, 1<<16)
	type sess struct{ Outbound }
	closed := make(chan error, 1)
	u.OnClose(func(_ *nbws.Conn, err error) { closed <- err })
	u.OnMessage(func(c *nbws.Conn, mt nbws.MessageType, data []byte) {
		o := c.Session().(*sess)
		msg := append([]byte("echo:"), data...)
		_ = o.Push(FrameLen(len(msg)), 1<<20, false, func() error {
			_, err := c.Conn.Write(AppendTextFrame(nil, msg))
			return err
		})
	})
	conns := make(chan *nbws.Conn, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wsc, err := Upgrade(u, w, r)
		if err != nil {
			return
		}
		wsc.SetSession(&sess{})
		conns <- wsc
	}))
	t.Cleanup(srv.Close)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	wsc := <-conns
	if _, polled := wsc.Conn.(*nbio.Conn); polled != EventLoop {
		t.Fatalf("socket type %T, EventLoop %v", wsc.Conn, EventLoop)
	}
	if err := c.Write(ctx, websocket.MessageText, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, got, err := c.Read(ctx); err != nil || string(got) != "echo:hi" {
		t.Fatalf("read %q, %v", got, err)
	}
	o := wsc.Session().(*sess)
	for deadline := time.Now().Add(5 * time.Second); o.Queued() != 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("outbound still counts %d bytes", o.Queued())
		}
	}
	Drop(wsc.Conn)
	select {
	case err := <-closed:
		if r := CloseReason(err); r.String() == "" {
			t.Fatalf("close reason of %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no close after Drop")
	}
	if _, _, err := c.Read(ctx); err == nil {
		t.Fatal("client still open after Drop")
	}
}
