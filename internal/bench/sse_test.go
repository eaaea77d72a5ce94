package bench

import (
	"bufio"
	"errors"
	"strings"
	"testing"
)

// TestSSEReadEvents: a stream's events reach the sink (heartbeats, ids,
// unread and other events ignored), a malformed notification is reported,
// and the close event ends Read with the server's code.
func TestSSEReadEvents(t *testing.T) {
	stream := "retry: 3000\n\n: hb\n\n" +
		"id: 1.0\nevent: notification\ndata: {\"id\":\"x\",\"data\":{\"t\":5,\"s\":1,\"u\":3},\"position\":\"1.0\"}\n\n" +
		"event: unread\ndata: {\"count\":1}\n\n" +
		"event: notification\ndata: {\"id\":\"y\"}\n\n" +
		"event: resync\ndata: {\"position\":\"9.2\"}\n\n" +
		"event: close\ndata: {\"code\":4009,\"reason\":\"shutdown\"}\n\n"
	s := &sseSession{br: bufio.NewReader(strings.NewReader(stream))}
	sink := &recordingSink{}
	err := s.Read(sink)
	var ce *CloseError
	if !errors.As(err, &ce) || ce.Code != 4009 || ce.Reason != "shutdown" {
		t.Fatalf("Read ended with %v", err)
	}
	if len(sink.got) != 1 || sink.got[0] != (Delivery{Sent: 5, Seq: 1, User: 3, Position: Position{User: 1}}) {
		t.Fatalf("notifications %+v", sink.got)
	}
	if len(sink.resyncs) != 1 || sink.resyncs[0] != (Position{User: 9, Tenant: 2}) {
		t.Fatalf("resyncs %+v", sink.resyncs)
	}
	if sink.malformed != 1 {
		t.Fatalf("%d malformed", sink.malformed)
	}
}
