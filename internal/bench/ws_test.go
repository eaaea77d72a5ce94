package bench

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// fakeServer accepts one WebSocket connection to /v1/ws and runs script on it.
func fakeServer(t *testing.T, status int, script func(c net.Conn, br *bufio.Reader)) string {
	t.Helper()
	return fakeServerFor(t, status, func(req *http.Request) {
		if req.Header.Get("Authorization") != "Bearer tok" || req.URL.Query().Get("since") != "3.4" {
			t.Errorf("request headers %v, url %s", req.Header, req.URL)
		}
	}, script)
}

// fakeServerFor is fakeServer with check applied to the upgrade request.
func fakeServerFor(t *testing.T, status int, check func(*http.Request), script func(c net.Conn, br *bufio.Reader)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { _ = l.Close(); <-done })
	go func() {
		defer close(done)
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			t.Errorf("read request: %v", err)
			return
		}
		if status != 101 {
			_, _ = io.WriteString(c, "HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\n\r\n")
			return
		}
		check(req)
		h := sha1.Sum([]byte(req.Header.Get("Sec-WebSocket-Key") + wsGUID))
		_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "+
			base64.StdEncoding.EncodeToString(h[:])+"\r\n\r\n")
		script(c, br)
	}()
	return "http://" + l.Addr().String()
}

func serverFrame(fin bool, op byte, payload string) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	b := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		b = append(b, byte(n))
	case n <= 0xffff:
		b = append(b, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, payload...)
}

// readClientFrame reads one masked client frame.
func readClientFrame(t *testing.T, br *bufio.Reader) (op byte, payload []byte) {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		t.Errorf("read client frame: %v", err)
		return 0, nil
	}
	if h[1]&0x80 == 0 {
		t.Errorf("client frame not masked")
	}
	n := int(h[1] & 0x7f)
	var mask [4]byte
	_, _ = io.ReadFull(br, mask[:])
	payload = make([]byte, n)
	_, _ = io.ReadFull(br, payload)
	for i := range payload {
		payload[i] ^= mask[i&3]
	}
	return h[0] & 0x0f, payload
}

type recordingSink struct {
	got       []Delivery
	resyncs   []Position
	malformed int
}

func (s *recordingSink) Notification(d *Delivery) { s.got = append(s.got, *d) }
func (s *recordingSink) Resync(p Position)        { s.resyncs = append(s.resyncs, p) }
func (s *recordingSink) Malformed([]byte)         { s.malformed++ }

// clientTransports are the WebSocket clients to test: goroutine, and epoll
// where it exists.
func clientTransports(t *testing.T) map[string]wsTransport {
	t.Helper()
	trs := map[string]wsTransport{ClientGoroutine: {}}
	if p, err := newWSPoller(1); err == nil {
		t.Cleanup(p.close)
		trs[ClientEpoll] = wsTransport{poll: p}
	}
	return trs
}

func TestWSSession(t *testing.T) {
	for name, tr := range clientTransports(t) {
		t.Run(name, func(t *testing.T) { testWSSession(t, tr) })
	}
}

func testWSSession(t *testing.T, tr wsTransport) {
	notif := `{"type":"notification","notification":{"id":"A","type":"bench.unicast","title":"bench","body":"` +
		strings.Repeat("x", 300) + `","data":{"t":1,"s":2,"u":3},"read":false,"position":"4.4"}}`
	pong := make(chan []byte, 1)
	base := fakeServer(t, 101, func(c net.Conn, br *bufio.Reader) {
		_, _ = c.Write(serverFrame(true, opText, `{"type":"ready","user":"u","tenant":"t","unread":0,"position":"3.4"}`))
		_, _ = c.Write(serverFrame(false, opText, notif[:100]))
		_, _ = c.Write(serverFrame(true, opPing, "hi"))
		_, _ = c.Write(serverFrame(true, opContinuation, notif[100:]))
		_, _ = c.Write(serverFrame(true, opText, `{"type":"unread","count":1}`))
		_, _ = c.Write(serverFrame(true, opText, `{"type":"resync","position":"9.9"}`))
		if op, p := readClientFrame(t, br); op == opPong {
			pong <- p
		}
		_, _ = c.Write(serverFrame(true, opClose, "\x0f\xa8slow_consumer"))
		time.Sleep(100 * time.Millisecond)
	})
	s, pos, err := tr.Dial(context.Background(), DialTarget{BaseURL: base, Token: "tok", Since: "3.4"})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer s.Close(false)
	if pos != (Position{3, 4}) {
		t.Errorf("ready position %v", pos)
	}
	var sink recordingSink
	err = s.Read(&sink)
	var ce *CloseError
	if !errors.As(err, &ce) || ce.Code != 4008 || ce.Reason != "slow_consumer" {
		t.Errorf("Read ended with %v, want close 4008", err)
	}
	if len(sink.got) != 1 || sink.got[0] != (Delivery{Sent: 1, Seq: 2, User: 3, Position: Position{4, 4}}) {
		t.Errorf("deliveries %+v", sink.got)
	}
	if len(sink.resyncs) != 1 || sink.resyncs[0] != (Position{9, 9}) || sink.malformed != 0 {
		t.Errorf("resyncs %v, malformed %d", sink.resyncs, sink.malformed)
	}
	select {
	case p := <-pong:
		if string(p) != "hi" {
			t.Errorf("pong payload %q", p)
		}
	default:
		t.Error("no pong")
	}
}

func TestWSHandshakeRefused(t *testing.T) {
	base := fakeServer(t, 429, nil)
	_, _, err := wsTransport{}.Dial(context.Background(), DialTarget{BaseURL: base, Token: "tok"})
	var he *HandshakeError
	if !errors.As(err, &he) || he.Status != 429 || closeCode(err) != 429 {
		t.Fatalf("got %v, want handshake error 429", err)
	}
}

func TestMaskedFrameLengths(t *testing.T) {
	for _, n := range []int{0, 125, 126, 65535, 65536} {
		c1, c2 := net.Pipe()
		s := &wsSession{nc: c1}
		go func() { _ = s.writeFrame(opText, make([]byte, n)); _ = c1.Close() }()
		b, _ := io.ReadAll(c2)
		hl := 2
		switch {
		case n > 65535:
			hl = 10
			if got := binary.BigEndian.Uint64(b[2:]); got != uint64(n) {
				t.Errorf("n=%d: encoded %d", n, got)
			}
		case n > 125:
			hl = 4
		}
		if len(b) != hl+4+n || b[1]&0x80 == 0 {
			t.Errorf("n=%d: frame of %d bytes, mask bit %v", n, len(b), b[1]&0x80 != 0)
		}
	}
}
