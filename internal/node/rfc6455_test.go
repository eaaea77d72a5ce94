package node

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/wspoll"
)

// The RFC 6455 conformance suite: raw frames over a real TCP socket against
// both WebSocket endpoints of a real node, /v1/ws and Socket.IO's websocket
// transport. One test per rule; each names its section of RFC 6455.

// wsEndpoint is one of the node's WebSocket endpoints.
type wsEndpoint struct {
	name string
	path string
}

var wsEndpoints = []wsEndpoint{
	{"ws", "/v1/ws"},
	{"socketio", "/socket.io/?EIO=4&transport=websocket"},
}

const rfcKey = "dGhlIHNhbXBsZSBub25jZQ==" // RFC 6455 §1.3's sample nonce

// rfcNode starts one node for the suite, without the unauthenticated
// handshake rate (every test connects from 127.0.0.1).
func rfcNode(t *testing.T) *testNode { return startNode(t, protoConfig) }

// handshake sends a raw opening handshake (proto "HTTP/1.1" unless set in
// lines) and returns the connection and the response.
func handshake(t *testing.T, n *testNode, method, proto, path string, hdr map[string]string) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	addr := strings.TrimPrefix(n.base, "http://")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	var b strings.Builder
	b.WriteString(method + " " + path + " " + proto + "\r\nHost: " + addr + "\r\n")
	for k, v := range hdr {
		if v != "" {
			b.WriteString(k + ": " + v + "\r\n")
		}
	}
	b.WriteString("\r\n")
	if _, err := c.Write([]byte(b.String())); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("handshake response: %v", err)
	}
	return c, br, resp
}

// validHeaders is a correct client handshake; tests change one field.
func validHeaders() map[string]string {
	return map[string]string{
		"Upgrade":               "websocket",
		"Connection":            "Upgrade",
		"Sec-WebSocket-Key":     rfcKey,
		"Sec-WebSocket-Version": "13",
	}
}

// rfcConn is an upgraded connection.
type rfcConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, n *testNode, ep wsEndpoint) *rfcConn {
	t.Helper()
	c, br, resp := handshake(t, n, "GET", "HTTP/1.1", ep.path, validHeaders())
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %s", resp.Status)
	}
	return &rfcConn{t: t, c: c, br: br}
}

// frame builds a client frame: b0 is FIN|RSV|opcode; masked with a fixed
// key unless unmasked.
func frame(b0 byte, payload []byte, unmasked bool) []byte {
	if unmasked {
		return wspoll.AppendClientFrame(nil, b0, payload, nil)
	}
	return wspoll.AppendClientFrame(nil, b0, payload, &[4]byte{0x37, 0xfa, 0x21, 0x3d})
}

func closePayload(code uint16, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, code), reason...)
}

func (w *rfcConn) send(frames ...[]byte) {
	w.t.Helper()
	if _, err := w.c.Write(bytes.Join(frames, nil)); err != nil {
		w.t.Fatalf("write: %v", err)
	}
}

// next reads one server frame: it must be unmasked (§5.1).
func (w *rfcConn) next() (op byte, payload []byte, err error) {
	_ = w.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var h [2]byte
	if _, err := io.ReadFull(w.br, h[:]); err != nil {
		return 0, nil, err
	}
	if h[1]&0x80 != 0 {
		w.t.Fatalf("server frame is masked (RFC 6455 §5.1)")
	}
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var l [2]byte
		_, err = io.ReadFull(w.br, l[:])
		n = uint64(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		_, err = io.ReadFull(w.br, l[:])
		n = binary.BigEndian.Uint64(l[:])
	}
	if err != nil {
		return 0, nil, err
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(w.br, payload)
	return h[0] & 0x0F, payload, err
}

// closeCode reads until the server's close frame and returns its code,
// then checks that the server ends the TCP connection (§7.1.1).
func (w *rfcConn) closeCode() int {
	w.t.Helper()
	for {
		op, p, err := w.next()
		if err != nil {
			w.t.Fatalf("no close frame: %v", err)
		}
		if op != 0x8 {
			continue // the open packet, a ping
		}
		code := 1005
		if len(p) >= 2 {
			code = int(binary.BigEndian.Uint16(p))
		}
		if _, _, err := w.next(); !errors.Is(err, io.EOF) && !isReset(err) {
			w.t.Fatalf("after the close frame: %v, want the TCP connection closed", err)
		}
		return code
	}
}

func isReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne) && !ne.Timeout()
}

