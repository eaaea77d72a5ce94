package wspoll

import (
	"encoding/binary"
	"net"
	"time"
	"unicode/utf8"

	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/nbhttp"
	"github.com/lesismal/nbio/nbhttp/websocket"
)

// The frame guard checks every byte a client sends against the framing
// rules of RFC 6455 before nbio's parser sees it. nbio (v1.6.8) does not
// check that client frames are masked, and on the other framing errors
// (RSV bits, reserved opcodes, fragmented control frames, a continuation
// without a start) it drops the TCP connection without the close frame the
// RFC asks for; it answers a control frame over 125 bytes with 1009 instead
// of 1002, and with its UTF-8 check off (Herald checks text messages
// itself, to answer 1007) it accepts a close reason that is not UTF-8.
//
// The guard sits in the engine's data callback (installed by NewEngine),
// so it sees a connection's bytes from the first one after the upgrade,
// in the poller, in order. It keeps no state for a connection that is
// between frames with no fragmented message open (an idle socket costs
// nothing); otherwise a small frameState, dropped when the socket closes.
// On a violation it passes the valid frames before it to nbio, then fails
// the connection (§7.1.7): a close frame with 1002 (1007 for a close reason
// that is not UTF-8), no further frame parsed, the write side shut down so
// that nothing else is sent after the close frame, and the socket dropped
// after FailGrace unless the client closes it first.

// FailGrace is how long a failed connection waits for the client to close
// the TCP connection after our close frame.
const FailGrace = 2 * time.Second

// FrameError is a client frame that breaks RFC 6455. The transports see it
// as the error their socket closed with (CloseReason maps it).
type FrameError struct {
	Code int    // 1002, or 1007 for a close reason that is not UTF-8
	Rule string // the rule broken, with its RFC section
}

func (e *FrameError) Error() string { return "wspoll: " + e.Rule }

// Opcodes (RFC 6455 §5.2), as nbio names them.
const (
	opContinuation = byte(websocket.FragmentMessage)
	opText         = byte(websocket.TextMessage)
	opBinary       = byte(websocket.BinaryMessage)
	opClose        = byte(websocket.CloseMessage)
	opPong         = byte(websocket.PongMessage)
)

// frameState is where a connection's byte stream is in the frame grammar.
// It is owned by the connection's poller.
type frameState struct {
	hdr        [14]byte // the current frame's header, while incomplete
	nhdr       int      // bytes of hdr received
	left       uint64   // payload bytes of the current frame still to come
	inPayload  bool     // the header is complete; left bytes follow
	fragmented bool     // a fragmented data message is open (§5.4)
	isClose    bool     // the current frame is a close frame
	mask       [4]byte  // the current close frame's mask
	closeBody  []byte   // the current close frame's payload so far, unmasked
	failed     bool     // the connection failed: discard everything
}

func (s *frameState) idle() bool {
	return !s.inPayload && s.nhdr == 0 && !s.fragmented && !s.failed
}

