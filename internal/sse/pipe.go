package sse

import (
	"errors"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/heraldhq/herald/internal/hub"
	"github.com/heraldhq/herald/internal/session"
)

// pipe is a stream served by its handler goroutine (HTTP/2, TLS, or
// DisableHijack): the wire of its session.Session. It implements
// session.Transport (and so hub.Sender): Send appends the encoded event to a
// bounded buffer and wakes the handler, which writes and flushes it.
type pipe struct {
	limit int // static: WriteBufferBytes

	mu     sync.Mutex
	buf    []byte          // guarded by mu: encoded events not yet written
	closed bool            // guarded by mu
	reason hub.CloseReason // guarded by mu: set with closed
	wake   chan struct{}   // capacity 1: something to do
}

var _ session.Transport = (*pipe)(nil)

func (p *pipe) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Send implements hub.Sender.
func (p *pipe) Send(f hub.Frame) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errClosing
	}
	n := len(p.buf)
	p.buf = appendFrame(p.buf, f)
	if len(p.buf) > p.limit {
		p.buf = p.buf[:n]
		return errBufferFull
	}
	p.signal()
	return nil
}

// Reply implements session.Transport. An event stream carries no client
// requests, so the session never has a reply to send on it.
func (p *pipe) Reply(*session.Reply) error { return nil }

// Close implements hub.Sender: the handler writes what is queued, the close
// event, and returns.
func (p *pipe) Close(reason hub.CloseReason) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed, p.reason = true, reason
	p.signal()
}

// take swaps out the queued bytes (reusing spare as the next buffer).
func (p *pipe) take(spare []byte) (out []byte, closed bool, reason hub.CloseReason) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out, p.buf = p.buf, spare[:0]
	return out, p.closed, p.reason
}

// serveInHandler serves a stream from the handler goroutine: one select over
// the request context, server shutdown, heartbeats and queued events, with a
// write deadline on every write (which also lifts the http.Server's
// WriteTimeout for this response) and a flush after it. When it returns,
// the session has ended and the admission slot is released.
func (s *Server) serveInHandler(w http.ResponseWriter, r *http.Request, p *pipe, sess *session.Session, sr streamRequest) {
	s.wg.Add(1)
	defer s.wg.Done()
	reason := hub.ReasonClientClosed // the hub client's close, when it is still open at the end
	defer func() { s.finish(sess, reason) }()

	rc := http.NewResponseController(w)
	// The server's ReadTimeout would otherwise end the request context
	// (net/http's background read fails) in the middle of a long stream.
	_ = rc.SetReadDeadline(time.Time{})
	w.WriteHeader(http.StatusOK)
	if err := s.writeFlush(w, rc, appendRetry(nil, s.cfg.Retry.Milliseconds())); err != nil {
		s.log.Debug("stream write failed", "conn", sess.ID(), "err", err)
		return
	}
	if !attached(sess.Attach(sr.p, sr.since), func(cr hub.CloseReason) { s.writeClose(w, rc, cr) }) {
		return
	}
	s.join(sess, sr.topics)
	hb := time.NewTicker(s.cfg.HeartbeatInterval)
	defer hb.Stop()
	stop := s.stop
	var spare []byte
	for {
		select {
		case <-r.Context().Done():
			return
		case <-stop:
			stop = nil
			sess.Close(hub.ReasonShutdown) // wakes us with the close below
		case <-hb.C:
			if err := s.writeFlush(w, rc, heartbeat); err != nil {
				reason = writeErrReason(err)
				return
			}
		case <-p.wake:
			out, closed, cr := p.take(spare)
			if len(out) > 0 {
				if err := s.writeFlush(w, rc, out); err != nil {
					reason = writeErrReason(err)
					return
				}
			}
			spare = nil // never the buffer p.buf now uses
			if cap(out) <= 64<<10 {
				spare = out[:0]
			}
			if closed {
				s.writeClose(w, rc, cr)
				return
			}
		}
	}
}

// writeClose writes the close event (and the drain retry) when the reason
// calls for one.
func (s *Server) writeClose(w http.ResponseWriter, rc *http.ResponseController, reason hub.CloseReason) {
	if reason == hub.ReasonTransportError || reason == hub.ReasonClientClosed {
		return
	}
	b := appendClose(nil, reason)
	if reason == hub.ReasonShutdown {
		b = appendRetry(b, s.shutdownRetry().Milliseconds())
	}
	_ = s.writeFlush(w, rc, b)
}

func (s *Server) writeFlush(w http.ResponseWriter, rc *http.ResponseController, b []byte) error {
	if err := rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	if _, err := w.Write(b); err != nil {
		return err
	}
	return rc.Flush()
}

func writeErrReason(err error) hub.CloseReason {
	var ne net.Error
	if errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return hub.ReasonSlowConsumer
	}
	return hub.ReasonTransportError
}
