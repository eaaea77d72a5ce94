package socketio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/http"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/lesismal/nbio/nbhttp/websocket"

	"github.com/heraldhq/herald/internal/hub"
	"github.com/heraldhq/herald/internal/wspoll"
)

// wsTransport is one WebSocket connection of a session (its transport, or a
// probe during the upgrade from polling). nbio owns the socket: reads arrive
// as callbacks, writes go to the poller's buffer; no goroutine waits on it.
type wsTransport struct {
	sess            *session        // static
	wsc             *websocket.Conn // set before the transport is used; static after
	wspoll.Outbound                 // bytes handed to nbio and not yet written to the kernel
	closing         atomic.Bool     // a close frame has been sent
	upgradeRead     atomic.Bool     // a probe's "5" has been read (awaitUpgrade)
}

// newTransportLocked returns a transport for a WebSocket of s: the one
// inside the session the first time (the session's only one, unless an
// upgrade probe fails), a new one after. s.mu is held.
func (s *session) newTransportLocked() *wsTransport {
	if s.wsUsed {
		return &wsTransport{sess: s}
	}
	s.wsUsed = true
	s.wsInline.sess = s
	return &s.wsInline
}

// write sends one message, counting its bytes against the soft buffer cap
// (the same accounting as internal/ws). force bypasses the cap.
func (t *wsTransport) write(mt websocket.MessageType, data []byte, force bool) error {
	return t.send(wspoll.FrameLen(len(data)), force, func() error { return t.wsc.WriteMessage(mt, data) })
}

// writeFrames sends complete text frames (wspoll.AppendTextFrame) in one
// write, counted like write. The embedded nbio.Conn's Write runs under
// nbio's connection lock, so these frames never interleave with a
// WriteMessage (pong, close).
func (t *wsTransport) writeFrames(b []byte, force bool) error {
	return t.send(int64(len(b)), force, func() error { _, err := t.wsc.Conn.Write(b); return err })
}

// send runs write for n bytes on the wire unless the transport is closing
// or (without force) they would pass the soft cap.
func (t *wsTransport) send(n int64, force bool, write func() error) error {
	if t.closing.Load() {
		return errClosed
	}
	if err := t.Push(n, t.sess.srv.cfg.WriteBufferBytes, force, write); errors.Is(err, wspoll.ErrBufferFull) {
		return errBufferFull
	} else if err != nil {
		return err
	}
	return nil
}

// writeClose sends the close frame (the hub's code and label, as /v1/ws does);
// the sweeper drops the connection after CloseGrace if the client does not.
func (t *wsTransport) writeClose(reason hub.CloseReason) {
	code := reason.Code()
	if code == 1006 {
		return
	}
	label := reason.Label()
	buf := make([]byte, 2+len(label))
	binary.BigEndian.PutUint16(buf, uint16(code))
	copy(buf[2:], label)
	_ = t.write(websocket.CloseMessage, buf, true)
	t.closing.Store(true)
}

// closeNow drops the connection at once: for peers that are gone (ping
// timeout, transport error) or had their CloseGrace. The poller closes the
// fd (wspoll.Drop).
func (t *wsTransport) closeNow() {
	t.closing.Store(true)
	if t.wsc != nil {
		wspoll.Drop(t.wsc.Conn)
	}
}

// closeSoon sends the close frame and leaves the TCP close to the client:
// nbio's poller then closes the socket itself. The connection is dropped
// after CloseGrace if the client does not close it.
//
// Why not close at once: a socket closed from outside the poller while the
// poller holds a pending event for its fd lets that stale event close the
// next connection nbio registers under the same fd number (seen under
// connection churn: fresh connections dropped with EOF right after the
// upgrade). So sockets whose peer may be active are closed by the poller.
func (t *wsTransport) closeSoon(reason hub.CloseReason) {
	if reason.Code() == 1006 {
		reason = hub.ReasonClientClosed
	}
	t.writeClose(reason)
	time.AfterFunc(t.sess.srv.cfg.CloseGrace, t.closeNow)
}

// serveWebSocket upgrades a request: a new WebSocket-only session without
// sid, the probe of a polling session's upgrade with one.
func (s *Server) serveWebSocket(w http.ResponseWriter, r *http.Request, sid string) {
	if sid != "" {
		s.serveProbe(w, r, sid)
		return
	}
	ss := s.admit(w, r, "websocket")
	if ss == nil {
		return
	}
	t := ss.newTransportLocked() // ss is not shared yet
	ss.ws = t
	wsc, err := wspoll.Upgrade(s.upgrader, w, r)
	if err != nil {
		s.log.Debug("upgrade failed", "ip", ss.ip(), "err", err)
		ss.slot.Release()
		return // the upgrader has answered
	}
	t.wsc = wsc
	s.reg.Add(ss.id, ss)
	// Bind the transport in the connection's own job queue: every message
	// handler runs after it (or before it, and is replayed by it).
	if !wsc.Execute(func() {
		s.bind(wsc, t)
		_ = t.write(websocket.TextMessage, appendOpen(nil, &ss.id, false, &s.cfg), true)
	}) {
		s.early.Drop(wsc)
		ss.close(hub.ReasonTransportError)
	}
}