// headerLen is the length of a header starting with b0 b1.
func headerLen(b1 byte) int {
	n := 2 + 4 // mask key: checked before this is used
	switch b1 & 0x7F {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	return n
}

// checkStart checks what the first two bytes of a frame say (§5.2, §5.4,
// §5.5, §5.1).
func (s *frameState) checkStart(b0, b1 byte) *FrameError {
	op := b0 & 0x0F
	fin := b0&0x80 != 0
	switch {
	case b0&0x70 != 0:
		return &FrameError{1002, "RSV bits set without a negotiated extension (RFC 6455 §5.2)"}
	case op > opBinary && op < opClose || op > opPong:
		return &FrameError{1002, "reserved opcode (RFC 6455 §5.2)"}
	case op >= opClose && !fin:
		return &FrameError{1002, "fragmented control frame (RFC 6455 §5.5)"}
	case op >= opClose && b1&0x7F > 125:
		return &FrameError{1002, "control frame payload over 125 bytes (RFC 6455 §5.5)"}
	case op == opContinuation && !s.fragmented:
		return &FrameError{1002, "continuation frame without a message to continue (RFC 6455 §5.4)"}
	case (op == opText || op == opBinary) && s.fragmented:
		return &FrameError{1002, "new data message inside a fragmented one (RFC 6455 §5.4)"}
	case b1&0x80 == 0:
		return &FrameError{1002, "client frame not masked (RFC 6455 §5.1)"}
	}
	return nil
}

// scan advances s over data. It returns how many bytes of data may be
// passed to nbio (all of them, or those before the frame that broke a
// rule) and the violation, if any.
func (s *frameState) scan(data []byte) (int, *FrameError) {
	frameStart := 0 // where the current frame began in data (0 if before)
	i := 0
	for i < len(data) {
		if s.inPayload {
			n := len(data) - i
			if uint64(n) > s.left {
				n = int(s.left)
			}
			if s.isClose {
				off := len(s.closeBody)
				s.closeBody = append(s.closeBody, data[i:i+n]...)
				for j := off; j < len(s.closeBody); j++ {
					s.closeBody[j] ^= s.mask[j&3]
				}
			}
			i += n
			s.left -= uint64(n)
			if s.left > 0 {
				break
			}
			if fe := s.endFrame(); fe != nil {
				return frameStart, fe
			}
			frameStart = i
			continue
		}
		// Header bytes.
		s.hdr[s.nhdr] = data[i]
		s.nhdr++
		i++
		if s.nhdr == 2 {
			if fe := s.checkStart(s.hdr[0], s.hdr[1]); fe != nil {
				return frameStart, fe
			}
		}
		if s.nhdr < 2 || s.nhdr < headerLen(s.hdr[1]) {
			continue
		}
		hl := s.nhdr
		var n uint64
		switch s.hdr[1] & 0x7F {
		case 126:
			n = uint64(binary.BigEndian.Uint16(s.hdr[2:4]))
		case 127:
			n = binary.BigEndian.Uint64(s.hdr[2:10])
			if n>>63 != 0 {
				return frameStart, &FrameError{1002, "64-bit payload length with its high bit set (RFC 6455 §5.2)"}
			}
		default:
			n = uint64(s.hdr[1] & 0x7F)
		}
		op := s.hdr[0] & 0x0F
		fin := s.hdr[0]&0x80 != 0
		if op < opClose {
			s.fragmented = !fin
		}
		s.isClose = op == opClose
		if s.isClose {
			copy(s.mask[:], s.hdr[hl-4:hl])
			s.closeBody = make([]byte, 0, n)
		}
		s.nhdr = 0
		s.left = n
		s.inPayload = true
		if n == 0 { // an empty payload ends the frame here
			if fe := s.endFrame(); fe != nil {
				return frameStart, fe
			}
			frameStart = i
		}
	}
	return len(data), nil
}

// endFrame closes the current frame once its payload is in.
func (s *frameState) endFrame() *FrameError {
	s.inPayload = false
	if !s.isClose {
		return nil
	}
	body := s.closeBody
	s.isClose, s.closeBody = false, nil
	return checkClose(body)
}

// checkClose checks a client close frame's payload (§5.5.1, §7.4).
func checkClose(body []byte) *FrameError {
	if len(body) == 0 {
		return nil
	}
	if len(body) == 1 {
		return &FrameError{1002, "close payload of one byte (RFC 6455 §5.5.1)"}
	}
	if !ValidCloseCode(int(binary.BigEndian.Uint16(body))) {
		return &FrameError{1002, "invalid close code (RFC 6455 §7.4)"}
	}
	if !utf8.Valid(body[2:]) {
		return &FrameError{1007, "close reason not UTF-8 (RFC 6455 §5.5.1)"}
	}
	return nil
}

// ValidCloseCode reports whether a peer may send code in a close frame
// (RFC 6455 §7.4.1, §7.4.2; the IANA registry adds 1012-1014): 1005, 1006
// and 1015 are never sent, 1016-2999 are reserved, 3000-4999 are for
// libraries and applications.
func ValidCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// guard is the engine's frame guard: the state of connections that are
// not idle.
type guard struct {
	states Registry[*nbio.Conn, *frameState]
}

// install puts the guard in front of e's per-connection data handlers.
func (g *guard) install(e *nbhttp.Engine) {
	g.states.Init()
	e.Engine.OnData(g.onData)
	e.OnClose(func(c net.Conn, _ error) {
		if nc, ok := c.(*nbio.Conn); ok {
			g.states.Remove(nc, nil)
		}
	})
}

// onData runs in c's poller for every read.
func (g *guard) onData(c *nbio.Conn, data []byte) {
	st, tracked := g.states.Get(c)
	var local frameState
	if !tracked {
		st = &local
	}
	if st.failed {
		return
	}
	n, fe := st.scan(data)
	if n > 0 {
		c.DataHandler()(c, data[:n])
	}
	if fe != nil {
		st.failed = true
	}
	switch {
	case !tracked && !st.idle():
		kept := local // the state outlives this read
		g.states.Add(c, &kept)
	case tracked && st.idle():
		g.states.Remove(c, nil)
	}
	if fe != nil {
		fail(c, fe)
	}
}

// fail fails a connection (RFC 6455 §7.1.7): close frame, no more
// frames either way, TCP close by the client or after FailGrace. It runs
// in the socket's job queue, behind the messages before the violation and
// in order with the transports' bind, so nothing they write can follow the
// close frame.
func fail(c *nbio.Conn, fe *FrameError) {
	wsc, ok := c.Session().(*websocket.Conn)
	if !ok {
		_ = c.Close()
		return
	}
	wsc.SetCloseError(fe)
	wsc.Execute(func() { failNow(c, wsc, fe) })
	time.AfterFunc(FailGrace, func() { Drop(c) })
}

func failNow(c *nbio.Conn, wsc *websocket.Conn, fe *FrameError) {
	body := make([]byte, 2, 2+len("protocol_error"))
	binary.BigEndian.PutUint16(body, uint16(fe.Code))
	if fe.Code == 1007 {
		body = append(body, "invalid_utf8"...)
	} else {
		body = append(body, "protocol_error"...)
	}
	write := func() error { return wsc.WriteMessage(websocket.CloseMessage, body) }
	drained := true
	if o, ok := wsc.Session().(outboundOf); ok {
		ob := o.outbound()
		_ = ob.Push(FrameLen(len(body)), 0, true, write)
		ob.failed.Store(true) // the transport sends nothing more, not even its close frame
		drained = ob.Queued() == 0
	} else {
		_ = write() // not bound yet: nothing else was queued
	}
	if drained { // the close frame is in the kernel: it is the last thing we send
		c.Lock()
		if closed, _ := c.IsClosed(); !closed {
			shutdownWrite(c)
		}
		c.Unlock()
	}
}

// AppendClientFrame appends a client frame to b: b0 is its first byte
// (FIN, RSV bits, opcode, as given, valid or not), the payload is masked
// with mask, or sent unmasked when mask is nil. It is for tests and load
// generators that speak raw RFC 6455.
func AppendClientFrame(b []byte, b0 byte, payload []byte, mask *[4]byte) []byte {
	mbit := byte(0x80)
	if mask == nil {
		mbit = 0
	}
	b = append(b, b0)
	switch n := len(payload); {
	case n < 126:
		b = append(b, mbit|byte(n))
	case n <= 65535:
		b = append(b, mbit|126, byte(n>>8), byte(n))
	default:
		b = append(b, mbit|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	if mask == nil {
		return append(b, payload...)
	}
	b = append(b, mask[:]...)
	for i, p := range payload {
		b = append(b, p^mask[i&3])
	}
	return b
}
