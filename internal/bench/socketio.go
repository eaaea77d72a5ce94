package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"time"
)

// sioTransport speaks Socket.IO v5 over Engine.IO v4 on a WebSocket from
// the start (socket.io-client's transports: ["websocket"]), on the same raw
// WebSocket client as /v1/ws: the open packet, a CONNECT to "/" with
// auth {token, since} (and the token in the upgrade's Authorization header
// unless --auth message), then events as "42[name,payload]" text frames, with
// Engine.IO pings ("2") answered ("3"). Goroutine client only.
type sioTransport struct{}

var _ Transport = sioTransport{}

// sioSession is one Socket.IO connection (one namespace socket).
type sioSession struct {
	*wsSession
}

var _ Session = sioSession{}

var (
	sioEventNotification = []byte(`42["notification",`)
	sioEventResync       = []byte(`42["resync",`)
	sioEventReady        = []byte(`42["ready",`)
	sioEventError        = []byte(`42["notification:error",`)
)

// Dial implements Transport.
func (sioTransport) Dial(ctx context.Context, t DialTarget) (Session, Position, error) {
	nc, u, err := dialNode(ctx, t, "socketio")
	if err != nil {
		return nil, Position{}, err
	}
	s := &wsSession{nc: nc, br: bufio.NewReaderSize(nc, wsReadBuffer)}
	pos, err := sioConnect(s, u, t)
	if err != nil {
		_ = nc.Close()
		return nil, Position{}, err
	}
	_ = nc.SetDeadline(time.Time{})
	return sioSession{s}, pos, nil
}

// sioConnect upgrades, connects the namespace and waits for ready.
func sioConnect(s *wsSession, u *url.URL, t DialTarget) (Position, error) {
	// The token also goes in the upgrade's Authorization header (socket.io-
	// client's extraHeaders), which makes it an authenticated handshake,
	// as on /v1/ws: unauthenticated ones are rate-limited per address.
	// --auth message sends it in the CONNECT packet only, like a browser.
	header := t.Token
	if t.AuthMessage {
		header = ""
	}
	if err := s.upgrade(u, u.EscapedPath()+"/socket.io/?EIO=4&transport=websocket", header); err != nil {
		return Position{}, err
	}
	auth, _ := json.Marshal(struct {
		Token string `json:"token"`
		Since string `json:"since,omitempty"`
	}{t.Token, t.Since})
	for {
		op, msg, err := s.next()
		if err != nil {
			return Position{}, fmt.Errorf("bench: socketio connect: %w", err)
		}
		if op != opText || len(msg) == 0 {
			continue
		}
		switch {
		case msg[0] == '0': // Engine.IO open: connect the namespace
			if err := s.writeFrame(opText, append([]byte("40"), auth...)); err != nil {
				return Position{}, fmt.Errorf("bench: socketio connect: %w", err)
			}
		case bytes.Equal(msg, []byte("2")):
			if err := s.writeFrame(opText, []byte("3")); err != nil {
				return Position{}, err
			}
		case bytes.HasPrefix(msg, []byte("44")): // CONNECT_ERROR
			return Position{}, &HandshakeError{Status: 401}
		case bytes.HasPrefix(msg, sioEventReady):
			pos, ok := positionField(msg)
			if !ok {
				return Position{}, fmt.Errorf("%w: ready without position: %q", errProtocol, msg)
			}
			return pos, nil
		}
	}
}

// Read implements Session.
func (s sioSession) Read(sink Sink) error {
	var d Delivery
	for {
		op, msg, err := s.next()
		if err != nil {
			return err
		}
		if op != opText {
			continue
		}
		switch {
		case bytes.HasPrefix(msg, sioEventNotification):
			if parseNotification(msg, &d) {
				sink.Notification(&d)
			} else {
				sink.Malformed(msg)
			}
		case bytes.Equal(msg, []byte("2")):
			if err := s.writeFrame(opText, []byte("3")); err != nil {
				return err
			}
		case bytes.HasPrefix(msg, sioEventResync):
			if p, ok := positionField(msg); ok {
				sink.Resync(p)
			} else {
				sink.Malformed(msg)
			}
		case bytes.HasPrefix(msg, sioEventError):
			// The reason of a close that follows; the close frame carries
			// its code.
		}
	}
}
