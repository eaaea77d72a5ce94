package socketio

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
)

// Engine.IO v4 packet types, as the first byte of a text packet.
const (
	eioOpen    = '0'
	eioClose   = '1'
	eioPing    = '2'
	eioPong    = '3'
	eioMessage = '4'
	eioUpgrade = '5'
	eioNoop    = '6'
)

// recordSeparator joins packets in an HTTP long-polling payload (v4).
const recordSeparator = '\x1e'

// Pre-encoded control packets.
var (
	pktClose     = []byte{eioClose}
	pktPing      = []byte{eioPing}
	pktNoop      = []byte{eioNoop}
	pktProbePong = []byte("3probe")
)

// ErrMalformed is wrapped by every Engine.IO and Socket.IO decoding error.
var ErrMalformed = errors.New("socketio: malformed packet")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// enginePacket is one decoded Engine.IO packet. data aliases the input.
type enginePacket struct {
	typ    byte // eioOpen..eioNoop; eioMessage for binary data
	data   []byte
	binary bool
}

// decodeEnginePacket parses one text packet: a WebSocket text frame or one
// record of a polling payload. With base64 (polling only), a record starting
// with 'b' is a base64-encoded binary message.
func decodeEnginePacket(b []byte, base64OK bool) (enginePacket, error) {
	if len(b) == 0 {
		return enginePacket{}, malformed("empty engine.io packet")
	}
	switch c := b[0]; {
	case c >= eioOpen && c <= eioNoop:
		return enginePacket{typ: c, data: b[1:]}, nil
	case c == 'b' && base64OK:
		raw := make([]byte, base64.StdEncoding.DecodedLen(len(b)-1))
		n, err := base64.StdEncoding.Decode(raw, b[1:])
		if err != nil {
			return enginePacket{}, malformed("base64 attachment: %v", err)
		}
		return enginePacket{typ: eioMessage, data: raw[:n], binary: true}, nil
	default:
		return enginePacket{}, malformed("unknown engine.io packet type %q", c)
	}
}

// splitPayload calls fn for each record of a polling payload, in order, and
// stops at the first error.
func splitPayload(body []byte, fn func([]byte) error) error {
	for len(body) > 0 {
		rec := body
		if i := bytes.IndexByte(body, recordSeparator); i >= 0 {
			rec, body = body[:i], body[i+1:]
			if len(body) == 0 {
				return malformed("trailing record separator")
			}
		} else {
			body = nil
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
	return nil
}

// appendOpen appends the open packet of a new session.
func appendOpen(b []byte, id *sid, upgrade bool, c *Config) []byte {
	b = append(b, eioOpen)
	b = append(b, `{"sid":"`...)
	b = id.appendTo(b)
	b = append(b, `","upgrades":[`...)
	if upgrade {
		b = append(b, `"websocket"`...)
	}
	b = append(b, `],"pingInterval":`...)
	b = strconv.AppendInt(b, c.PingInterval.Milliseconds(), 10)
	b = append(b, `,"pingTimeout":`...)
	b = strconv.AppendInt(b, c.PingTimeout.Milliseconds(), 10)
	b = append(b, `,"maxPayload":`...)
	b = strconv.AppendInt(b, int64(c.MaxPayload), 10)
	return append(b, '}')
}
