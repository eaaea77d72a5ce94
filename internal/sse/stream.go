package sse

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/lesismal/nbio"

	"github.com/heraldhq/herald/internal/audit"
	"github.com/heraldhq/herald/internal/hub"
	"github.com/heraldhq/herald/internal/session"
	"github.com/heraldhq/herald/internal/wspoll"
)

var (
	errBufferFull = errors.New("sse: outbound buffer full")
	errClosing    = fmt.Errorf("sse: stream closing: %w", hub.ErrSenderClosed)
	errUnexpected = errors.New("sse: client sent data on an event stream")
)

// stream is one hijacked event stream served by the nbio poller: the wire
// of its session.Session. It implements session.Transport (and so
// hub.Sender).
type stream struct {
	srv  *Server          // static
	sess *session.Session // static: set before the stream is shared
	nbc  *nbio.Conn       // static: set before the stream is registered

	gone     atomic.Bool  // the connection is closed (onClose ran)
	queued   atomic.Int64 // bytes handed to nbio and not yet taken by the kernel
	progress atomic.Int64 // unix ns of the last write progress (see stalled)
	closing  atomic.Bool  // the close event has been written; no more events
}

var _ session.Transport = (*stream)(nil)

// canHijack reports whether the stream can leave net/http for the poller:
// HTTP/1.x over plain TCP (the dup in nbio.NBConn needs a raw socket).
func (s *Server) canHijack(w http.ResponseWriter, r *http.Request) bool {
	if s.cfg.DisableHijack || r.ProtoMajor != 1 || r.TLS != nil || !s.started.Load() {
		return false
	}
	for {
		switch x := w.(type) {
		case http.Hijacker:
			return true
		case interface{ Unwrap() http.ResponseWriter }: // middleware wrappers, as ResponseController does
			w = x.Unwrap()
		default:
			return false
		}
	}
}

// serveHijacked takes the connection from net/http, writes the response
// head, hands the socket to the poller and attaches the session; the
// handler goroutine then returns and the stream lives on in callbacks.
func (s *Server) serveHijacked(w http.ResponseWriter, st *stream, sr streamRequest) {
	id := st.sess.ID()
	head := s.appendHead(w.Header())
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		s.finish(st.sess, hub.ReasonTransportError)
		s.log.Warn("hijack failed", "conn", id, "err", err)
		return
	}
	if brw.Reader.Buffered() > 0 {
		// Pipelined bytes after a GET: not an EventSource. Drop it.
		_ = conn.Close()
		s.finish(st.sess, hub.ReasonProtocolError)
		s.audit.Info(audit.ProtocolError, "stream refused: data after request", "conn", id, "ip", sr.ip,
			"transport", "sse")
		return
	}
	nbc, err := wspoll.NBConn(conn) // dups the socket (close-on-exec) and closes conn
	if err != nil {
		_ = conn.Close()
		s.finish(st.sess, hub.ReasonTransportError)
		s.log.Error("stream transfer failed", "conn", id, "err", err)
		return
	}
	st.nbc = nbc
	st.progress.Store(time.Now().UnixNano())
	nbc.SetSession(st)
	s.reg.Add(st, st)
	if _, err := s.engine.AddConn(nbc); err != nil {
		// nbio may or may not have called OnClose: onClose is idempotent.
		_ = nbc.Close()
		s.onClose(nbc, err)
		s.log.Error("stream transfer failed", "conn", id, "err", err)
		return
	}
	if err := st.write(head, true); err != nil {
		return // closed; OnClose cleans up
	}
	// The per-user slot is held (Reserve): Attach does not wait on Redis.
	if attached(st.sess.Attach(sr.p, sr.since), st.Close) {
		s.join(st.sess, sr.topics)
	}
}

// appendHead renders the HTTP/1.1 response head from the handler's headers
// (CORS and security headers set by middleware included) plus the first
// retry advice. The body is close-delimited: no Content-Length and no
// chunking, so every later write is raw event-stream bytes.
func (s *Server) appendHead(h http.Header) []byte {
	var b bytes.Buffer
	b.Grow(512)
	b.WriteString("HTTP/1.1 200 OK\r\n")
	_ = h.WriteSubset(&b, map[string]bool{"Content-Length": true, "Transfer-Encoding": true, "Connection": true})
	b.WriteString("Connection: close\r\n\r\n")
	return appendRetry(b.Bytes(), s.cfg.Retry.Milliseconds())
}