// frameRule is one MUST on client frames.
type frameRule struct {
	name   string // with the RFC 6455 section
	frames [][]byte
	code   int // the close code the server must send
}

func frameRules() []frameRule {
	text := func(s string) []byte { return frame(0x81, []byte(s), false) }
	return []frameRule{
		{"§5.1 an unmasked client frame is a protocol error", [][]byte{frame(0x81, []byte("{}"), true)}, 1002},
		{"§5.2 RSV1 without an extension", [][]byte{frame(0xC1, []byte("{}"), false)}, 1002},
		{"§5.2 RSV2 without an extension", [][]byte{frame(0xA1, []byte("{}"), false)}, 1002},
		{"§5.2 RSV3 without an extension", [][]byte{frame(0x91, []byte("{}"), false)}, 1002},
		{"§5.2 reserved data opcode 0x3", [][]byte{frame(0x83, nil, false)}, 1002},
		{"§5.2 reserved control opcode 0xB", [][]byte{frame(0x8B, nil, false)}, 1002},
		{"§5.5 a fragmented control frame", [][]byte{frame(0x09, []byte("x"), false)}, 1002},
		{"§5.5 a control frame over 125 bytes", [][]byte{frame(0x89, bytes.Repeat([]byte("x"), 126), false)}, 1002},
		{"§5.4 a continuation frame with no message to continue", [][]byte{frame(0x80, []byte("x"), false)}, 1002},
		{"§5.4 a new text frame inside a fragmented message", [][]byte{frame(0x01, []byte("{"), false), text("{}")}, 1002},
		{"§8.1 a text message that is not UTF-8", [][]byte{frame(0x81, []byte{'"', 0xff, 0xfe, '"'}, false)}, 1007},
		{"§8.1 a fragmented text message that is not UTF-8", [][]byte{
			frame(0x01, []byte{'"', 0xe2, 0x82}, false), frame(0x80, []byte{0x28, '"'}, false)}, 1007},
		{"§5.5.1 a close payload of one byte", [][]byte{frame(0x88, []byte{0x03}, false)}, 1002},
		{"§7.4.1 close code 999", [][]byte{frame(0x88, closePayload(999, ""), false)}, 1002},
		{"§7.4.1 close code 1005 is never sent", [][]byte{frame(0x88, closePayload(1005, ""), false)}, 1002},
		{"§7.4.1 close code 1006 is never sent", [][]byte{frame(0x88, closePayload(1006, ""), false)}, 1002},
		{"§7.4.2 close code 1016 is reserved", [][]byte{frame(0x88, closePayload(1016, ""), false)}, 1002},
		{"§7.4.2 close code 5000 is out of range", [][]byte{frame(0x88, closePayload(5000, ""), false)}, 1002},
		{"§5.5.1 a close reason that is not UTF-8", [][]byte{frame(0x88, append(closePayload(1000, ""), 0xff), false)}, 1007},
		{"§5.5.1 the close handshake: a close frame is echoed", [][]byte{frame(0x88, closePayload(1000, "bye"), false)}, 1000},
		{"§5.5.1 the close handshake: an application close code is echoed", [][]byte{frame(0x88, closePayload(4000, ""), false)}, 4000},
		{"§5.5.1 the close handshake: an empty close frame is echoed", [][]byte{frame(0x88, nil, false)}, 1005},
	}
}

func TestRFC6455Frames(t *testing.T) {
	n := rfcNode(t)
	for _, ep := range wsEndpoints {
		for _, rule := range frameRules() {
			t.Run(ep.name+"/"+rule.name, func(t *testing.T) {
				w := dialRaw(t, n, ep)
				w.send(rule.frames...)
				if got := w.closeCode(); got != rule.code {
					t.Errorf("close code %d, want %d", got, rule.code)
				}
			})
		}
	}
}

