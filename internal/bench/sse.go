package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"
)

// sseTransport reads GET /v1/me/stream on a raw net.Conn: the request by
// hand, the Authorization header, then text/event-stream lines from a 4 KiB
// buffer. Herald's event data is one line of JSON, so a session keeps only
// the name of the event it is in. Goroutine client only.
type sseTransport struct{}

var _ Transport = sseTransport{}

// sseSession is one event stream.
type sseSession struct {
	nc     net.Conn
	br     *bufio.Reader
	event  []byte // the current event's name
	closed atomic.Bool
}

var _ Session = (*sseSession)(nil)

var (
	sseEventLine = []byte("event: ")
	sseDataLine  = []byte("data: ")
)

// Dial implements Transport.
func (sseTransport) Dial(ctx context.Context, t DialTarget) (Session, Position, error) {
	if t.AuthMessage {
		return nil, Position{}, fmt.Errorf("bench: sse: an event stream has no auth message (use --auth header)")
	}
	nc, u, err := dialNode(ctx, t, "sse")
	if err != nil {
		return nil, Position{}, err
	}
	s := &sseSession{nc: nc, br: bufio.NewReaderSize(nc, wsReadBuffer)}
	pos, err := s.open(u, t)
	if err != nil {
		_ = nc.Close()
		return nil, Position{}, err
	}
	_ = nc.SetDeadline(time.Time{})
	return s, pos, nil
}

// open sends the request, checks the response head and reads up to the
// ready event.
func (s *sseSession) open(u *url.URL, t DialTarget) (Position, error) {
	path := u.EscapedPath() + "/v1/me/stream"
	if t.Since != "" {
		path += "?since=" + url.QueryEscape(t.Since)
	}
	req := "GET " + path + " HTTP/1.1\r\nHost: " + u.Host + "\r\nAccept: text/event-stream\r\nAuthorization: Bearer " +
		t.Token + "\r\n\r\n"
	if _, err := io.WriteString(s.nc, req); err != nil {
		return Position{}, fmt.Errorf("bench: sse request: %w", err)
	}
	status, err := s.br.ReadSlice('\n')
	if err != nil {
		return Position{}, fmt.Errorf("bench: sse response: %w", err)
	}
	if len(status) < 12 || !bytes.HasPrefix(status, []byte("HTTP/1.")) {
		return Position{}, fmt.Errorf("%w: bad status line %q", errProtocol, status)
	}
	code, err := strconv.Atoi(string(status[9:12]))
	if err != nil {
		return Position{}, fmt.Errorf("%w: bad status line %q", errProtocol, status)
	}
	for {
		line, err := s.br.ReadSlice('\n')
		if err != nil {
			return Position{}, fmt.Errorf("bench: sse response headers: %w", err)
		}
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			break
		}
	}
	if code != 200 {
		return Position{}, &HandshakeError{Status: code}
	}
	for {
		data, err := s.nextData()
		if err != nil {
			return Position{}, fmt.Errorf("bench: sse waiting for ready: %w", err)
		}
		if bytes.Equal(s.event, []byte("ready")) {
			pos, ok := positionField(data)
			if !ok {
				return Position{}, fmt.Errorf("%w: ready without position: %q", errProtocol, data)
			}
			return pos, nil
		}
		if err := closeEvent(s.event, data); err != nil {
			return Position{}, err
		}
	}
}

// nextData reads up to the next data line and returns its value; s.event
// is then the name of the event it belongs to. The slice is valid until the
// next read.
func (s *sseSession) nextData() ([]byte, error) {
	for {
		line, err := s.br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			return nil, errTooLarge
		}
		if err != nil {
			return nil, err
		}
		line = bytes.TrimRight(line, "\r\n")
		switch {
		case bytes.HasPrefix(line, sseEventLine):
			s.event = append(s.event[:0], line[len(sseEventLine):]...)
		case bytes.HasPrefix(line, sseDataLine):
			return line[len(sseDataLine):], nil
		case len(line) == 0:
			s.event = s.event[:0] // the event ended
		}
		// id:, retry: and ": hb" comments need nothing here.
	}
}

// closeEvent turns the server's close event into a *CloseError.
func closeEvent(event, data []byte) error {
	if !bytes.Equal(event, []byte("close")) {
		return nil
	}
	var c struct {
		Code   int    `json:"code"`
		Reason string `json:"reason"`
	}
	_ = json.Unmarshal(data, &c)
	return &CloseError{Code: c.Code, Reason: c.Reason}
}

// Read implements Session.
func (s *sseSession) Read(sink Sink) error {
	var d Delivery
	for {
		data, err := s.nextData()
		if err != nil {
			return err
		}
		switch string(s.event) { // no allocation: compared, not kept
		case "notification":
			if parseNotification(data, &d) {
				sink.Notification(&d)
			} else {
				sink.Malformed(data)
			}
		case "resync":
			if p, ok := positionField(data); ok {
				sink.Resync(p)
			} else {
				sink.Malformed(data)
			}
		case "close":
			return closeEvent(s.event, data)
		}
	}
}

// Close implements Session. An event stream has no close handshake.
func (s *sseSession) Close(bool) {
	if s.closed.CompareAndSwap(false, true) {
		_ = s.nc.Close()
	}
}
