package ws

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/admission"
	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/hub"
	"github.com/heraldhq/herald/internal/notification"
	"github.com/heraldhq/herald/internal/session"
	"github.com/heraldhq/herald/internal/session/sessiontest"
	"github.com/heraldhq/herald/internal/testkit"
)

func TestMain(m *testing.M) { testkit.LeakMain(m, testkit.ServerLeakOptions()...) }

// fakeVerifier accepts a token "<user>" for user <user> of tenant "t",
// rejects "bad", and for "slow:<user>" waits until gate is closed (a JWKS
// fetch that takes its time).
type fakeVerifier struct {
	gate    chan struct{} // closed: slow tokens proceed
	waiting chan struct{} // gets a value when a slow verification starts
}

func newFakeVerifier() *fakeVerifier {
	return &fakeVerifier{gate: make(chan struct{}), waiting: make(chan struct{}, 16)}
}

func (v *fakeVerifier) Verify(tok string) (auth.Principal, error) {
	if tok == "bad" || tok == "" {
		return auth.Principal{}, auth.ErrInvalidToken
	}
	if rest, ok := strings.CutPrefix(tok, "slow:"); ok {
		v.waiting <- struct{}{}
		<-v.gate
		return v.Verify(rest)
	}
	return auth.Principal{User: tok, Tenant: "t", Expires: time.Now().Add(time.Hour)}, nil
}

func (v *fakeVerifier) Leeway() time.Duration { return 0 }

// testServer is a ws.Server with a real hub behind an httptest server.
type testServer struct {
	srv      *Server
	hub      *hub.Hub
	verifier *fakeVerifier
	addr     string       // host:port
	attached atomic.Int64 // hub attaches so far
}

func startServer(t testing.TB, mutate ...func(*Config)) *testServer {
	t.Helper()
	ts := &testServer{verifier: newFakeVerifier()}
	h := hub.New(sessiontest.EmptyStore{}, hub.Config{Observer: hub.Observer{Opened: func(string) { ts.attached.Add(1) }}})
	v := ts.verifier
	cfg := Config{CheckOrigin: func(*http.Request) bool { return true }, Pollers: 1}
	for _, m := range mutate {
		m(&cfg)
	}
	core, err := session.New(session.Config{}, h, v, sessiontest.NopInbox{}, admission.New(admission.Config{}))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, core)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s)
	ts.srv, ts.hub, ts.addr = s, h, strings.TrimPrefix(hs.URL, "http://")
	t.Cleanup(func() {
		select {
		case <-v.gate:
		default:
			close(v.gate)
		}
		h.Close(hub.ReasonShutdown)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		hs.Close()
	})
	return ts
}

// rawClient is a minimal WebSocket client on a plain TCP connection, so that
// tests control exactly how a connection ends.
type rawClient struct {
	c  net.Conn
	br *bufio.Reader
}

// dialRaw upgrades a new connection; header, when set, is sent as the bearer token.
func dialRaw(addr, header string) (*rawClient, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET /v1/ws HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	if header != "" {
		req += "Authorization: Bearer " + header + "\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		c.Close()
		return nil, err
	}
	rc := &rawClient{c: c, br: bufio.NewReader(c)}
	resp, err := http.ReadResponse(rc.br, nil)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("upgrade: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		c.Close()
		return nil, fmt.Errorf("upgrade: status %d", resp.StatusCode)
	}
	return rc, nil
}

// writeFrame sends one masked frame (a zero mask: the payload is unchanged).
func (r *rawClient) writeFrame(opcode byte, payload []byte) error {
	b := []byte{0x80 | opcode}
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 65535:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	b = append(b, 0, 0, 0, 0)
	_, err := r.c.Write(append(b, payload...))
	return err
}

func (r *rawClient) send(text string) error { return r.writeFrame(0x1, []byte(text)) }

// sendClose sends a close frame with code.
func (r *rawClient) sendClose(code uint16) error {
	return r.writeFrame(0x8, binary.BigEndian.AppendUint16(nil, code))
}

// errClosed is returned by read when the server sent a close frame.
type errClosed struct{ code int }

func (e errClosed) Error() string { return fmt.Sprintf("close frame %d", e.code) }

// read returns the next text message, answering pings.
func (r *rawClient) read() (string, error) {
	for {
		var h [2]byte
		if _, err := io.ReadFull(r.br, h[:]); err != nil {
			return "", err
		}
		n := uint64(h[1] & 0x7f)
		switch n {
		case 126:
			var ext [2]byte
			if _, err := io.ReadFull(r.br, ext[:]); err != nil {
				return "", err
			}
			n = uint64(binary.BigEndian.Uint16(ext[:]))
		case 127:
			var ext [8]byte
			if _, err := io.ReadFull(r.br, ext[:]); err != nil {
				return "", err
			}
			n = binary.BigEndian.Uint64(ext[:])
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(r.br, p); err != nil {
			return "", err
		}
		switch h[0] & 0x0f {
		case 0x1:
			return string(p), nil
		case 0x8:
			code := 1005
			if len(p) >= 2 {
				code = int(binary.BigEndian.Uint16(p))
			}
			return "", errClosed{code}
		case 0x9:
			if err := r.writeFrame(0xA, p); err != nil {
				return "", err
			}
		}
	}
}

// readType reads messages until one of type typ, failing on anything else.
func (r *rawClient) readType(typ string) (string, error) {
	m, err := r.read()
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(m, `{"type":"`+typ+`"`) {
		return m, fmt.Errorf("got %s, want %s", m, typ)
	}
	return m, nil
}

// next reads messages until one of type typ, skipping others.
func (r *rawClient) next(typ string) (string, error) {
	for {
		m, err := r.read()
		if err != nil || strings.HasPrefix(m, `{"type":"`+typ+`"`) {
			return m, err
		}
	}
}

// closeCode waits for the server's close frame and returns its code.
func (r *rawClient) closeCode() (int, error) {
	for {
		_, err := r.read()
		var ce errClosed
		if errors.As(err, &ce) {
			return ce.code, nil
		}
		if err != nil {
			return 0, err
		}
	}
}

func (r *rawClient) Close() error { return r.c.Close() }

// deliverTo fans a notification out to user (tenant "t") with stream sequence seq.
func deliverTo(h *hub.Hub, user string, seq int64) {
	n := notification.Notification{ID: fmt.Sprintf("n-%s-%d", user, seq), Tenant: "t",
		Audience: notification.Audience{Kind: notification.AudienceUsers, Users: []string{user}},
		Type:     "x", Title: "x", CreatedAt: time.Now()}
	h.Deliver(&notification.Event{Kind: notification.EventNotification, Tenant: "t", Notification: &n,
		Deliveries: []notification.Delivery{{User: user, Seq: seq, Unread: seq}}})
}
