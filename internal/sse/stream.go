package sse

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lesismal/nbio"

	"github.com/heraldhq/herald/internal/hub"
	"github.com/heraldhq/herald/internal/wspoll"
)

var (
	errBufferFull = errors.New("sse: outbound buffer full")
	errClosing    = errors.New("sse: stream closing")
	errUnexpected = errors.New("sse: client sent data on an event stream")
)

// stream is one hijacked event stream served by the nbio poller. It
// implements hub.Sender.
type stream struct {
	srv     *Server    // static
	nbc     *nbio.Conn // static
	shard   uint8      // static: registry shard
	id      uint64     // static
	userKey string     // static: ConnsPerUser key

	mu     sync.Mutex
	client *hub.Client // guarded by mu; nil until attached
	gone   bool        // guarded by mu: the connection is closed

	queued   atomic.Int64 // bytes handed to nbio and not yet taken by the kernel
	progress atomic.Int64 // unix ns of the last write progress (see stalled)
	closing  atomic.Bool  // the close event has been written; no more events
}

var _ hub.Sender = (*stream)(nil)

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
// head and hands the socket to the poller; the handler goroutine then
// returns and the stream lives on in callbacks.
func (s *Server) serveHijacked(w http.ResponseWriter, opts hub.AttachOptions, userKey string) {
	head := s.appendHead(w.Header())
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		s.active.Add(-1)
		s.release(userKey)
		s.log.Warn("hijack failed", "conn", opts.ConnID, "err", err)
		return
	}
	if brw.Reader.Buffered() > 0 {
		// Pipelined bytes after a GET: not an EventSource. Drop it.
		_ = conn.Close()
		s.active.Add(-1)
		s.release(userKey)
		s.log.Info("stream refused: data after request", "conn", opts.ConnID, "event", "protocol_error")
		return
	}
	// nbio dups the socket without close-on-exec: hold ForkLock across the
	// dup and mark the copy, so no forked process inherits the stream.
	syscall.ForkLock.RLock()
	nbc, err := nbio.NBConn(conn) // dups the socket and closes conn
	if err == nil {
		syscall.CloseOnExec(nbc.Hash())
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		_ = conn.Close()
		s.active.Add(-1)
		s.release(userKey)
		s.log.Error("stream transfer failed", "conn", opts.ConnID, "err", err)
		return
	}
	st := &stream{srv: s, nbc: nbc, shard: uint8(rand.N(shardCount)), id: opts.ConnID, userKey: userKey}
	st.progress.Store(time.Now().UnixNano())
	nbc.SetSession(st)
	s.reg.add(st)
	if _, err := s.engine.AddConn(nbc); err != nil {
		// nbio may or may not have called OnClose: onClose is idempotent.
		_ = nbc.Close()
		s.onClose(nbc, err)
		s.log.Error("stream transfer failed", "conn", opts.ConnID, "err", err)
		return
	}
	if err := st.write(head, true); err != nil {
		return // closed; OnClose cleans up
	}
	cl, err := s.hub.Attach(st, opts)
	if err != nil { // the hub is closed: the node is draining
		st.Close(hub.ReasonShutdown)
		return
	}
	st.mu.Lock()
	gone := st.gone
	if !gone {
		st.client = cl
	}
	st.mu.Unlock()
	if gone {
		cl.Close(hub.ReasonClientClosed)
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

// closeWith closes the stream with reason, through the hub when attached
// (so that the client is unregistered and the close is logged).
func (c *stream) closeWith(reason hub.CloseReason) {
	c.mu.Lock()
	cl := c.client
	c.mu.Unlock()
	if cl != nil {
		cl.Close(reason)
	}
	c.Close(reason) // no-op when the hub closed it
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
		s.log.Info("data on event stream", "event", "protocol_error", "conn", st.id)
		_ = nbc.CloseWithError(errUnexpected)
	}
}

func (s *Server) onClose(nbc *nbio.Conn, err error) {
	st, ok := nbc.Session().(*stream)
	if !ok {
		return
	}
	st.mu.Lock()
	if st.gone {
		st.mu.Unlock()
		return
	}
	st.gone = true
	cl := st.client
	st.mu.Unlock()
	s.reg.remove(st)
	s.active.Add(-1)
	s.release(st.userKey)
	st.closing.Store(true)
	if cl != nil {
		cl.Close(closeReason(err)) // no-op when the hub closed it first
	}
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

const shardCount = 32

// registry is the set of hijacked streams, sharded to keep lock hold times
// short on connect storms.
type registry struct {
	shards [shardCount]struct {
		mu sync.Mutex
		m  map[*stream]struct{}
	}
}

func (r *registry) init() {
	for i := range r.shards {
		r.shards[i].m = make(map[*stream]struct{})
	}
}

func (r *registry) add(c *stream) {
	sh := &r.shards[c.shard%shardCount]
	sh.mu.Lock()
	sh.m[c] = struct{}{}
	sh.mu.Unlock()
}

func (r *registry) remove(c *stream) {
	sh := &r.shards[c.shard%shardCount]
	sh.mu.Lock()
	delete(sh.m, c)
	sh.mu.Unlock()
}

func (r *registry) len() int {
	n := 0
	for i := range r.shards {
		r.shards[i].mu.Lock()
		n += len(r.shards[i].m)
		r.shards[i].mu.Unlock()
	}
	return n
}

// snapshot appends every stream to batch.
func (r *registry) snapshot(batch []*stream) []*stream {
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.Lock()
		for c := range sh.m {
			batch = append(batch, c)
		}
		sh.mu.Unlock()
	}
	return batch
}

func (r *registry) each(fn func(*stream)) {
	for _, c := range r.snapshot(nil) {
		fn(c)
	}
}
