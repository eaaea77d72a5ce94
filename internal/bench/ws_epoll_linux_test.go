//go:build linux

package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const readyFrame = `{"type":"ready","user":"u","tenant":"t","unread":0,"position":"3.4"}`

// notifMsg is a notification for user 3 with seq s at position s.s whose
// body is bodyLen bytes.
func notifMsg(s, bodyLen int) string {
	return fmt.Sprintf(`{"type":"notification","notification":{"id":"A","type":"bench.unicast","title":"bench","body":"%s","data":{"t":1,"s":%d,"u":3},"read":false,"position":"%d.%d"}}`,
		strings.Repeat("x", bodyLen), s, s, s)
}

// epollDial dials base with a fresh one-loop poller.
func epollDial(t *testing.T, base string) Session {
	t.Helper()
	p, err := newWSPoller(1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.close)
	s, pos, err := wsTransport{poll: p}.Dial(context.Background(), DialTarget{BaseURL: base, Token: "tok", Since: "3.4"})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if _, ok := s.(*epollSession); !ok {
		t.Fatalf("session is a %T, want *epollSession", s)
	}
	if pos != (Position{3, 4}) {
		t.Errorf("ready position %v", pos)
	}
	return s
}

// readSession runs s.Read(sink) and returns its error, failing after 5 s.
func readSession(t *testing.T, s Session, sink Sink) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- s.Read(sink) }()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		s.Close(false)
		t.Fatal("Read did not return")
		return nil
	}
}

// wantSeqs checks that sink got notifications 1..n in order.
func wantSeqs(t *testing.T, sink *recordingSink, n int) {
	t.Helper()
	if len(sink.got) != n || sink.malformed != 0 {
		t.Fatalf("got %d notifications (%d malformed), want %d", len(sink.got), sink.malformed, n)
	}
	for i, d := range sink.got {
		if want := int64(i + 1); d.Seq != want || d.Position != (Position{want, want}) || d.User != 3 {
			t.Fatalf("notification %d: %+v", i, d)
		}
	}
}

func TestEpollSplitFrames(t *testing.T) {
	// Frames cut at every awkward place: inside the 2-byte header, inside
	// the extended length, inside the payload; and a 100 KiB frame, larger
	// than the loop's shared buffer, in three pieces.
	big := serverFrame(true, opText, notifMsg(3, 100<<10))
	base := fakeServer(t, 101, func(c net.Conn, _ *bufio.Reader) {
		_, _ = c.Write(serverFrame(true, opText, readyFrame))
		time.Sleep(20 * time.Millisecond)
		f1, f2 := serverFrame(true, opText, notifMsg(1, 10)), serverFrame(true, opText, notifMsg(2, 300))
		for _, part := range [][]byte{f1[:1], f1[1:20], append(f1[20:], f2[:3]...), f2[3:50], f2[50:], big[:5], big[5:40000], big[40000:]} {
			_, _ = c.Write(part)
			time.Sleep(20 * time.Millisecond)
		}
		_, _ = c.Write(serverFrame(true, opClose, "\x03\xe8"))
		time.Sleep(50 * time.Millisecond)
	})
	s := epollDial(t, base)
	var sink recordingSink
	err := readSession(t, s, &sink)
	if closeCode(err) != 1000 {
		t.Errorf("Read ended with %v, want close 1000", err)
	}
	wantSeqs(t, &sink, 3)
}

func TestEpollManyFramesOneRead(t *testing.T) {
	const n = 500
	base := fakeServer(t, 101, func(c net.Conn, _ *bufio.Reader) {
		var b bytes.Buffer
		b.Write(serverFrame(true, opText, readyFrame))
		// Read ahead by the handshake's bufio.Reader, then left for Read.
		b.Write(serverFrame(true, opText, notifMsg(1, 0)))
		_, _ = c.Write(b.Bytes())
		time.Sleep(20 * time.Millisecond)
		b.Reset()
		for i := 2; i <= n; i++ {
			b.Write(serverFrame(true, opText, notifMsg(i, 40)))
			b.Write(serverFrame(true, opText, `{"type":"unread","count":1}`))
		}
		b.Write(serverFrame(true, opText, `{"type":"resync","position":"900.900"}`))
		_, _ = c.Write(b.Bytes()) // ~140 KiB: several full reads of the shared buffer
		// EOF right behind the data: the last read must still see it.
	})
	s := epollDial(t, base)
	var sink recordingSink
	if err := readSession(t, s, &sink); err != io.EOF {
		t.Errorf("Read ended with %v, want EOF", err)
	}
	wantSeqs(t, &sink, n)
	if len(sink.resyncs) != 1 || sink.resyncs[0] != (Position{900, 900}) {
		t.Errorf("resyncs %v", sink.resyncs)
	}
}

