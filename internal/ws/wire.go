package ws

import (
	"github.com/heraldhq/herald/internal/hub"
	"github.com/heraldhq/herald/internal/wspoll"
)

// Hub frames are written as complete WebSocket frames built here, so that a
// notification and the unread count that follows it leave in one write(2)
// (nbio's WriteMessage would make one write per message). Server frames are
// never masked, and compression is off on this endpoint.

// appendWire appends f as one text frame, and the unread frame that follows
// it (f.Unread) as a second, to b.
func appendWire(b []byte, f hub.Frame) []byte { return f.AppendPair(b, appendTextFrame) }

// appendTextFrame appends f alone (not its Unread follower) as one text
// frame: it reserves room for the largest header, appends the JSON, then
// moves the JSON down to sit right after the header it needs.
func appendTextFrame(b []byte, f hub.Frame) []byte {
	start := len(b)
	b = append(b, make([]byte, wspoll.MaxFrameHeader)...)
	b = appendFrame(b, f)
	n := len(b) - start - wspoll.MaxFrameHeader
	var h [wspoll.MaxFrameHeader]byte
	hl := wspoll.PutTextHeader(h[:], n)
	copy(b[start:], h[:hl])
	copy(b[start+hl:], b[start+wspoll.MaxFrameHeader:])
	return b[:start+hl+n]
}

// writeWire writes complete frames (from appendWire) to the socket, counting
// their bytes against the soft buffer cap like write does. The embedded
// nbio.Conn's Write runs under nbio's connection lock, so these frames never
// interleave with a WriteMessage (pong, close).
func (c *conn) writeWire(b []byte) error {
	return c.Push(int64(len(b)), c.srv.cfg.WriteBufferBytes, false,
		func() error { _, err := c.ws.Conn.Write(b); return err })
}
