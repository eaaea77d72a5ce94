package socketio

import (
	"errors"
	"io"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/heraldhq/herald/internal/audit"
	"github.com/heraldhq/herald/internal/hub"
)

// pollState is the HTTP long-polling side of a session. Guarded by the
// session's mu.
type pollState struct {
	buf     []byte        // packets joined by the record separator, waiting for a GET
	wake    chan struct{} // non-nil while a GET waits; closed to wake it
	getting bool          // a GET is pending
	posting bool          // a POST is being processed
	// upgrading: the WebSocket probe succeeded; GETs are answered at once
	// (with a noop when nothing is queued) so the client can pause polling.
	upgrading bool
	// settled is closed when an upgrade ends, done ("5") or abandoned;
	// non-nil while upgrading.
	settled chan struct{}
	// probe is the WebSocket being probed for the upgrade, abandoned at
	// probeDeadline (session clock). The upgrade's "5" ends polling and
	// clears it, so only a polling session has a probe.
	probe         *wsTransport
	probeDeadline int64
	// final is the packet that ends a closing session (the close, or the
	// noop of closeRace). It goes out alone, in the first GET that finds
	// buf empty: socket.io-client handles a payload's messages on a later
	// tick but a close at once, so a close sharing a payload with the
	// notification:error and DISCONNECT before it would overtake them
	// (the socket would see "transport close" and never the error).
	final []byte
}

// finish queues the session's last packet (see final) and wakes a GET
// waiting for packets.
func (p *pollState) finish(pkt []byte) {
	p.final = pkt
	p.wakeWith(nil)
}

func (p *pollState) startUpgrade() {
	p.upgrading = true
	if p.settled == nil {
		p.settled = make(chan struct{})
	}
}

func (p *pollState) endUpgrade() {
	p.upgrading = false
	if p.settled != nil {
		close(p.settled)
		p.settled = nil
	}
}

// upgradeCross and upgradeRace bound how long a GET that arrives during an
// upgrade (the probe answered "3probe") is held before it is answered
// (awaitUpgrade). Such a GET is either one the client sent before it read
// "3probe", which must be answered soon (with the noop or what is queued)
// because the client sends "5" only once that GET is back, or one sent
// after the "5" that the session has not handled yet, which the reference
// server (it handles requests in arrival order) answers with 400: the
// polling transport is gone. The poller marks the probe the moment it
// reads "5", so a GET waits upgradeRace (a loaded node's margin for
// handling the "5") only after that, and upgradeCross (for a "5" still on
// its way) otherwise. The reference server answers the first kind within
// 100 ms (its upgrade check interval).
const (
	upgradeCross = 10 * time.Millisecond
	upgradeRace  = 500 * time.Millisecond
)

// closeRace bounds how long a session the client closed over polling
// ("1" in a POST) stays registered when no GET was waiting. The reference
// server handles a session's requests in arrival order, so a GET sent just
// before that POST waits there and is answered with a noop; here the two
// run concurrently and the POST may be handled first. For closeRace the
// first GET still gets that noop (and ends the session), as it would have,
// and any later one 400. A conforming client sends nothing after its
// close, so the only GET this can answer is one that crossed the POST.
const closeRace = 500 * time.Millisecond

// awaitUpgrade holds a new GET of a session whose upgrade is under way
// (see upgradeCross). It reports false when the client left meanwhile.
func (s *Server) awaitUpgrade(r *http.Request, sid string) bool {
	ss := s.lookup(sid)
	if ss == nil {
		return true
	}
	ss.mu.Lock()
	p := ss.poll
	if p == nil || !p.upgrading || p.getting || p.probe == nil {
		ss.mu.Unlock()
		return true
	}
	settled, probe := p.settled, p.probe
	ss.mu.Unlock()
	done, left := waitSettled(r, settled, upgradeCross)
	if !done && !left && probe.upgradeRead.Load() { // the "5" is in: answer after it (400)
		_, left = waitSettled(r, settled, upgradeRace-upgradeCross)
	}
	return !left
}

// waitSettled waits up to d for settled to close. It reports whether it
// did, and whether the client left meanwhile.
func waitSettled(r *http.Request, settled <-chan struct{}, d time.Duration) (done, left bool) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-settled:
		return true, false
	case <-timer.C:
		return false, false
	case <-r.Context().Done():
		return false, true
	}
}

// push appends one packet to the payload of the next GET and wakes a waiting
// one. force bypasses the byte cap.
func (p *pollState) push(pkt []byte, force bool, capBytes int) error {
	n := len(p.buf) + len(pkt)
	if len(p.buf) > 0 {
		n++
	}
	if !force && n > capBytes {
		return errBufferFull
	}
	if len(p.buf) > 0 {
		p.buf = append(p.buf, recordSeparator)
	}
	p.buf = append(p.buf, pkt...)
	p.wakeWith(nil)
	return nil
}

// wakeWith answers a waiting GET, with pkt when nothing else is queued.
func (p *pollState) wakeWith(pkt []byte) {
	if p.wake == nil {
		return
	}
	if len(p.buf) == 0 && pkt != nil {
		p.buf = append(p.buf, pkt...)
	}
	close(p.wake)
	p.wake = nil
}

