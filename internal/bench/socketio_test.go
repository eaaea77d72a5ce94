package bench

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestSocketIOSession: the Socket.IO client connects "/" with auth
// {token, since} after the open packet, takes ready's position, answers
// Engine.IO pings, hands notifications to the sink and ends with the
// server's close code.
func TestSocketIOSession(t *testing.T) {
	base := fakeServerFor(t, 101, func(req *http.Request) {
		if req.URL.Path != "/socket.io/" || req.URL.Query().Get("EIO") != "4" || req.URL.Query().Get("transport") != "websocket" {
			t.Errorf("upgrade url %s", req.URL)
		}
	}, func(c net.Conn, br *bufio.Reader) {
		_, _ = c.Write(serverFrame(true, opText, `0{"sid":"s1","upgrades":[],"pingInterval":25000,"pingTimeout":20000}`))
		if op, p := readClientFrame(t, br); op != opText || string(p) != `40{"token":"tok","since":"3.4"}` {
			t.Errorf("connect packet %d %q", op, p)
		}
		_, _ = c.Write(serverFrame(true, opText, `40{"sid":"n1"}`))
		_, _ = c.Write(serverFrame(true, opText, `42["ready",{"user":"u","tenant":"t","unread":0,"position":"3.4"}]`))
		_, _ = c.Write(serverFrame(true, opText, `2`))
		if op, p := readClientFrame(t, br); op != opText || string(p) != "3" {
			t.Errorf("pong %d %q", op, p)
		}
		_, _ = c.Write(serverFrame(true, opText, `42["notification",{"id":"x","data":{"t":7,"s":2,"u":1},"position":"4.4"}]`))
		_, _ = c.Write(serverFrame(true, opText, `42["unread",{"count":1}]`))
		_, _ = c.Write(serverFrame(true, opClose, "\x0f\xa9shutdown")) // 4009
		_, _ = br.ReadByte()                                           // until the client hangs up
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, pos, err := sioTransport{}.Dial(ctx, DialTarget{BaseURL: base, Token: "tok", Since: "3.4"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(false)
	if pos != (Position{User: 3, Tenant: 4}) {
		t.Fatalf("position %v", pos)
	}
	sink := &recordingSink{}
	err = s.Read(sink)
	var ce *CloseError
	if !errors.As(err, &ce) || ce.Code != 4009 {
		t.Fatalf("Read ended with %v", err)
	}
	if len(sink.got) != 1 || sink.got[0] != (Delivery{Sent: 7, Seq: 2, User: 1, Position: Position{User: 4, Tenant: 4}}) {
		t.Fatalf("notifications %+v", sink.got)
	}
}
