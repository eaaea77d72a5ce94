package socketio

import (
	"bytes"
	"errors"
	"fmt"
	"sync"

	"github.com/lesismal/nbio/nbhttp/websocket"

	"github.com/heraldhq/herald/internal/admission"
	"github.com/heraldhq/herald/internal/audit"
	"github.com/heraldhq/herald/internal/hub"
	"github.com/heraldhq/herald/internal/wspoll"
)

type sessState uint8

const (
	stateOpen    sessState = iota
	stateClosing           // last packets (and the close) are on their way out
	stateClosed            // finalized: unregistered, transports closed
)

var (
	errBufferFull = errors.New("socketio: outbound buffer full")
	errClosed     = fmt.Errorf("socketio: session closed: %w", hub.ErrSenderClosed)
	// errStop ends the processing of a payload after a close packet.
	errStop = errors.New("socketio: session closed by the client")
	// errUnauthenticated: an event on a session that has no namespace connected.
	errUnauthenticated = errors.New("socketio: event before CONNECT")
	errTooBig          = errors.New("socketio: attachments over the size limit")
	errInvalidUTF8     = errors.New("socketio: text frame that is not UTF-8")
)

// session is one Engine.IO session: its transport (polling, WebSocket, or
// polling being upgraded) and the Socket.IO sockets multiplexed on it.
//
// Locks: in serializes inbound packets (held while a packet is handled,
// including calls into the hub and the verifier); mu guards the rest and is
// never held while calling into the hub. Order: in → hub locks → mu.
type session struct {
	srv    *Server         // static
	slot   *admission.Slot // static: released by finalize
	connID uint64          // static
	id     sid             // engine.io sid; static

	in      sync.Mutex
	partial *partialPacket // guarded by in: a binary packet waiting for its attachments

	mu       sync.Mutex
	authFail uint8           // guarded by in
	state    sessState       // guarded by mu
	reason   hub.CloseReason // guarded by mu: set when closing
	wsUsed   bool            // guarded by mu: wsInline has been handed out
	ws       *wsTransport    // guarded by mu: the WebSocket transport, nil while polling
	poll     *pollState      // guarded by mu: nil for WebSocket sessions
	sockets  socketSet       // guarded by mu
	// headerToken is the valid bearer token of the handshake, packed
	// (packToken), for CONNECTs that carry none. Guarded by mu.
	headerToken string
	// deadline is, while stateOpen, the auth deadline (0 once a namespace
	// is connected); while stateClosing, the end of the close grace.
	// Guarded by mu; session clock.
	deadline     int64
	nextPing     int64     // guarded by mu
	pongDeadline int64     // guarded by mu: 0 when no ping is outstanding
	jobs         *jobQueue // guarded by mu: inbound work waiting for the worker; non-nil while a worker runs
	// wsInline is the session's first WebSocket transport (newTransportLocked):
	// a WebSocket session's, or the first upgrade probe's. Never reused.
	wsInline wsTransport
}

// probeLocked is the WebSocket being probed for the upgrade, if any: only
// a polling session has one. s.mu is held.
func (s *session) probeLocked() *wsTransport {
	if s.poll == nil {
		return nil
	}
	return s.poll.probe
}

// clearProbeLocked forgets the probe. s.mu is held.
func (s *session) clearProbeLocked() {
	if s.poll != nil {
		s.poll.probe = nil
	}
}

// ip is the client address.
func (s *session) ip() string { return s.slot.IP() }

const maxNamespaces = 8

// socketSet is a session's namespace sockets, at most one per namespace.
// The first connected is kept inline (a session usually has one); the
// others in an array made when a second namespace connects.
type socketSet struct {
	one  *socket
	more *[maxNamespaces]*socket
}

// get is the socket of namespace index ns, or nil.
func (ss *socketSet) get(ns int) *socket {
	if k := ss.one; k != nil && int(k.ns) == ns {
		return k
	}
	if ss.more != nil {
		return ss.more[ns]
	}
	return nil
}

// put adds k; its namespace has no socket.
func (ss *socketSet) put(k *socket) {
	if ss.one == nil {
		ss.one = k
		return
	}
	if ss.more == nil {
		ss.more = new([maxNamespaces]*socket)
	}
	ss.more[k.ns] = k
}

// remove drops k if it is in the set.
func (ss *socketSet) remove(k *socket) {
	switch {
	case ss.one == k:
		ss.one = nil
	case ss.more != nil && ss.more[k.ns] == k:
		ss.more[k.ns] = nil
	}
}

