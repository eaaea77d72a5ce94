package wspoll

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/lesismal/nbio"
)

// DropFlushTimeout bounds how long a closed stream keeps writing the bytes
// queued before its Close (the close frame, usually) before it closes the
// socket.
const DropFlushTimeout = time.Second

// stream is a socket served by goroutines instead of the poller (the
// fallback Upgrade, upgrade_goroutine.go). Its reader goroutine reads it
// through the embedded net.Conn. Write hands the kernel what it takes at
// once without blocking (tryWrite; on unix, as nbio's Write does) and
// queues the rest for the stream's writer goroutine, so that a write never
// blocks its caller (the hub's fan-out) on a slow client. Like nbio's write buffer, the queue has
// a hard cap (nbio.ErrOverflow above it, and the stream ends); the
// transport's Outbound soft cap closes a slow client before that. The
// writer reports the bytes the kernel took (onWritten), as the engine's
// written-size callback does for polled sockets.
//
// Close stops reading at once and lets the writer flush what was queued for
// up to DropFlushTimeout; then the writer closes the socket. The reader then
// sees the error that ended the stream: io.EOF after Close (a shutdown, as
// on a polled socket), the write error, or nbio.ErrOverflow.
type stream struct {
	net.Conn                // static: the socket
	hardCap   int           // static: most bytes queued; 0: no cap
	onWritten func(n int)   // static
	done      chan struct{} // closed once the writer has closed the socket

	mu      sync.Mutex
	wake    sync.Cond // on mu: bytes queued or closing
	pending []byte    // guarded by mu: queued, not yet taken by the writer
	writing bool      // guarded by mu: the writer has a batch in flight
	queued  int       // guarded by mu: pending plus the writer's batch in flight
	closing bool      // guarded by mu: Close was called
	err     error     // guarded by mu: what ended the stream (write error, overflow)
}

func newStream(c net.Conn, hardCap int, onWritten func(int)) *stream {
	s := &stream{Conn: c, hardCap: hardCap, onWritten: onWritten, done: make(chan struct{})}
	s.wake.L = &s.mu
	go s.write()
	return s
}

// Write queues b for the writer. It never blocks on the client.
func (s *stream) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.err != nil:
		return 0, s.err
	case s.closing:
		return 0, net.ErrClosed
	case s.hardCap > 0 && s.queued+len(b) > s.hardCap:
		s.endLocked(nbio.ErrOverflow)
		return 0, nbio.ErrOverflow
	}
	total := len(b)
	if len(s.pending) == 0 && !s.writing {
		// Idle writer: hand the kernel what it takes now, without blocking
		// (as nbio's Write does); queue the rest.
		if n := tryWrite(s.Conn, b); n > 0 {
			if s.onWritten != nil {
				s.onWritten(n)
			}
			if b = b[n:]; len(b) == 0 {
				return total, nil
			}
		}
	}
	s.pending = append(s.pending, b...)
	s.queued += len(b)
	s.wake.Signal()
	return total, nil
}

// Read reads the socket; once the stream has ended, its error is the
// reason.
func (s *stream) Read(b []byte) (int, error) {
	n, err := s.Conn.Read(b)
	if err != nil {
		s.mu.Lock()
		switch {
		case s.err != nil:
			err = s.err
		case s.closing && (errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, net.ErrClosed)):
			err = io.EOF
		}
		s.mu.Unlock()
	}
	return n, err
}

// Close ends the stream (idempotent); see stream.
func (s *stream) Close() error {
	s.mu.Lock()
	s.endLocked(nil)
	s.mu.Unlock()
	return nil
}

// endLocked starts the end of the stream, with err as the reason unless
// one is already known. s.mu is held.
func (s *stream) endLocked(err error) {
	if s.err == nil {
		s.err = err
	}
	if s.closing {
		return
	}
	s.closing = true
	now := time.Now()
	_ = s.Conn.SetReadDeadline(now) // the reader stops at once
	_ = s.Conn.SetWriteDeadline(now.Add(DropFlushTimeout))
	s.wake.Signal()
}

// write is the writer goroutine: it writes what was queued, in batches,
// until the stream ends, then closes the socket.
func (s *stream) write() {
	defer close(s.done)
	defer s.Conn.Close()
	var batch []byte
	for {
		s.mu.Lock()
		for len(s.pending) == 0 && !s.closing {
			s.wake.Wait()
		}
		if len(s.pending) == 0 || s.err != nil { // closing, flushed (or failed)
			s.mu.Unlock()
			return
		}
		batch, s.pending = s.pending, batch[:0]
		s.writing = true
		s.mu.Unlock()

		n, err := s.Conn.Write(batch)
		if n > 0 && s.onWritten != nil {
			s.onWritten(n)
		}
		s.mu.Lock()
		s.writing = false
		s.queued -= len(batch)
		if err != nil {
			s.endLocked(err)
		}
		s.mu.Unlock()
	}
}
