package sse

import (
	"bytes"
	"strconv"
	"sync"

	"github.com/heraldhq/herald/internal/hub"
)

// eventHeads maps hub frames onto the SSE "event:" field. Only notifications
// carry an "id:" line (written before the event name, see appendFrame), so
// Last-Event-ID is always the position of the last notification received.
var eventHeads = [...]string{
	hub.FrameReady:        "event: ready\ndata: ",
	hub.FrameNotification: "event: notification\ndata: ",
	hub.FrameRead:         "event: read\ndata: ",
	hub.FrameDeleted:      "event: deleted\ndata: ",
	hub.FrameUnread:       "event: unread\ndata: ",
	hub.FrameResync:       "event: resync\ndata: ",
	hub.FrameArchived:     "event: archived\ndata: ",
	hub.FrameUnarchived:   "event: unarchived\ndata: ",
	hub.FramePreferences:  "event: preferences\ndata: ",
	hub.FrameEvent:        "event: event\ndata: ", // a live event: no id line, it has no position
}

// heartbeat is a comment line: EventSource ignores it, proxies see traffic.
var heartbeat = []byte(": hb\n\n")

// appendFrame appends one SSE event for f to b:
//
//	id: <position>            (notifications only)
//	event: <name>
//	data: <one line of JSON>
//	<blank line>
//
// The payload is JSON produced by encoding/json, which escapes every control
// character inside strings, so it has no CR or LF of its own and a payload
// can never end the data line, start a new field or dispatch an event.
// appendData enforces that for any payload nevertheless.
func appendFrame(b []byte, f hub.Frame) []byte { return f.AppendPair(b, appendEvent) }

// appendEvent appends f alone (not its Unread follower).
func appendEvent(b []byte, f hub.Frame) []byte {
	if int(f.Kind) >= len(eventHeads) || eventHeads[f.Kind] == "" {
		return b
	}
	if f.Kind == hub.FrameNotification {
		b = append(b, "id: "...)
		b = f.Position.Append(b)
		b = append(b, '\n')
		b = append(b, eventHeads[f.Kind]...)
		start := len(b)
		b = f.AppendNotification(b)
		sanitize(b[start:])
		return append(b, "\n\n"...)
	}
	b = append(b, eventHeads[f.Kind]...)
	return appendData(b, f.Payload)
}

// appendData appends payload as the value of a data line and ends the event.
func appendData(b, payload []byte) []byte {
	start := len(b)
	b = append(b, payload...)
	sanitize(b[start:])
	return append(b, "\n\n"...)
}

// sanitize replaces CR and LF with spaces. In valid JSON they can only be
// insignificant whitespace (inside strings they are escaped), so this keeps
// the JSON's meaning while guaranteeing one data line per event.
func sanitize(p []byte) {
	for {
		i := bytes.IndexAny(p, "\r\n")
		if i < 0 {
			return
		}
		p[i] = ' '
		p = p[i+1:]
	}
}

// appendRetry appends a "retry:" field (reconnection delay advice) in its own
// block; a block without data dispatches no event.
func appendRetry(b []byte, ms int64) []byte {
	b = append(b, "retry: "...)
	b = strconv.AppendInt(b, ms, 10)
	return append(b, "\n\n"...)
}

// appendClose appends the close event: {"code":<code>,"reason":"<label>"}.
// Labels are fixed snake_case identifiers, safe to write unescaped.
func appendClose(b []byte, r hub.CloseReason) []byte {
	b = append(b, `event: close`+"\n"+`data: {"code":`...)
	b = strconv.AppendInt(b, int64(r.Code()), 10)
	b = append(b, `,"reason":"`...)
	b = append(b, r.Label()...)
	return append(b, "\"}\n\n"...)
}

// bufPool recycles event encoding buffers: an event is encoded, handed to
// the transport (which copies what the kernel does not take at once) and the
// buffer returned, so an idle stream holds no encoding buffer.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(bp *[]byte, b []byte) {
	if cap(b) > 64<<10 {
		return
	}
	*bp = b[:0]
	bufPool.Put(bp)
}
