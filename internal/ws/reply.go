package ws

import (
	"errors"
	"fmt"

	"github.com/lesismal/nbio/nbhttp/websocket"

	"github.com/heraldhq/herald/internal/hub"
	"github.com/heraldhq/herald/internal/session"
	"github.com/heraldhq/herald/internal/wspoll"
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{session.ErrInvalid}, args...)...)
}

// replyTypes is the "type" of a successful reply to each request; requests
// not listed are answered with "ack".
var replyTypes = map[session.Name]string{
	session.NameList:        `{"type":"notification:list"`,
	session.NameUnreadCount: `{"type":"notification:unread-count"`,
	session.NamePing:        `{"type":"pong"`,
}

// Reply implements session.Transport: {"type":…,"ref":…,<fields>}.
func (c *conn) Reply(r *session.Reply) error {
	var b []byte
	switch t, ok := replyTypes[r.Name]; {
	case r.Err != nil:
		b = []byte(`{"type":"notification:error"`)
	case ok:
		b = []byte(t)
	default:
		b = []byte(`{"type":"ack"`)
	}
	if len(r.Ref.JSON) > 0 {
		b = append(b, `,"ref":`...)
		b = append(b, r.Ref.JSON...)
	}
	b = append(r.AppendFields(b), '}')
	if err := c.write(websocket.TextMessage, b, false); errors.Is(err, wspoll.ErrBufferFull) {
		return session.ErrBufferFull
	} else if err != nil {
		return err
	}
	return nil
}

// frameTypes maps hub frames to the "type" of the JSON message.
var frameTypes = [...]string{
	hub.FrameReady:        `{"type":"ready",`,
	hub.FrameNotification: `{"type":"notification","notification":`,
	hub.FrameRead:         `{"type":"notification:read",`,
	hub.FrameDeleted:      `{"type":"notification:deleted",`,
	hub.FrameUnread:       `{"type":"unread",`,
	hub.FrameResync:       `{"type":"resync",`,
}

func appendFrame(b []byte, f hub.Frame) []byte {
	b = append(b, frameTypes[f.Kind]...)
	if f.Kind == hub.FrameNotification {
		b = f.AppendNotification(b)
		return append(b, '}')
	}
	return append(b, f.Payload[1:]...) // the payload's fields and closing brace
}
