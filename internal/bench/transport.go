package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
)

// Transport opens client sessions of one kind (WebSocket, SSE, Socket.IO).
// Implementations must be safe for concurrent use.
type Transport interface {
	// Dial connects, authenticates and waits for the server's ready message.
	// Messages that arrive after it stay buffered for Session.Read.
	Dial(ctx context.Context, t DialTarget) (Session, Position, error)
}

// Session is one open client connection.
type Session interface {
	// Read hands server messages to sink until the session ends and returns
	// why (a *CloseError when the server closed it with a code).
	Read(sink Sink) error
	// Close ends the session; graceful first sends the transport's close
	// handshake. Safe to call concurrently with Read and more than once.
	Close(graceful bool)
}

// Sink receives what a session reads. Calls come from the session's Read
// goroutine only; *Delivery is valid only during the call.
type Sink interface {
	Notification(d *Delivery)
	Resync(p Position)
	Malformed(msg []byte)
}

// DialTarget is where and as whom to connect.
type DialTarget struct {
	BaseURL string       // http://127.0.0.1:8080 (path prefix allowed)
	Local   *net.TCPAddr // source address to bind, nil for any
	Token   string       // user JWT
	Since   string       // resume position; "" starts at the head
	// AuthMessage sends the token in the first message instead of the
	// Authorization header of the handshake.
	AuthMessage bool
	// Topic, when set, is subscribed to once the session is ready (ws only).
	Topic string
	// Timing, when set, receives the TCP connect's figures.
	Timing *DialTiming
}

// DialTiming is how a session's TCP connect went.
type DialTiming struct {
	ConnectNs  int64 // connect() to established
	SynRetrans int   // SYNs sent again (Linux; 0 elsewhere)
}

// CloseError is a session closed by the server with a close code.
type CloseError struct {
	Code   int
	Reason string
}

func (e *CloseError) Error() string {
	return "bench: closed by server: " + strconv.Itoa(e.Code) + " " + e.Reason
}

// HandshakeError is a refused upgrade (HTTP status other than 101).
type HandshakeError struct {
	Status int
}

func (e *HandshakeError) Error() string {
	return "bench: handshake refused: HTTP " + strconv.Itoa(e.Status)
}

// transports are the known transports by name.
var transports = map[string]Transport{
	"ws":       wsTransport{},
	"sse":      sseTransport{},
	"socketio": sioTransport{},
}

// transportNames lists the registered transports for help and errors.
func transportNames() []string {
	names := make([]string, 0, len(transports))
	for n := range transports {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func transportFor(name string) (Transport, error) {
	t, ok := transports[name]
	if !ok {
		return nil, fmt.Errorf("bench: unknown transport %q (have %v)", name, transportNames())
	}
	return t, nil
}

// closeCode extracts the server's close code from a session error, 0 if none.
func closeCode(err error) int {
	var ce *CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	var he *HandshakeError
	if errors.As(err, &he) {
		return he.Status
	}
	return 0
}