// handshakePolling opens a polling session and answers with the open packet.
func (s *Server) handshakePolling(w http.ResponseWriter, r *http.Request) {
	ss := s.admit(w, r, "polling")
	if ss == nil {
		return
	}
	ss.poll = &pollState{}
	s.reg.Add(ss.id, ss)
	writePayload(w, appendOpen(nil, &ss.id, true, &s.cfg))
}

func writePayload(w http.ResponseWriter, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=UTF-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// claim finds polling session sid and takes its GET or POST turn (the flag
// turn points to): one request of each kind at a time, and a second one
// breaks the protocol and closes the session. A POST needs an open
// session; a GET may still fetch the last packets of a closing one. On
// failure it has answered the request.
func (s *Server) claim(w http.ResponseWriter, sid string, turn func(*pollState) *bool, open bool) (*session, *pollState, bool) {
	ss := s.lookup(sid)
	if ss == nil {
		httpError(w, http.StatusBadRequest, errUnknownSID)
		return nil, nil, false
	}
	ss.mu.Lock()
	p := ss.poll
	if p == nil || ss.state == stateClosed || open && ss.state != stateOpen {
		ss.mu.Unlock()
		httpError(w, http.StatusBadRequest, errBadRequest)
		return nil, nil, false
	}
	busy := turn(p)
	if *busy {
		ss.mu.Unlock()
		s.audit.Info(audit.InvalidMessage, "concurrent polling requests", "conn", ss.connID, "ip", ss.ip(), "transport", "socketio")
		ss.close(hub.ReasonProtocolError)
		httpError(w, http.StatusBadRequest, errBadRequest)
		return nil, nil, false
	}
	*busy = true
	ss.mu.Unlock()
	return ss, p, true
}

// servePoll answers a GET with the packets queued for the session, waiting
// for some when there are none. Only one GET may wait per session: a second
// one closes the session (the protocol's rule).
func (s *Server) servePoll(w http.ResponseWriter, r *http.Request, sid string) {
	if !s.awaitUpgrade(r, sid) {
		return
	}
	ss, p, ok := s.claim(w, sid, func(p *pollState) *bool { return &p.getting }, false)
	if !ok {
		return
	}
	ss.mu.Lock()
	if len(p.buf) == 0 && ss.state == stateOpen && !p.upgrading {
		wake := make(chan struct{})
		p.wake = wake
		ss.mu.Unlock()
		// Outlive the server's WriteTimeout: the hold is bounded below.
		hold := s.cfg.PingInterval + s.cfg.PingTimeout
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(hold + 10*time.Second))
		timer := time.NewTimer(hold)
		select {
		case <-wake:
		case <-r.Context().Done():
		case <-timer.C:
		}
		timer.Stop()
		ss.mu.Lock()
		if p.wake == wake {
			p.wake = nil
		}
		if r.Context().Err() != nil { // the client left: keep the packets for the next GET
			p.getting = false
			ss.mu.Unlock()
			return
		}
	}
	body := p.buf
	p.buf = nil
	p.getting = false
	done := false
	if len(body) == 0 && p.final != nil && ss.state == stateClosing && ss.poll == p {
		body, done = p.final, true // the last packet, alone (see final)
	}
	ss.mu.Unlock()
	if len(body) == 0 {
		body = pktNoop
	}
	if done {
		ss.finalize()
	}
	writePayload(w, body)
}

// end closes a session after an invalid polling POST and ends it at once,
// as the reference server does: a GET already waiting gets what was queued
// (the close packet last), a later one finds no session (400 "Session ID
// unknown"), never a 200 for a session that broke the protocol.
func (s *session) end(reason hub.CloseReason) {
	s.close(reason)
	s.finalize()
}

// servePost takes a payload of packets from the client.
func (s *Server) servePost(w http.ResponseWriter, r *http.Request, sid string) {
	ss, p, ok := s.claim(w, sid, func(p *pollState) *bool { return &p.posting }, true)
	if !ok {
		return
	}
	defer func() {
		ss.mu.Lock()
		p.posting = false
		ss.mu.Unlock()
	}()

	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(s.cfg.MaxPayload)))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.audit.Warn(audit.InvalidMessage, "polling payload too large", "conn", ss.connID, "ip", ss.ip(), "transport", "socketio",
				"limit", s.cfg.MaxPayload)
			ss.end(hub.ReasonMessageTooBig)
			http.Error(w, "payload too large", http.StatusRequestEntityTooLarge)
			return
		}
		httpError(w, http.StatusBadRequest, errBadRequest)
		return
	}
	if !utf8.Valid(body) {
		ss.end(hub.ReasonInvalidUTF8)
		httpError(w, http.StatusBadRequest, errBadRequest)
		return
	}
	ss.in.Lock()
	err = splitPayload(body, func(rec []byte) error {
		pkt, err := decodeEnginePacket(rec, true)
		if err != nil {
			return err
		}
		return ss.onPacket(pkt)
	})
	ss.in.Unlock()
	if err != nil && !errors.Is(err, errStop) {
		ss.closeFor(err)
		ss.finalize() // the first invalid packet ends the session (see end)
		httpError(w, http.StatusBadRequest, errBadRequest)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html")
	h.Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte("ok"))
}