// Split delivery: the guard keeps its place in the frame grammar across
// reads, one byte at a time.
func TestRFC6455FramesByteByByte(t *testing.T) {
	n := rfcNode(t)
	for _, ep := range wsEndpoints {
		t.Run(ep.name+"/§5.1 unmasked frame after a valid ping, one byte per write", func(t *testing.T) {
			w := dialRaw(t, n, ep)
			stream := append(frame(0x89, []byte("hello"), false), frame(0x81, []byte("{}"), true)...)
			for _, b := range stream {
				w.send([]byte{b})
				time.Sleep(time.Millisecond)
			}
			if got := w.closeCode(); got != 1002 {
				t.Errorf("close code %d, want 1002", got)
			}
		})
	}
}

func TestRFC6455PingPong(t *testing.T) {
	n := rfcNode(t)
	for _, ep := range wsEndpoints {
		t.Run(ep.name+"/§5.5.3 a pong echoes the ping's payload, also inside a fragmented message", func(t *testing.T) {
			w := dialRaw(t, n, ep)
			w.send(frame(0x01, []byte("{"), false), frame(0x89, []byte("abc"), false))
			for {
				op, p, err := w.next()
				if err != nil {
					t.Fatalf("no pong: %v", err)
				}
				if op == 0xA {
					if string(p) != "abc" {
						t.Errorf("pong payload %q, want abc", p)
					}
					return
				}
			}
		})
	}
}

func TestRFC6455Handshake(t *testing.T) {
	n := rfcNode(t)
	with := func(k, v string) map[string]string { h := validHeaders(); h[k] = v; return h }
	cases := []struct {
		name   string
		method string
		proto  string
		hdr    map[string]string
		status int
	}{
		{"§4.2.1 a valid handshake", "GET", "HTTP/1.1", validHeaders(), 101},
		{"§4.2.1 tokens are case-insensitive and may be in lists", "GET", "HTTP/1.1",
			with("Connection", "keep-alive, UPGRADE"), 101},
		{"§4.2.1 Upgrade is case-insensitive", "GET", "HTTP/1.1", with("Upgrade", "WebSocket"), 101},
		{"§4.2.1 the method must be GET", "POST", "HTTP/1.1", validHeaders(), 405},
		{"§4.2.1 HTTP/1.1 or later", "GET", "HTTP/1.0", validHeaders(), 400},
		{"§4.2.1 Upgrade must name websocket", "GET", "HTTP/1.1", with("Upgrade", "h2c"), 400},
		{"§4.2.1 Connection must include Upgrade", "GET", "HTTP/1.1", with("Connection", "keep-alive"), 400},
		{"§4.2.1 the key is required", "GET", "HTTP/1.1", with("Sec-WebSocket-Key", ""), 400},
		{"§4.2.1 the key must be base64", "GET", "HTTP/1.1", with("Sec-WebSocket-Key", "not base64 at all!!!!!!!"), 400},
		{"§4.2.1 the key must decode to 16 bytes (too short)", "GET", "HTTP/1.1", with("Sec-WebSocket-Key", "c2hvcnQ="), 400},
		{"§4.2.1 the key must decode to 16 bytes (20 bytes)", "GET", "HTTP/1.1",
			with("Sec-WebSocket-Key", "MDEyMzQ1Njc4OTAxMjM0NTY3ODk="), 400},
		{"§4.2.1 the version is required", "GET", "HTTP/1.1", with("Sec-WebSocket-Version", ""), 400},
		{"§4.4 version 8 gets 426", "GET", "HTTP/1.1", with("Sec-WebSocket-Version", "8"), 426},
		{"§4.4 version 12 gets 426", "GET", "HTTP/1.1", with("Sec-WebSocket-Version", "12"), 426},
		{"§4.4 version 14 gets 426", "GET", "HTTP/1.1", with("Sec-WebSocket-Version", "14"), 426},
	}
	for _, ep := range wsEndpoints {
		for _, tc := range cases {
			t.Run(ep.name+"/"+tc.name, func(t *testing.T) {
				c, _, resp := handshake(t, n, tc.method, tc.proto, ep.path, tc.hdr)
				defer c.Close()
				if resp.StatusCode != tc.status {
					t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
				}
				if tc.status != http.StatusUpgradeRequired {
					return
				}
				if v := resp.Header.Get("Sec-WebSocket-Version"); v != "13" {
					t.Errorf("Sec-WebSocket-Version %q, want 13 (RFC 6455 §4.4)", v)
				}
			})
		}
	}
}
