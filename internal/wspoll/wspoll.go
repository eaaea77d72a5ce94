// Package wspoll is the nbio plumbing shared by Herald's two WebSocket
// endpoints, /v1/ws (internal/ws) and Socket.IO's websocket transport
// (internal/socketio): the upgrade that hands a socket to nbio's poller, the
// close reason of nbio's close errors, and the buffer of messages that reach
// a socket before its session is bound to it. Drop, the safe way to end a
// poller-served connection from another goroutine, serves SSE streams too.
//
// Where there is no event-loop poller (Windows), or when built with the tag
// herald_nopoller (to test that path on Linux), Upgrade serves each socket
// with one reading goroutine and one writing goroutine instead
// (upgrade_goroutine.go, stream.go): the transports see the same
// *websocket.Conn, callbacks and Outbound accounting either way.
package wspoll

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"

	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/nbhttp/websocket"

	"github.com/heraldhq/herald/internal/hub"
)

// Drop ends a poller-served connection from outside its poller (a timer,
// the hub's fan-out). On unix it shuts the socket down instead of closing
// it: the poller then sees the hang-up and closes the fd itself. A close(2)
// from another goroutine frees the fd number while the poller may still
// hold an event for it; when a new connection is registered under that
// number, the stale event closes the new connection (seen under connection
// churn as fresh sockets dropped with EOF). nbio marks a connection closed
// under its lock before closing the fd, so while Drop holds the lock and
// finds it open, the fd is still this connection's. Bytes already written
// are still sent before the FIN. Drop must not be called with c's lock held
// (nbio's write callbacks hold it). Connections of other types (the
// goroutine fallback's, see Upgrade) are closed.
func Drop(c net.Conn) {
	nc, ok := c.(*nbio.Conn)
	if !ok {
		_ = c.Close()
		return
	}
	dropPolled(nc)
}

// NBConn hands conn, a plain TCP socket, to nbio (SSE streams). On unix
// nbio dups the socket without close-on-exec: holding ForkLock across the
// dup and marking the copy keeps any forked process from inheriting it (see
// Upgrade). On Windows nbio wraps conn and reads it in a goroutine.
func NBConn(conn net.Conn) (*nbio.Conn, error) {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	nbc, err := nbio.NBConn(conn) // on unix: dups the socket and closes conn
	if err == nil {
		closeOnExec(nbc)
	}
	return nbc, err
}

// MaxFrameHeader is the largest header of an unmasked server frame.
const MaxFrameHeader = 10

// PutTextHeader writes the header of a final, unmasked text frame carrying n
// bytes into h (at least MaxFrameHeader long) and returns its length. Both
// WebSocket endpoints build complete frames with it, so that a delivery and
// the unread count that follows it leave in one write(2) (nbio's
// WriteMessage makes one write per message). Compression is off on both.
func PutTextHeader(h []byte, n int) int {
	h[0] = 0x80 | 0x1 // FIN, text (RFC 6455 §5.2)
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

// AppendTextFrame appends payload to b as one final, unmasked text frame.
func AppendTextFrame(b, payload []byte) []byte {
	var h [MaxFrameHeader]byte
	b = append(b, h[:PutTextHeader(h[:], len(payload))]...)
	return append(b, payload...)
}

// CloseReason maps the error nbio closed a socket with onto a close reason.
// A close frame with 1000, 1001 or no status (1005) is the client closing.
func CloseReason(err error) hub.CloseReason {
	var ce *websocket.CloseError
	var fe *FrameError
	switch {
	case err == nil, errors.Is(err, io.EOF):
		return hub.ReasonClientClosed
	case errors.As(err, &fe) && fe.Code == 1007:
		return hub.ReasonInvalidUTF8
	case errors.As(err, &fe):
		return hub.ReasonProtocolError
	case errors.As(err, &ce):
		if ce.Code == 1000 || ce.Code == 1001 || ce.Code == 1005 {
			return hub.ReasonClientClosed
		}
		return hub.ReasonProtocolError
	case errors.Is(err, nbio.ErrReadTimeout):
		return hub.ReasonPingTimeout
	case errors.Is(err, nbio.ErrOverflow), errors.Is(err, nbio.ErrWriteTimeout):
		return hub.ReasonSlowConsumer
	case errors.Is(err, websocket.ErrMessageTooLarge), errors.Is(err, websocket.ErrControlMessageTooBig):
		return hub.ReasonMessageTooBig
	case errors.Is(err, websocket.ErrInvalidUtf8):
		return hub.ReasonInvalidUTF8
	case errors.Is(err, websocket.ErrReserveBitSet), errors.Is(err, websocket.ErrInvalidControlFrame),
		errors.Is(err, websocket.ErrControlMessageFragmented), errors.Is(err, websocket.ErrInvalidFragmentMessage),
		errors.Is(err, websocket.ErrReservedMessageType), errors.Is(err, websocket.ErrInvalidCloseCode):
		return hub.ReasonProtocolError
	}
	return hub.ReasonTransportError
}

// Message is a copy of one WebSocket message.
type Message struct {
	Type websocket.MessageType
	Data []byte
}

// Early holds copies of the messages nbio handled before their socket's
// session was bound (a client may send as soon as it reads the 101 response,
// before the handler that upgraded it has bound the session). The socket's
// job queue orders Add, Take and Drop for one socket. The zero value holds
// nothing: set Max.
type Early struct {
	// Max is the most messages kept per socket; static.
	Max int

	mu sync.Mutex
	m  map[*websocket.Conn]*earlyQueue // guarded by mu
}

type earlyQueue struct {
	msgs     []Message
	bytes    int
	overflow bool // messages were dropped
}

// Add keeps a copy of a message for wsc. It reports false when wsc's queue
// overflowed (more than Max messages or maxBytes bytes): this message and
// every later one are dropped, and Take reports the overflow.
func (e *Early) Add(wsc *websocket.Conn, mt websocket.MessageType, data []byte, maxBytes int) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.m == nil {
		e.m = make(map[*websocket.Conn]*earlyQueue)
	}
	q := e.m[wsc]
	if q == nil {
		q = &earlyQueue{}
		e.m[wsc] = q
	}
	if q.overflow || len(q.msgs) >= e.Max || q.bytes+len(data) > maxBytes {
		q.overflow = true
		return false
	}
	q.bytes += len(data)
	q.msgs = append(q.msgs, Message{Type: mt, Data: bytes.Clone(data)})
	return true
}

// Take removes and returns the messages kept for wsc, and whether some
// were dropped.
func (e *Early) Take(wsc *websocket.Conn) (msgs []Message, overflow bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	q := e.m[wsc]
	if q == nil {
		return nil, false
	}
	delete(e.m, wsc)
	return q.msgs, q.overflow
}

// Drop forgets wsc.
func (e *Early) Drop(wsc *websocket.Conn) { e.Take(wsc) }
