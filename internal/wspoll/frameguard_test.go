package wspoll

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
)

// mframe builds a masked client frame (b0 is FIN|RSV|opcode).
func mframe(b0 byte, payload []byte) []byte {
	return AppendClientFrame(nil, b0, payload, &[4]byte{1, 2, 3, 4})
}

// The guard's verdict and the bytes it lets through do not depend on how
// the stream is split into reads. The frame layer tests of RFC 6455 over
// real sockets are in internal/node (rfc6455_test.go).
func TestFrameGuardScan(t *testing.T) {
	ping := mframe(0x89, []byte("hi"))
	cases := []struct {
		name   string
		stream []byte
		pass   int // bytes passed to nbio (-1: all) when the stream comes in one read
		code   int // 0: valid
	}{
		{"valid text, fragmented text with a ping inside, close", bytes.Join([][]byte{
			mframe(0x81, []byte(`{"type":"ping"}`)), mframe(0x01, []byte("{")), ping, mframe(0x80, []byte("}")),
			mframe(0x88, append([]byte{0x03, 0xe8}, "bye"...))}, nil), -1, 0},
		{"long frame (16-bit length)", mframe(0x82, make([]byte, 300)), -1, 0},
		{"long frame (64-bit length)", mframe(0x82, make([]byte, 70000)), -1, 0},
		{"unmasked after a ping", append(append([]byte{}, ping...), 0x81, 0x00), len(ping), 1002},
		{"RSV1", mframe(0xC1, nil), 0, 1002},
		{"reserved opcode", mframe(0x87, nil), 0, 1002},
		{"fragmented ping", mframe(0x09, nil), 0, 1002},
		{"ping over 125", mframe(0x89, make([]byte, 126)), 0, 1002},
		{"lone continuation", mframe(0x80, nil), 0, 1002},
		{"text inside a fragmented message", append(mframe(0x01, []byte("a")), mframe(0x81, nil)...), 7, 1002},
		{"64-bit length with the high bit", []byte{0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}, 0, 1002},
		{"one-byte close", mframe(0x88, []byte{3}), 0, 1002},
		{"close code 1006", mframe(0x88, []byte{0x03, 0xee}), 0, 1002},
		{"close reason not UTF-8", mframe(0x88, []byte{0x03, 0xe8, 0xff}), 0, 1007},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.pass
			if want < 0 {
				want = len(tc.stream)
			}
			for split := 0; split <= len(tc.stream) && split < 400; split++ {
				var s frameState
				n1, fe := s.scan(tc.stream[:split])
				passed := n1
				if fe == nil {
					n2, fe2 := s.scan(tc.stream[split:])
					passed += n2
					fe = fe2
				}
				code := 0
				if fe != nil {
					code = fe.Code
				}
				// On a violation, the bytes passed beyond the valid frames
				// can only be the start of the bad frame that arrived in an
				// earlier read: nbio buffers them and never completes it.
				if code != tc.code || (fe != nil && (passed > max(want, split) || passed >= len(tc.stream))) ||
					(fe == nil && passed != want) {
					t.Fatalf("split %d: passed %d code %d (%v), want %d code %d", split, passed, code, fe, want, tc.code)
				}
				if fe == nil && !s.idle() {
					t.Fatalf("split %d: state not idle after complete frames: %+v", split, s)
				}
			}
		})
	}
}

func TestCheckHandshake(t *testing.T) {
	valid := func() *http.Request {
		r, _ := http.NewRequest(http.MethodGet, "http://h/v1/ws", nil)
		r.Header.Set("Upgrade", "websocket")
		r.Header.Set("Connection", "Upgrade")
		r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		r.Header.Set("Sec-WebSocket-Version", "13")
		return r
	}
	cases := []struct {
		name   string
		mutate func(*http.Request)
		status int
	}{
		{"valid", func(*http.Request) {}, 0},
		{"token lists, any case", func(r *http.Request) {
			r.Header.Set("Connection", "keep-alive,  UpGrade")
			r.Header.Set("Upgrade", "WEBSOCKET")
		}, 0},
		{"Connection on two lines", func(r *http.Request) {
			r.Header.Set("Connection", "keep-alive")
			r.Header.Add("Connection", "upgrade")
		}, 0},
		{"POST", func(r *http.Request) { r.Method = http.MethodPost }, 405},
		{"HTTP/1.0", func(r *http.Request) { r.ProtoMajor, r.ProtoMinor = 1, 0 }, 400},
		{"HTTP/2", func(r *http.Request) { r.ProtoMajor, r.ProtoMinor = 2, 0 }, 400},
		{"Upgrade token as a substring", func(r *http.Request) { r.Header.Set("Upgrade", "websocketx") }, 400},
		{"no Connection upgrade", func(r *http.Request) { r.Header.Set("Connection", "keep-alive") }, 400},
		{"key of 15 bytes", func(r *http.Request) { r.Header.Set("Sec-WebSocket-Key", "MDEyMzQ1Njc4OTAxMjM0") }, 400},
		{"key without padding", func(r *http.Request) { r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ") }, 400},
		{"two keys", func(r *http.Request) { r.Header.Add("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==") }, 400},
		{"no version", func(r *http.Request) { r.Header.Del("Sec-WebSocket-Version") }, 400},
		{"version 8", func(r *http.Request) { r.Header.Set("Sec-WebSocket-Version", "8") }, 426},
		{"version list", func(r *http.Request) { r.Header.Set("Sec-WebSocket-Version", "13, 8") }, 426},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := valid()
			tc.mutate(r)
			he := CheckHandshake(r)
			got := 0
			if he != nil {
				got = he.Status
				if !strings.Contains(he.Error(), he.Reason) {
					t.Errorf("Error() %q lacks the reason", he.Error())
				}
			}
			if got != tc.status {
				t.Fatalf("status %d (%v), want %d", got, he, tc.status)
			}
		})
	}
}

func BenchmarkFrameGuardScan(b *testing.B) {
	stream := bytes.Repeat(mframe(0x81, []byte(`{"type":"mark_read","ids":["n1"],"ref":"1"}`)), 20)
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		var s frameState
		if _, fe := s.scan(stream); fe != nil {
			b.Fatal(fe)
		}
	}
}
