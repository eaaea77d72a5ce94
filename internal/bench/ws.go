package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// WebSocket opcodes (RFC 6455 §5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

const (
	wsReadBuffer   = 4 << 10 // per connection
	wsMaxMessage   = 1 << 20 // larger server messages end the session
	wsDialTimeout  = 10 * time.Second
	wsWriteTimeout = 5 * time.Second
	wsGUID         = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
)

var (
	errProtocol  = errors.New("bench: websocket protocol error")
	errTooLarge  = errors.New("bench: server message too large")
	prefixNotif  = []byte(`{"type":"notification"`)
	prefixReady  = []byte(`{"type":"ready"`)
	prefixEvent  = []byte(`{"type":"event"`)
	prefixAck    = []byte(`{"type":"ack"`)
	prefixError  = []byte(`{"type":"notification:error"`)
	prefixResync = []byte(`{"type":"resync"`)
)

// wsTransport is a minimal WebSocket client on a raw net.Conn: handshake by
// hand, a 4 KiB read buffer, masked client frames, pongs for server pings and
// nothing else, so that the generator's cost per connection and per message
// stays small next to the server's. With poll set (the epoll client, see
// ws_epoll_linux.go) sessions are read by poll loops after the handshake;
// without it (the goroutine client) each Read reads its own connection.
type wsTransport struct {
	poll *wsPoller
}

var _ Transport = wsTransport{}

// wsSession is one WebSocket connection.
type wsSession struct {
	nc      net.Conn
	br      *bufio.Reader
	discard int // bytes of the last payload still in br, dropped on the next read
	asm     assembler
	wmu     sync.Mutex
	closed  atomic.Bool
}

var _ Session = (*wsSession)(nil)

// Dial implements Transport.
func (tr wsTransport) Dial(ctx context.Context, t DialTarget) (Session, Position, error) {
	nc, u, err := dialNode(ctx, t, "ws")
	if err != nil {
		return nil, Position{}, err
	}
	s := &wsSession{nc: nc, br: bufio.NewReaderSize(nc, wsReadBuffer)}
	pos, err := s.handshake(u, t)
	if err != nil {
		_ = nc.Close()
		return nil, Position{}, err
	}
	if tr.poll != nil {
		ps, err := tr.poll.adopt(s)
		if err != nil {
			return nil, Position{}, err
		}
		return ps, pos, nil
	}
	_ = nc.SetDeadline(time.Time{})
	return s, pos, nil
}

// dialNode opens the TCP connection of a session to t's node, with a
// deadline for the handshake (cleared by the caller once it is done).
func dialNode(ctx context.Context, t DialTarget, what string) (net.Conn, *url.URL, error) {
	u, err := url.Parse(t.BaseURL)
	if err != nil {
		return nil, nil, fmt.Errorf("bench: %s dial: %w", what, err)
	}
	// No TCP keep-alive: the peer is on loopback, and its four setsockopt
	// calls are a fifth of a connect's system calls.
	d := net.Dialer{Timeout: wsDialTimeout, KeepAlive: -1}
	if t.Local != nil {
		d.LocalAddr, d.Control = t.Local, dialControl
	}
	start := time.Now()
	nc, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, nil, fmt.Errorf("bench: %s dial: %w", what, err)
	}
	if t.Timing != nil {
		*t.Timing = DialTiming{ConnectNs: time.Since(start).Nanoseconds(), SynRetrans: synRetransmits(nc)}
	}
	deadline := time.Now().Add(wsDialTimeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = nc.SetDeadline(deadline)
	return nc, u, nil
}

