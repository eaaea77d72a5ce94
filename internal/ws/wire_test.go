package ws

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/hub"
	"github.com/heraldhq/herald/internal/notification"
)

// readFrames splits b into the payloads of final, unmasked text frames.
func readFrames(t *testing.T, b []byte) []string {
	t.Helper()
	var out []string
	for len(b) > 0 {
		if len(b) < 2 || b[0] != 0x81 || b[1]&0x80 != 0 {
			t.Fatalf("bad frame header % x", b[:min(len(b), 2)])
		}
		n, hl := int(b[1]&0x7f), 2
		switch n {
		case 126:
			n, hl = int(binary.BigEndian.Uint16(b[2:4])), 4
		case 127:
			n, hl = int(binary.BigEndian.Uint64(b[2:10])), 10
		}
		if len(b) < hl+n {
			t.Fatalf("frame says %d bytes, %d left", n, len(b)-hl)
		}
		out = append(out, string(b[hl:hl+n]))
		b = b[hl+n:]
	}
	return out
}

func TestAppendWire(t *testing.T) {
	pos := notification.Position{User: 7, Tenant: 3}
	for _, size := range []int{10, 125, 126, 200, 65535, 70000} {
		title := strings.Repeat("x", size)
		payload := []byte(`{"id":"n1","title":"` + title + `"`)
		f := hub.Frame{Kind: hub.FrameNotification, Payload: payload, Position: pos, Unread: []byte(`{"count":42}`)}
		prefix := []byte("keep")
		b := appendWire(prefix, f)
		if string(b[:4]) != "keep" {
			t.Fatalf("size %d: prefix overwritten", size)
		}
		got := readFrames(t, b[4:])
		want0 := string(appendFrame(nil, hub.Frame{Kind: hub.FrameNotification, Payload: payload, Position: pos}))
		if len(got) != 2 || got[0] != want0 || got[1] != `{"type":"unread","count":42}` {
			t.Fatalf("size %d: frames %q", size, got)
		}
	}
	// Without Unread: one frame.
	got := readFrames(t, appendWire(nil, hub.Frame{Kind: hub.FrameDeleted, Payload: []byte(`{"id":"n1"}`)}))
	if len(got) != 1 || got[0] != `{"type":"notification:deleted","id":"n1"}` {
		t.Fatalf("frames %q", got)
	}
}