func (ss *socketSet) empty() bool {
	return ss.one == nil && (ss.more == nil || *ss.more == [maxNamespaces]*socket{})
}

// appendTo appends the sockets in namespace order.
func (ss *socketSet) appendTo(dst []*socket) []*socket {
	for ns := range maxNamespaces {
		if k := ss.get(ns); k != nil {
			dst = append(dst, k)
		}
	}
	return dst
}

type partialPacket struct {
	p    packet
	atts [][]byte
	size int
}

// maxJobs bounds the inbound messages queued for a session's worker; a
// client that outruns it is closed (rate_limited).
const maxJobs = 128

// jobQueue is the inbound work of a busy session. An idle session holds
// none: the queue goes back to jobPool when its worker finds it empty.
type jobQueue struct{ fns []func() }

var jobPool = sync.Pool{New: func() any { return new(jobQueue) }}

// enqueue runs job after the session's earlier jobs, on a worker goroutine
// that exists only while there is work (no goroutine per idle session).
// force queues past the bound (transport-closed notices).
func (s *session) enqueue(job func(), force bool) {
	s.mu.Lock()
	q := s.jobs
	if !force && q != nil && len(q.fns) >= maxJobs {
		s.mu.Unlock()
		s.srv.audit.Warn(audit.RateLimited, "inbound queue full", "scope", "messages", "conn", s.connID, "ip", s.ip(),
			"transport", "socketio")
		go s.close(hub.ReasonRateLimited)
		return
	}
	start := q == nil
	if start {
		q = jobPool.Get().(*jobQueue)
		s.jobs = q
	}
	q.fns = append(q.fns, job)
	s.mu.Unlock()
	if start {
		go s.work()
	}
}

func (s *session) work() {
	for {
		s.mu.Lock()
		q := s.jobs
		if len(q.fns) == 0 {
			s.jobs = nil
			s.mu.Unlock()
			if cap(q.fns) <= maxJobs {
				jobPool.Put(q)
			}
			return
		}
		job := q.fns[0]
		q.fns[0] = nil
		q.fns = q.fns[1:]
		s.mu.Unlock()
		job()
	}
}

// write queues one Engine.IO packet on the current transport. force bypasses
// the byte cap (control packets) and the closing state (last words).
func (s *session) write(pkt []byte, force bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writeLocked(pkt, force)
}

// writePair queues two packets that belong together (an event and the
// unread count that follows it): on a WebSocket as two frames in one
// write(2), on long-polling as two packets of the next payload.
func (s *session) writePair(a, b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.state != stateOpen:
		return errClosed
	case s.ws != nil:
		bp := bufPool.Get().(*[]byte)
		frames := wspoll.AppendTextFrame((*bp)[:0], a)
		frames = wspoll.AppendTextFrame(frames, b)
		err := s.ws.writeFrames(frames, false)
		*bp = frames
		if cap(frames) <= 64<<10 {
			bufPool.Put(bp)
		}
		return err
	}
	if err := s.writeLocked(a, false); err != nil {
		return err
	}
	return s.writeLocked(b, false)
}

func (s *session) writeLocked(pkt []byte, force bool) error {
	switch {
	case s.state == stateClosed, s.state == stateClosing && !force:
		return errClosed
	case s.ws != nil:
		return s.ws.write(websocket.TextMessage, pkt, force)
	case s.poll != nil:
		return s.poll.push(pkt, force, s.srv.cfg.WriteBufferBytes)
	}
	return errClosed
}

// tick runs the session's deadlines: auth, heartbeat, upgrade, close grace.
// The pong deadline is armed before the ping is written, so a fast pong can
// never be taken for a late one.
func (s *session) tick(now int64) {
	var (
		reason   hub.CloseReason
		finalize bool
		probe    *wsTransport
	)
	s.mu.Lock()
	switch s.state {
	case stateClosing:
		finalize = now >= s.deadline
	case stateOpen:
		switch {
		case s.deadline != 0 && now >= s.deadline: // auth
			reason = hub.ReasonAuthTimeout
		case s.pongDeadline != 0 && now >= s.pongDeadline:
			reason = hub.ReasonPingTimeout
		case s.pongDeadline == 0 && now >= s.nextPing:
			s.pongDeadline = now + int64(s.srv.cfg.PingTimeout)
			s.nextPing = nextSlot(s.nextPing, now, int64(s.srv.cfg.PingInterval))
			_ = s.writeLocked(pktPing, true)
		}
		if pr := s.probeLocked(); pr != nil && now >= s.poll.probeDeadline {
			probe = pr
		}
	}
	s.mu.Unlock()
	if probe != nil {
		s.dropProbe(probe)
	}
	switch {
	case finalize:
		s.finalize()
	case reason == hub.ReasonAuthTimeout:
		s.srv.audit.Warn(audit.AuthTimeout, "auth timeout", "conn", s.connID, "ip", s.ip(), "transport", "socketio")
		s.close(reason)
	case reason != hub.ReasonNone:
		s.close(reason)
	}
}

