package wspoll

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/nbhttp/websocket"

	"github.com/heraldhq/herald/internal/hub"
)

func TestCloseReason(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want hub.CloseReason
	}{
		{nil, hub.ReasonClientClosed},
		{io.EOF, hub.ReasonClientClosed},
		{&websocket.CloseError{Code: 1000}, hub.ReasonClientClosed},
		{&websocket.CloseError{Code: 1005}, hub.ReasonClientClosed},
		{&websocket.CloseError{Code: 1002}, hub.ReasonProtocolError},
		{fmt.Errorf("read: %w", nbio.ErrReadTimeout), hub.ReasonPingTimeout},
		{nbio.ErrOverflow, hub.ReasonSlowConsumer},
		{websocket.ErrMessageTooLarge, hub.ReasonMessageTooBig},
		{websocket.ErrInvalidUtf8, hub.ReasonInvalidUTF8},
		{&FrameError{Code: 1002}, hub.ReasonProtocolError},
		{&FrameError{Code: 1007}, hub.ReasonInvalidUTF8},
		{websocket.ErrReserveBitSet, hub.ReasonProtocolError},
		{errors.New("connection reset"), hub.ReasonTransportError},
	} {
		if got := CloseReason(tc.err); got != tc.want {
			t.Errorf("CloseReason(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestEarly(t *testing.T) {
	e := Early{Max: 2}
	a, b := &websocket.Conn{}, &websocket.Conn{}
	buf := []byte("one")
	if !e.Add(a, websocket.TextMessage, buf, 100) {
		t.Fatal("first message refused")
	}
	copy(buf, "XXX") // nbio reuses its buffer: the kept message is a copy
	if !e.Add(b, websocket.BinaryMessage, []byte("b"), 100) || !e.Add(a, websocket.TextMessage, []byte("two"), 100) {
		t.Fatal("second message refused")
	}
	if e.Add(a, websocket.TextMessage, []byte("three"), 100) {
		t.Fatal("a third message above Max accepted")
	}
	if e.Add(a, websocket.TextMessage, []byte("4"), 100) {
		t.Fatal("a message after an overflow accepted")
	}
	msgs, overflow := e.Take(a)
	if !overflow || len(msgs) != 2 || string(msgs[0].Data) != "one" || string(msgs[1].Data) != "two" {
		t.Fatalf("take a: %v, overflow %v", msgs, overflow)
	}
	if msgs, overflow := e.Take(a); msgs != nil || overflow {
		t.Fatal("taken twice")
	}
	if e.Add(b, websocket.TextMessage, make([]byte, 100), 100) {
		t.Fatal("bytes above maxBytes accepted")
	}
	e.Drop(b)
	if msgs, overflow := e.Take(b); msgs != nil || overflow {
		t.Fatal("dropped socket still held")
	}
}

// TestAppendTextFrame: the header length switches at 126 and 65536 bytes,
// and the frame reads back with a standard decoder's rules.
func TestAppendTextFrame(t *testing.T) {
	for _, n := range []int{0, 125, 126, 65535, 65536} {
		payload := bytes.Repeat([]byte{'x'}, n)
		f := AppendTextFrame([]byte("prefix"), payload)[len("prefix"):]
		if f[0] != 0x81 {
			t.Fatalf("%d: first byte %#x", n, f[0])
		}
		var got, hl int
		switch l := int(f[1]); {
		case l < 126:
			got, hl = l, 2
		case l == 126:
			got, hl = int(binary.BigEndian.Uint16(f[2:4])), 4
		default:
			got, hl = int(binary.BigEndian.Uint64(f[2:10])), 10
		}
		if got != n || len(f) != hl+n || !bytes.Equal(f[hl:], payload) {
			t.Fatalf("%d: length %d, header %d, frame %d bytes", n, got, hl, len(f))
		}
	}
}

func TestRegistry(t *testing.T) {
	var r Registry[string, int]
	r.Init()
	for i := 0; i < 100; i++ {
		r.Add(string(rune('a'+i%26))+string(rune('0'+i/26)), i)
	}
	r.Add("a0", 1000) // replaces, does not count twice
	if r.Len() != 100 {
		t.Fatalf("len %d, want 100", r.Len())
	}
	if v, ok := r.Get("a0"); !ok || v != 1000 {
		t.Fatalf("get a0 = %d %v", v, ok)
	}
	r.Remove("a0", func(v int) bool { return v == 0 }) // not the same value: kept
	if r.Len() != 100 {
		t.Fatal("removed a different value")
	}
	r.Remove("a0", nil)
	if _, ok := r.Get("a0"); ok || r.Len() != 99 {
		t.Fatalf("a0 still there, len %d", r.Len())
	}
	sum := 0
	r.Each(func(v int) { sum++ })
	if sum != 99 || len(r.Snapshot(nil)) != 99 {
		t.Fatalf("each saw %d", sum)
	}
}
