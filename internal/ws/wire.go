package ws

import (
	"encoding/binary"

	"github.com/heraldhq/herald/internal/hub"
)

// Hub frames are written as complete WebSocket frames built here, so that a
// notification and the unread count that follows it leave in one write(2)
// (nbio's WriteMessage would make one write per message). Server frames are
// never masked, and compression is off on this endpoint.

// maxFrameHeader is the largest header of an unmasked server frame.
const maxFrameHeader = 10

// websocketText is the text opcode (RFC 6455 §5.2).
const websocketText = 0x1

// appendWire appends f as one text frame, and the unread frame that follows
// it (f.Unread) as a second, to b.
func appendWire(b []byte, f hub.Frame) []byte {
	b = appendTextFrame(b, f)
	if f.Unread != nil {
		b = appendTextFrame(b, hub.Frame{Kind: hub.FrameUnread, Payload: f.Unread})
	}
	return b
}

// appendTextFrame appends f alone (not its Unread follower) as one text
// frame: it reserves room for the largest header, appends the JSON, then
// moves the JSON down to sit right after the header it needs.
func appendTextFrame(b []byte, f hub.Frame) []byte {
	start := len(b)
	b = append(b, make([]byte, maxFrameHeader)...)
	b = appendFrame(b, f)
	n := len(b) - start - maxFrameHeader
	var h [maxFrameHeader]byte
	hl := putTextHeader(h[:], n)
	copy(b[start:], h[:hl])
	copy(b[start+hl:], b[start+maxFrameHeader:])
	return b[:start+hl+n]
}

// putTextHeader writes the header of a final, unmasked text frame carrying n
// bytes into h and returns its length.
func putTextHeader(h []byte, n int) int {
	h[0] = 0x80 | websocketText
	switch {
	case n < 126:
		h[1] = byte(n)
		return 2
	case n <= 65535:
		h[1] = 126
		binary.BigEndian.PutUint16(h[2:4], uint16(n))
		return 4
	}
	h[1] = 127
	binary.BigEndian.PutUint64(h[2:10], uint64(n))
	return 10
}

// writeWire writes complete frames (from appendWire) to the socket, counting
// their bytes against the soft buffer cap like write does.
func (c *conn) writeWire(b []byte) error {
	n := int64(len(b))
	if c.queued.Load()+n > int64(c.srv.cfg.WriteBufferBytes) {
		return errBufferFull
	}
	c.queued.Add(n)
	// The embedded nbio.Conn: one Write, under nbio's connection lock, so
	// these frames never interleave with a WriteMessage (pong, close).
	if _, err := c.ws.Conn.Write(b); err != nil {
		c.queued.Add(-n)
		return err
	}
	return nil
}
