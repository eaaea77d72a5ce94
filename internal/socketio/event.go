package socketio

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/heraldhq/herald/internal/notification"
	proto "github.com/heraldhq/herald/internal/session"
)

// maxJSONDepth bounds the nesting of an event's argument (and of a
// CONNECT's auth payload).
const maxJSONDepth = 4

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{proto.ErrInvalid}, args...)...)
}

// hasDuplicateKey reports an object with a name twice (which one would
// count is up to the parser).
func hasDuplicateKey(data []byte) bool { _, dup := notification.DuplicateKey(data); return dup }

// decodeEvent decodes the payload of an EVENT packet, ["name"] or
// ["name", {…}], into a request: the event name is the request's wire name
// and the object its arguments (proto.Args). ackID is the packet's id
// (proto.NoAck when the client wants no acknowledgement). Errors wrap
// proto.ErrInvalid; the request carries the ack id even then.
func decodeEvent(data json.RawMessage, ackID int64) (proto.Request, error) {
	ref := proto.Ref{Ack: ackID}
	bad := proto.Request{Ref: ref}
	if d := notification.JSONDepth(data, maxJSONDepth+1); d > maxJSONDepth+1 {
		return bad, invalid("nesting depth %d over %d", d, maxJSONDepth+1)
	}
	if k, dup := notification.DuplicateKey(data); dup {
		return bad, invalid("duplicate key %s", k)
	}
	var args []json.RawMessage
	if err := json.Unmarshal(data, &args); err != nil {
		return bad, invalid("payload: %v", err)
	}
	if len(args) == 0 || len(args) > 2 {
		return bad, invalid("%d arguments", len(args))
	}
	var name string
	if err := json.Unmarshal(args[0], &name); err != nil {
		return bad, invalid("event name is not a string")
	}
	var a proto.Args
	if len(args) == 2 && !bytes.Equal(bytes.TrimSpace(args[1]), []byte("null")) {
		dec := json.NewDecoder(bytes.NewReader(args[1]))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&a); err != nil {
			return bad, invalid("%s: argument: %v", name, err)
		}
	}
	return proto.Parse(name, &a, ref)
}

// connectAuth is the auth payload of a CONNECT ({token, since}); other
// fields are ignored, as Socket.IO servers do.
type connectAuth struct {
	Token string  `json:"token"`
	Since *string `json:"since"`
}