func TestEpollFragmentsPingClose(t *testing.T) {
	msg := notifMsg(1, 200)
	pong := make(chan []byte, 1)
	base := fakeServer(t, 101, func(c net.Conn, br *bufio.Reader) {
		_, _ = c.Write(serverFrame(true, opText, readyFrame))
		_, _ = c.Write(serverFrame(false, opText, msg[:10]))
		time.Sleep(10 * time.Millisecond)
		_, _ = c.Write(serverFrame(true, opPing, "ping-1"))
		_, _ = c.Write(serverFrame(false, opContinuation, msg[10:150]))
		time.Sleep(10 * time.Millisecond)
		_, _ = c.Write(serverFrame(true, opContinuation, msg[150:]))
		_, _ = c.Write(serverFrame(true, opText, notifMsg(2, 0)))
		if op, p := readClientFrame(t, br); op == opPong {
			pong <- p
		}
		_, _ = c.Write(serverFrame(true, opClose, "\x0f\xa8slow_consumer"))
		time.Sleep(50 * time.Millisecond)
	})
	s := epollDial(t, base)
	var sink recordingSink
	err := readSession(t, s, &sink)
	var ce *CloseError
	if !errors.As(err, &ce) || ce.Code != 4008 || ce.Reason != "slow_consumer" {
		t.Errorf("Read ended with %v, want close 4008 slow_consumer", err)
	}
	wantSeqs(t, &sink, 2)
	select {
	case p := <-pong:
		if string(p) != "ping-1" {
			t.Errorf("pong payload %q", p)
		}
	default:
		t.Error("no pong")
	}
}

func TestEpollProtocolErrors(t *testing.T) {
	for name, frame := range map[string][]byte{
		"continuation without a message": serverFrame(true, opContinuation, "x"),
		"masked server frame":            {0x81, 0x81, 1, 2, 3, 4, 'x'},
		"too large":                      append([]byte{0x81, 127}, binary.BigEndian.AppendUint64(nil, wsMaxMessage+1)...),
	} {
		t.Run(name, func(t *testing.T) {
			base := fakeServer(t, 101, func(c net.Conn, _ *bufio.Reader) {
				_, _ = c.Write(serverFrame(true, opText, readyFrame))
				time.Sleep(10 * time.Millisecond)
				_, _ = c.Write(frame)
				time.Sleep(50 * time.Millisecond)
			})
			err := readSession(t, epollDial(t, base), &recordingSink{})
			if !errors.Is(err, errProtocol) && !errors.Is(err, errTooLarge) {
				t.Errorf("Read ended with %v", err)
			}
		})
	}
}

// countingSink counts notifications; after is set once Read has returned,
// and any later call is an error.
type countingSink struct {
	n     atomic.Int64
	after atomic.Bool
	late  atomic.Int64
}

func (s *countingSink) Notification(*Delivery) {
	if s.after.Load() {
		s.late.Add(1)
	}
	s.n.Add(1)
}
func (s *countingSink) Resync(Position)  {}
func (s *countingSink) Malformed([]byte) {}