// nextSlot is the ping time after now on the grid slot + k×interval: pings
// go out at k×interval from the handshake (each at most one sweeper tick
// late), and neither the pong's round trip nor the time the session took
// to handle it delays the next one. A slot missed while a pong was
// outstanding is skipped.
func nextSlot(slot, now, interval int64) int64 {
	if slot > now {
		return slot
	}
	return slot + ((now-slot)/interval+1)*interval
}

// notifies reports whether a socket closed for reason is told why first
// (a notification:error event): not when the client left or the link died.
func notifies(r hub.CloseReason) bool {
	switch r {
	case hub.ReasonNone, hub.ReasonClientClosed, hub.ReasonTransportError, hub.ReasonPingTimeout:
		return false
	}
	return true
}

// graceful reports whether the transport is closed with a last packet (and
// a grace period) rather than dropped at once.
func graceful(r hub.CloseReason) bool { return notifies(r) }

// close ends the session: every socket is closed through the hub (each
// exactly once), then the transport gets its close (WebSocket close frame or
// polling close packet) and is dropped after CloseGrace, or at once when the
// client is gone. Idempotent; the first reason wins.
func (s *session) close(reason hub.CloseReason) {
	s.mu.Lock()
	if s.state != stateOpen {
		s.mu.Unlock()
		return
	}
	s.state = stateClosing
	s.reason = reason
	s.deadline = 0 // no auth deadline now; the close grace is set below
	socks := s.sockets.appendTo(nil)
	s.mu.Unlock()
	for _, k := range socks {
		k.ps.Close(reason) // through the hub → socket.Close: notification:error first where useful
	}

	s.mu.Lock()
	now := s.srv.now()
	drop := !graceful(reason)
	// A client that got "3probe" has paused polling and will only listen on
	// the probe: let it finish the upgrade, which flushes the last packets.
	probe := s.probeLocked()
	if !drop && probe != nil && s.poll.upgrading {
		probe = nil
	} else {
		s.clearProbeLocked()
	}
	grace := s.srv.cfg.CloseGrace
	switch {
	case s.ws != nil && !drop:
		s.ws.writeClose(reason)
	case s.poll != nil && !drop:
		s.poll.finish(pktClose)
	case s.poll != nil && s.ws == nil && reason == hub.ReasonClientClosed &&
		s.poll.wake == nil && !s.poll.getting && !s.poll.upgrading:
		// The client closed over polling with no GET waiting: keep a noop
		// for a GET that crossed its POST on the wire (see closeRace).
		s.poll.finish(pktNoop)
		drop, grace = false, closeRace
	case s.poll != nil:
		s.poll.wakeWith(pktNoop)
	}
	s.deadline = now + int64(grace)
	s.mu.Unlock()
	if probe != nil {
		probe.closeSoon(reason)
	}
	if drop {
		s.finalize()
	}
	s.srv.log.Debug("session closed", "conn", s.connID, "reason", reason.Label())
}

// finalize unregisters the session, releases its admission slots and closes
// its transports. Idempotent.
func (s *session) finalize() {
	s.mu.Lock()
	if s.state == stateClosed {
		s.mu.Unlock()
		return
	}
	s.state = stateClosed
	ws, probe, reason := s.ws, s.probeLocked(), s.reason
	s.clearProbeLocked()
	if s.poll != nil {
		s.poll.wakeWith(nil)
		s.poll.endUpgrade()
	}
	s.headerToken = ""
	s.mu.Unlock()
	s.slot.Release()
	s.srv.reg.Remove(s.id, func(x *session) bool { return x == s })
	if ws != nil {
		switch reason {
		case hub.ReasonClientClosed: // the client is closing (or closed) it
			ws.closeSoon(reason)
		default: // gone (ping timeout, transport error) or past its close grace
			ws.closeNow()
		}
	}
	if probe != nil {
		probe.closeSoon(reason)
	}
}