// serveProbe upgrades the WebSocket of a polling session's transport upgrade.
func (s *Server) serveProbe(w http.ResponseWriter, r *http.Request, sid string) {
	ss := s.lookup(sid)
	if ss == nil {
		httpError(w, http.StatusBadRequest, errUnknownSID)
		return
	}
	ss.mu.Lock()
	if ss.state != stateOpen || ss.poll == nil || ss.poll.probe != nil || ss.ws != nil {
		ss.mu.Unlock()
		httpError(w, http.StatusBadRequest, errBadRequest)
		return
	}
	t := ss.newTransportLocked()
	ss.poll.probe = t
	ss.poll.probeDeadline = s.now() + int64(s.cfg.UpgradeTimeout)
	ss.mu.Unlock()
	wsc, err := wspoll.Upgrade(s.upgrader, w, r)
	ss.mu.Lock()
	if err == nil {
		t.wsc = wsc
	}
	abandoned := ss.probeLocked() != t // timed out or the session closed meanwhile
	if err != nil && !abandoned {
		ss.poll.probe = nil
	}
	ss.mu.Unlock()
	if err != nil {
		return
	}
	if abandoned || !wsc.Execute(func() { s.bind(wsc, t) }) {
		s.early.Drop(wsc)
		t.closeSoon(hub.ReasonProtocolError)
	}
}

// bind attaches t to its connection and queues the messages that arrived
// before. It runs in the connection's job queue.
func (s *Server) bind(wsc *websocket.Conn, t *wsTransport) {
	wsc.SetSession(t)
	msgs, _ := s.early.Take(wsc) // an overflow closed the connection already
	for _, m := range msgs {
		t.sess.enqueue(func() { t.sess.onWSMessage(t, m.Type, m.Data) }, false)
	}
}

// onWSMessage runs in the poller: it copies the message and queues its
// handling on the session's worker, so that nothing here blocks the poller
// (the handling may wait on the verifier, the hub or a remote limiter).
func (s *Server) onWSMessage(wsc *websocket.Conn, mt websocket.MessageType, data []byte) {
	t, ok := wsc.Session().(*wsTransport)
	if !ok {
		if !s.early.Add(wsc, mt, data, s.cfg.MaxPayload) {
			_ = wsc.Close()
		}
		return
	}
	if len(data) == 1 && data[0] == eioUpgrade {
		t.upgradeRead.Store(true) // before the worker handles it: see awaitUpgrade
	}
	data = bytes.Clone(data) // nbio reuses the buffer after we return
	t.sess.enqueue(func() { t.sess.onWSMessage(t, mt, data) }, false)
}

// onWSMessage handles one message of t on the session's worker.
func (s *session) onWSMessage(t *wsTransport, mt websocket.MessageType, data []byte) {
	s.mu.Lock()
	probing, active := t == s.probeLocked(), t == s.ws && s.state == stateOpen
	s.mu.Unlock()
	switch {
	case probing:
		s.onProbeMessage(t, mt, data)
	case active:
		s.in.Lock()
		err := s.onWSPacket(mt, data)
		s.in.Unlock()
		if err != nil {
			s.closeFor(err)
		}
	}
}

func (s *session) onWSPacket(mt websocket.MessageType, data []byte) error {
	if mt == websocket.BinaryMessage {
		return s.onPacket(enginePacket{typ: eioMessage, data: data, binary: true})
	}
	if !utf8.Valid(data) {
		return errInvalidUTF8
	}
	p, err := decodeEnginePacket(data, false)
	if err != nil {
		return err
	}
	return s.onPacket(p)
}

// onProbeMessage runs the upgrade: "2probe" is answered with "3probe" and a
// waiting GET gets a noop (so the client can pause polling); "5" makes the
// WebSocket the transport, flushing what polling had queued into it.
func (s *session) onProbeMessage(t *wsTransport, mt websocket.MessageType, data []byte) {
	switch {
	case mt == websocket.TextMessage && string(data) == "2probe":
		_ = t.write(websocket.TextMessage, pktProbePong, true)
		s.mu.Lock()
		if s.probeLocked() == t {
			s.poll.startUpgrade()
			s.poll.wakeWith(pktNoop)
		}
		s.mu.Unlock()
	case mt == websocket.TextMessage && len(data) == 1 && data[0] == eioUpgrade:
		s.mu.Lock()
		if s.probeLocked() != t || s.state == stateClosed {
			s.mu.Unlock()
			return
		}
		s.poll.probe = nil
		s.ws = t
		if p := s.poll; p != nil {
			s.poll = nil
			_ = splitPayload(p.buf, func(pkt []byte) error {
				return t.write(websocket.TextMessage, pkt, true)
			})
			p.buf = nil
			p.wakeWith(pktNoop)
			p.endUpgrade() // a GET held by awaitUpgrade now finds no polling transport: 400
		}
		if s.state == stateClosing { // closed during the upgrade: the last packets are out
			t.writeClose(s.reason)
		}
		s.mu.Unlock()
		s.srv.log.Debug("upgraded to websocket", "conn", s.connID)
	default:
		s.dropProbe(t)
	}
}

// dropProbe abandons an upgrade: the session stays on polling.
func (s *session) dropProbe(t *wsTransport) {
	s.mu.Lock()
	if s.probeLocked() == t {
		s.poll.probe = nil
		s.poll.endUpgrade()
	}
	s.mu.Unlock()
	t.closeSoon(hub.ReasonProtocolError)
}

func (s *Server) onWSClose(wsc *websocket.Conn, err error) {
	t, ok := wsc.Session().(*wsTransport)
	if !ok {
		s.early.Drop(wsc)
		return
	}
	t.sess.enqueue(func() { t.sess.onWSClosed(t, err) }, true)
}

// onWSClosed handles the end of one of the session's WebSocket connections.
func (s *session) onWSClosed(t *wsTransport, err error) {
	s.mu.Lock()
	if s.probeLocked() == t {
		s.poll.probe = nil
		s.poll.endUpgrade()
	}
	current, state := s.ws == t, s.state
	s.mu.Unlock()
	switch {
	case !current:
	case state == stateOpen:
		s.close(wspoll.CloseReason(err))
		s.finalize()
	default:
		s.finalize()
	}
}
