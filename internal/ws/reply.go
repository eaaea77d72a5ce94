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

// Reply implements session.Transport: {"type":…,"ref":…,<fields>}. A
// reply that carries a result (a page, a count) has its request's name as
// type; an error is notification:error, ping's answer pong, and every other
// success ack.
func (c *conn) Reply(r *session.Reply) error {
	b := append(make([]byte, 0, 128), `{"type":"`...)
	switch {
	case r.Err != nil:
		b = append(b, "notification:error"...)
	case r.HasResult():
		b = append(b, r.Name.String()...)
	case r.Name == session.NamePing:
		b = append(b, "pong"...)
	default:
		b = append(b, "ack"...)
	}
	b = append(b, '"')
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
	hub.FrameArchived:     `{"type":"notification:archived",`,
	hub.FrameUnarchived:   `{"type":"notification:unarchived",`,
	hub.FramePreferences:  `{"type":"preferences",`,
	hub.FrameEvent:        `{"type":"event","event":`,
}

func appendFrame(b []byte, f hub.Frame) []byte {
	b = append(b, frameTypes[f.Kind]...)
	switch f.Kind {
	case hub.FrameNotification:
		b = f.AppendNotification(b)
		return append(b, '}')
	case hub.FrameEvent:
		b = append(b, f.Payload...)
		return append(b, '}')
	}
	return append(b, f.Payload[1:]...) // the payload's fields and closing brace
}