// closeFor closes the session after a protocol error in inbound data.
func (s *session) closeFor(err error) {
	reason := hub.ReasonProtocolError
	switch {
	case errors.Is(err, errStop):
		return
	case errors.Is(err, errUnauthenticated):
		reason = hub.ReasonUnauthorized
		s.srv.audit.Warn(audit.UnauthenticatedMessage, "event before auth", "conn", s.connID, "ip", s.ip(), "transport", "socketio")
	case errors.Is(err, errTooBig):
		reason = hub.ReasonMessageTooBig
	case errors.Is(err, errInvalidUTF8):
		reason = hub.ReasonInvalidUTF8 // 1007 (RFC 6455 §8.1)
	default:
		s.srv.audit.Info(audit.InvalidMessage, "invalid packet", "conn", s.connID, "ip", s.ip(), "transport", "socketio", "err", err)
	}
	s.close(reason)
}

// onPacket handles one inbound Engine.IO packet of the active transport.
// The caller holds s.in. An error is a protocol violation (or errStop).
func (s *session) onPacket(p enginePacket) error {
	if p.binary {
		return s.onAttachment(p.data)
	}
	switch p.typ {
	case eioMessage:
		return s.onSocketIO(p.data)
	case eioPong:
		s.mu.Lock()
		s.pongDeadline = 0 // the next ping keeps its slot (nextSlot)
		s.mu.Unlock()
	case eioClose:
		s.close(hub.ReasonClientClosed)
		return errStop
	case eioNoop, eioUpgrade:
	case eioPing:
		return malformed("ping from the client (heartbeat runs server to client in v4)")
	default:
		return malformed("unexpected engine.io packet type %q", p.typ)
	}
	return nil
}

// onSocketIO handles the text part of a Socket.IO packet.
func (s *session) onSocketIO(data []byte) error {
	if s.partial != nil {
		return malformed("text packet while %d attachments are expected", s.partial.p.Attachments-len(s.partial.atts))
	}
	p, err := decodePacket(data, s.srv.cfg.MaxAttachments)
	if err != nil {
		return err
	}
	if (p.Type == typeBinaryEvent || p.Type == typeBinaryAck) && p.Attachments > 0 {
		p.Data = bytes.Clone(p.Data) // data aliases a transport buffer
		s.partial = &partialPacket{p: p, atts: make([][]byte, 0, p.Attachments), size: len(data)}
		return nil
	}
	return s.dispatch(&p)
}

// onAttachment takes one binary attachment of the pending binary packet.
func (s *session) onAttachment(b []byte) error {
	pp := s.partial
	if pp == nil {
		return malformed("binary data without a binary packet")
	}
	pp.size += len(b)
	if pp.size > s.srv.cfg.MaxPayload {
		return errTooBig
	}
	pp.atts = append(pp.atts, bytes.Clone(b))
	if len(pp.atts) < pp.p.Attachments {
		return nil
	}
	s.partial = nil
	if _, err := reconstruct(pp.p.Data, pp.atts); err != nil {
		return err
	}
	return s.dispatch(&pp.p) // no event takes binary arguments: validation rejects them
}

// dispatch routes a complete Socket.IO packet to its namespace socket.
func (s *session) dispatch(p *packet) error {
	ns := s.srv.nsIndex(p.Namespace)
	var k *socket
	connected := false
	s.mu.Lock()
	if ns >= 0 {
		k = s.sockets.get(ns)
	}
	connected = !s.sockets.empty()
	s.mu.Unlock()
	switch p.Type {
	case typeConnect:
		if ns < 0 {
			_ = s.write(appendConnectError(nil, p.Namespace, "Invalid namespace"), false)
			return nil
		}
		if k != nil {
			return malformed("CONNECT to %s, already connected", p.Namespace)
		}
		s.connect(ns, p.Data)
	case typeDisconnect:
		if k != nil {
			k.ps.Close(hub.ReasonClientClosed)
		}
	case typeEvent, typeBinaryEvent:
		if k == nil {
			if !connected {
				return errUnauthenticated
			}
			return malformed("EVENT for %s, not connected", p.Namespace)
		}
		k.onEvent(p)
	case typeAck, typeBinaryAck:
		// The server asks for no acknowledgements: nothing to match.
	default:
		return malformed("CONNECT_ERROR from the client")
	}
	return nil
}