// upgrade sends the WebSocket upgrade request for pathQuery (with token in
// an Authorization header unless it is empty) and reads the 101 response.
func (s *wsSession) upgrade(u *url.URL, pathQuery, token string) error {
	var keyRaw [16]byte
	_, _ = rand.Read(keyRaw[:])
	key := base64.StdEncoding.EncodeToString(keyRaw[:])
	req := make([]byte, 0, 256+len(token))
	req = append(req, "GET "+pathQuery+" HTTP/1.1\r\nHost: "+u.Host+
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "+key+"\r\n"...)
	if token != "" {
		req = append(req, "Authorization: Bearer "+token+"\r\n"...)
	}
	req = append(req, "\r\n"...)
	if _, err := s.nc.Write(req); err != nil {
		return fmt.Errorf("bench: ws handshake: %w", err)
	}
	return s.readUpgrade(key)
}

func (s *wsSession) handshake(u *url.URL, t DialTarget) (Position, error) {
	path, token := u.EscapedPath()+"/v1/ws", t.Token
	if t.AuthMessage {
		token = ""
	} else if t.Since != "" {
		path += "?since=" + url.QueryEscape(t.Since)
	}
	if err := s.upgrade(u, path, token); err != nil {
		return Position{}, err
	}
	if t.AuthMessage {
		msg := []byte(`{"type":"auth","token":"` + t.Token + `"`)
		if t.Since != "" {
			msg = append(msg, `,"since":"`+t.Since+`"`...)
		}
		msg = append(msg, '}')
		if err := s.writeFrame(opText, msg); err != nil {
			return Position{}, fmt.Errorf("bench: ws auth: %w", err)
		}
	}
	for {
		op, msg, err := s.next()
		if err != nil {
			return Position{}, fmt.Errorf("bench: ws waiting for ready: %w", err)
		}
		if op == opText && bytes.HasPrefix(msg, prefixReady) {
			pos, ok := positionField(msg)
			if !ok {
				return Position{}, fmt.Errorf("%w: ready without position: %q", errProtocol, msg)
			}
			return pos, s.subscribe(t.Topic)
		}
	}
}

// subscribe joins topic (when set) and waits for the acknowledgement, so
// that the session is counted live only once it gets the topic's events.
func (s *wsSession) subscribe(topic string) error {
	if topic == "" {
		return nil
	}
	if err := s.writeFrame(opText, []byte(`{"type":"subscribe","topics":["`+topic+`"],"ref":"sub"}`)); err != nil {
		return fmt.Errorf("bench: ws subscribe: %w", err)
	}
	for {
		op, msg, err := s.next()
		if err != nil {
			return fmt.Errorf("bench: ws waiting for the subscribe ack: %w", err)
		}
		switch {
		case op != opText:
		case bytes.HasPrefix(msg, prefixAck):
			return nil
		case bytes.HasPrefix(msg, prefixError):
			return fmt.Errorf("%w: subscribe refused: %q", errProtocol, msg)
		}
	}
}

// readUpgrade reads the HTTP response to the upgrade request.
func (s *wsSession) readUpgrade(key string) error {
	status, err := s.br.ReadSlice('\n')
	if err != nil {
		return fmt.Errorf("bench: ws handshake: %w", err)
	}
	// "HTTP/1.1 101 Switching Protocols"
	if len(status) < 12 || !bytes.HasPrefix(status, []byte("HTTP/1.")) {
		return fmt.Errorf("%w: bad status line %q", errProtocol, status)
	}
	code, err := strconv.Atoi(string(status[9:12]))
	if err != nil {
		return fmt.Errorf("%w: bad status line %q", errProtocol, status)
	}
	h := sha1.Sum([]byte(key + wsGUID))
	want := base64.StdEncoding.EncodeToString(h[:])
	accepted := false
	for {
		line, err := s.br.ReadSlice('\n')
		if err != nil {
			return fmt.Errorf("bench: ws handshake headers: %w", err)
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if ok && bytes.EqualFold(bytes.TrimSpace(name), []byte("Sec-WebSocket-Accept")) {
			accepted = string(bytes.TrimSpace(value)) == want
		}
	}
	if code != 101 {
		return &HandshakeError{Status: code}
	}
	if !accepted {
		return fmt.Errorf("%w: missing or wrong Sec-WebSocket-Accept", errProtocol)
	}
	return nil
}

// Read implements Session.
func (s *wsSession) Read(sink Sink) error {
	var d Delivery
	for {
		op, msg, err := s.next()
		if err != nil {
			return err
		}
		if op == opText {
			dispatch(msg, sink, &d)
		}
	}
}

// dispatch hands one text message to sink; messages other than
// notifications and resyncs (unread counts, acks) are ignored.
func dispatch(msg []byte, sink Sink, d *Delivery) {
	switch {
	case bytes.HasPrefix(msg, prefixNotif):
		if parseNotification(msg, d) {
			sink.Notification(d)
		} else {
			sink.Malformed(msg)
		}
	case bytes.HasPrefix(msg, prefixEvent):
		if parseLive(msg, d) {
			sink.Notification(d)
		} else {
			sink.Malformed(msg)
		}
	case bytes.HasPrefix(msg, prefixResync):
		if p, ok := positionField(msg); ok {
			sink.Resync(p)
		} else {
			sink.Malformed(msg)
		}
	}
}

// Close implements Session.
func (s *wsSession) Close(graceful bool) {
	if !s.closed.CompareAndSwap(false, true) {
		return
	}
	if graceful {
		_ = s.writeFrame(opClose, []byte{0x03, 0xe8}) // 1000
	}
	_ = s.nc.Close()
}

// next returns the next data message, answering pings on the way. The
// returned slice is valid until the following call.
func (s *wsSession) next() (op byte, msg []byte, err error) {
	for {
		fin, fop, payload, err := s.readFrame()
		if err != nil {
			return 0, nil, err
		}
		switch fop {
		case opPing:
			if err := s.writeFrame(opPong, payload); err != nil {
				return 0, nil, err
			}
		case opPong:
		case opClose:
			return 0, nil, closeError(payload)
		default:
			op, msg, ok, err := s.asm.add(fin, fop, payload)
			if err != nil || ok {
				return op, msg, err
			}
		}
	}
}

// closeError is the session end a server close frame means.
func closeError(payload []byte) *CloseError {
	ce := &CloseError{Code: 1005}
	if len(payload) >= 2 {
		ce.Code = int(binary.BigEndian.Uint16(payload))
		ce.Reason = string(payload[2:])
	}
	return ce
}

// assembler turns data frames (text, binary, continuation) into messages.
type assembler struct {
	frag []byte // reassembly of a fragmented message
	op   byte   // its opcode
	open bool   // a fragmented message is being reassembled in frag
}

// add takes one data frame. ok reports a complete message: the payload
// itself when unfragmented, else frag (valid until the next add).
func (a *assembler) add(fin bool, op byte, payload []byte) (mop byte, msg []byte, ok bool, err error) {
	switch op {
	case opText, opBinary:
		if a.open {
			return 0, nil, false, fmt.Errorf("%w: new message inside a fragmented one", errProtocol)
		}
		if fin {
			return op, payload, true, nil
		}
		a.op, a.open = op, true
		a.frag = append(a.frag[:0], payload...)
	case opContinuation:
		if !a.open {
			return 0, nil, false, fmt.Errorf("%w: continuation without a message", errProtocol)
		}
		a.frag = append(a.frag, payload...)
		if len(a.frag) > wsMaxMessage {
			return 0, nil, false, errTooLarge
		}
		if fin {
			a.open = false
			return a.op, a.frag, true, nil
		}
	default:
		return 0, nil, false, fmt.Errorf("%w: opcode %d", errProtocol, op)
	}
	return 0, nil, false, nil
}

// readFrame reads one frame. Payloads that fit the read buffer are returned
// in place (no copy); larger ones are copied into a new slice.
func (s *wsSession) readFrame() (fin bool, op byte, payload []byte, err error) {
	if s.discard > 0 {
		_, _ = s.br.Discard(s.discard)
		s.discard = 0
	}
	h, err := s.br.Peek(2)
	if err != nil {
		return false, 0, nil, err
	}
	if hl := headerLen(h[1]); hl > 2 {
		if h, err = s.br.Peek(hl); err != nil {
			return false, 0, nil, err
		}
	}
	fin, op, hl, n, err := frameHeader(h)
	if err != nil {
		return false, 0, nil, err
	}
	_, _ = s.br.Discard(hl)
	if n <= s.br.Size() {
		if payload, err = s.br.Peek(n); err != nil {
			return false, 0, nil, err
		}
		s.discard = n
		return fin, op, payload, nil
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(s.br, payload); err != nil {
		return false, 0, nil, err
	}
	return fin, op, payload, nil
}

// headerLen is the length of a server frame header from its second byte.
func headerLen(b1 byte) int {
	switch b1 & 0x7f {
	case 126:
		return 4
	case 127:
		return 10
	}
	return 2
}

// frameHeader parses the server frame header at the start of b: hl is its
// length and n the payload's, or hl is 0 when b does not hold it all yet.
// Server frames are unmasked; payloads over wsMaxMessage are refused.
func frameHeader(b []byte) (fin bool, op byte, hl, n int, err error) {
	if len(b) < 2 {
		return false, 0, 0, 0, nil
	}
	fin, op = b[0]&0x80 != 0, b[0]&0x0f
	if b[1]&0x80 != 0 || b[0]&0x70 != 0 {
		return false, 0, 0, 0, fmt.Errorf("%w: masked or RSV bits set", errProtocol)
	}
	hl = headerLen(b[1])
	if len(b) < hl {
		return false, 0, 0, 0, nil
	}
	var n64 uint64
	switch hl {
	case 2:
		n64 = uint64(b[1] & 0x7f)
	case 4:
		n64 = uint64(binary.BigEndian.Uint16(b[2:]))
	default:
		n64 = binary.BigEndian.Uint64(b[2:])
	}
	if n64 > wsMaxMessage {
		return false, 0, 0, 0, errTooLarge
	}
	return fin, op, hl, int(n64), nil
}

// writeFrame writes one masked frame (client frames must be masked).
func (s *wsSession) writeFrame(op byte, payload []byte) error {
	b := appendMaskedFrame(make([]byte, 0, 14+len(payload)), op, payload)
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_ = s.nc.SetWriteDeadline(time.Now().Add(wsWriteTimeout))
	_, err := s.nc.Write(b)
	return err
}

// appendMaskedFrame appends one final client frame of op with a random mask.
func appendMaskedFrame(b []byte, op byte, payload []byte) []byte {
	b = append(b, 0x80|op)
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xffff:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	var mask [4]byte
	binary.LittleEndian.PutUint32(mask[:], mrand.Uint32())
	b = append(b, mask[:]...)
	for i, c := range payload {
		b = append(b, c^mask[i&3])
	}
	return b
}