// write queues b on the socket, counting it against the soft buffer cap.
// force bypasses the cap (the response head, the close event).
func (c *stream) write(b []byte, force bool) error {
	n := int64(len(b))
	if !force && c.queued.Load()+n > int64(c.srv.cfg.WriteBufferBytes) {
		return errBufferFull
	}
	if c.queued.Add(n) == n {
		c.progress.Store(time.Now().UnixNano()) // was idle: the clock starts now
	}
	if _, err := c.nbc.Write(b); err != nil {
		c.queued.Add(-n)
		return err
	}
	return nil
}

// stalled reports whether bytes are pending and none was taken by the kernel
// since deadline (unix ns): the client stopped reading.
func (c *stream) stalled(deadline int64) bool {
	return c.queued.Load() > 0 && c.progress.Load() < deadline
}

// Send implements hub.Sender.
func (c *stream) Send(f hub.Frame) error {
	if c.closing.Load() {
		return errClosing
	}
	bp := getBuf()
	b := appendFrame((*bp)[:0], f)
	err := c.write(b, false)
	putBuf(bp, b)
	return err
}

// Reply implements session.Transport. An event stream carries no client
// requests, so the session never has a reply to send on it.
func (c *stream) Reply(*session.Reply) error { return nil }

// Close implements hub.Sender: write the close event (and, when draining,
// a jittered retry), then close the connection once nbio has handed every
// byte to the kernel, or after CloseGrace.
func (c *stream) Close(reason hub.CloseReason) {
	if !c.closing.CompareAndSwap(false, true) {
		return
	}
	if reason != hub.ReasonTransportError && reason != hub.ReasonClientClosed {
		bp := getBuf()
		b := appendClose((*bp)[:0], reason)
		if reason == hub.ReasonShutdown {
			b = appendRetry(b, c.srv.shutdownRetry().Milliseconds())
		}
		_ = c.write(b, true)
		putBuf(bp, b)
	}
	if c.queued.Load() <= 0 {
		wspoll.Drop(c.nbc)
		return
	}
	time.AfterFunc(c.srv.cfg.CloseGrace, func() { wspoll.Drop(c.nbc) })
}

// onWritten runs when the kernel takes bytes of a stream, on the poller or
// inside nbio's Write, with the connection's write lock held.
func (s *Server) onWritten(nbc *nbio.Conn, _ []byte, n int) {
	st, ok := nbc.Session().(*stream)
	if !ok {
		return
	}
	st.progress.Store(time.Now().UnixNano())
	if st.queued.Add(-int64(n)) <= 0 && st.closing.Load() {
		go wspoll.Drop(nbc) // Drop takes the write lock held here
	}
}

// onData: an event-stream client has nothing to send after its request.
func (s *Server) onData(nbc *nbio.Conn, _ []byte) {
	if st, ok := nbc.Session().(*stream); ok {
		s.audit.Info(audit.ProtocolError, "data on event stream", "conn", st.sess.ID(), "transport", "sse")
		_ = nbc.CloseWithError(errUnexpected)
	}
}

// onClose runs in the poller (or where the connection was closed). The
// stream leaves the registry at once; ending its session and releasing
// its admission slot may wait on Redis, so that runs on a goroutine of its
// own, which Shutdown waits for.
func (s *Server) onClose(nbc *nbio.Conn, err error) {
	st, ok := nbc.Session().(*stream)
	if !ok || !st.gone.CompareAndSwap(false, true) {
		return
	}
	st.closing.Store(true)
	s.wg.Add(1) // before Remove: Shutdown waits for an empty registry, then for wg
	s.reg.Remove(st, nil)
	reason := closeReason(err)
	go func() {
		defer s.wg.Done()
		s.finish(st.sess, reason) // closes the hub client with reason, unless the hub closed it first
	}()
}

func closeReason(err error) hub.CloseReason {
	switch {
	case err == nil, errors.Is(err, io.EOF):
		return hub.ReasonClientClosed
	case errors.Is(err, errUnexpected):
		return hub.ReasonProtocolError
	case errors.Is(err, nbio.ErrOverflow), errors.Is(err, nbio.ErrWriteTimeout):
		return hub.ReasonSlowConsumer
	}
	return hub.ReasonTransportError
}