func TestEpollCloseDuringDelivery(t *testing.T) {
	closeFrame := make(chan []byte, 1)
	base := fakeServer(t, 101, func(c net.Conn, br *bufio.Reader) {
		_, _ = c.Write(serverFrame(true, opText, readyFrame))
		read := make(chan struct{})
		go func() {
			defer close(read)
			// A masked close frame with a 2-byte payload: 0x88 0x82 mask code.
			var f [8]byte
			if _, err := io.ReadFull(br, f[:]); err == nil && f[0] == 0x88 && f[1] == 0x82 {
				closeFrame <- []byte{f[6] ^ f[2], f[7] ^ f[3]}
			}
		}()
		var b bytes.Buffer
		for i := 1; i <= 64; i++ {
			b.Write(serverFrame(true, opText, notifMsg(i, 100)))
		}
		for { // until the client is gone
			if _, err := c.Write(b.Bytes()); err != nil {
				break
			}
		}
		<-read
	})
	s := epollDial(t, base)
	sink := &countingSink{}
	go func() {
		for sink.n.Load() < 20000 {
			time.Sleep(time.Millisecond)
		}
		s.Close(true)
		s.Close(true) // idempotent
	}()
	err := readSession(t, s, sink)
	sink.after.Store(true)
	if !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read ended with %v, want net.ErrClosed", err)
	}
	select {
	case p := <-closeFrame:
		if binary.BigEndian.Uint16(p) != 1000 {
			t.Errorf("close frame payload %x", p)
		}
	case <-time.After(5 * time.Second):
		t.Error("server got no close frame")
	}
	time.Sleep(20 * time.Millisecond)
	if sink.late.Load() != 0 {
		t.Errorf("%d notifications after Read returned", sink.late.Load())
	}
}

func TestEpollCloseBeforeReadAndStop(t *testing.T) {
	hold := func(c net.Conn, _ *bufio.Reader) {
		_, _ = c.Write(serverFrame(true, opText, readyFrame))
		_, _ = io.Copy(io.Discard, c)
	}
	// Closed before Read: Read returns at once.
	s := epollDial(t, fakeServer(t, 101, hold))
	s.Close(false)
	if err := readSession(t, s, &recordingSink{}); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read after Close: %v", err)
	}

	// The poller stops under a reading session: Read returns.
	p, err := newWSPoller(1)
	if err != nil {
		t.Fatal(err)
	}
	s, _, err = wsTransport{poll: p}.Dial(context.Background(), DialTarget{BaseURL: fakeServer(t, 101, hold), Token: "tok", Since: "3.4"})
	if err != nil {
		t.Fatal(err)
	}
	go func() { time.Sleep(20 * time.Millisecond); p.close() }()
	if err := readSession(t, s, &recordingSink{}); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read after poller close: %v", err)
	}
	s.Close(true) // after the end: no effect
}

// TestEpollManySessions opens and closes sessions concurrently on two loops
// so that fd numbers are reused while events are in flight.
func TestEpollManySessions(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go serveReadyFlood(l)
	p, err := newWSPoller(2)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	tr := wsTransport{poll: p}
	errs := make(chan error, 8)
	for g := range 8 {
		go func() {
			for i := range 12 {
				s, _, err := tr.Dial(context.Background(), DialTarget{BaseURL: "http://" + l.Addr().String(), Token: "tok"})
				if err != nil {
					errs <- err
					return
				}
				sink := &countingSink{}
				done := make(chan error, 1)
				go func() { done <- s.Read(sink) }()
				time.Sleep(time.Duration(g+i%3) * time.Millisecond)
				s.Close(i%2 == 0)
				if err := <-done; !errors.Is(err, net.ErrClosed) && err != io.EOF {
					errs <- fmt.Errorf("session %d/%d ended with %v", g, i, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// serveReadyFlood accepts WebSocket upgrades and sends each client ready,
// then notifications until it goes away.
func serveReadyFlood(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			br := bufio.NewReader(c)
			key := ""
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					return
				}
				if k, ok := strings.CutPrefix(line, "Sec-WebSocket-Key: "); ok {
					key = strings.TrimSpace(k)
				}
				if line == "\r\n" {
					break
				}
			}
			_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "+acceptKey(key)+"\r\n\r\n")
			_, _ = c.Write(serverFrame(true, opText, readyFrame))
			go func() { _, _ = io.Copy(io.Discard, br) }()
			f := serverFrame(true, opText, notifMsg(1, 100))
			for {
				if _, err := c.Write(f); err != nil {
					return
				}
			}
		}()
	}
}

func acceptKey(key string) string {
	h := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}
