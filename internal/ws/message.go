package ws

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"

	"github.com/heraldhq/herald/internal/notification"
	"github.com/heraldhq/herald/internal/session"
)

// maxJSONDepth bounds the nesting of a client message.
const maxJSONDepth = 4

// inMessage is the wire form of every client message: the request's wire
// name in "type", an optional "ref" echoed in the reply, and the request's
// arguments (session.Args) alongside.
type inMessage struct {
	Type string          `json:"type"`
	Ref  json.RawMessage `json:"ref,omitempty"`
	session.Args
}

// decodeMessage parses one text frame into a request. Errors wrap
// session.ErrInvalid; the request carries the ref even then, for the reply.
func decodeMessage(data []byte) (session.Request, error) {
	var m inMessage
	if !utf8.Valid(data) {
		return session.Request{}, invalid("invalid UTF-8")
	}
	if d := notification.JSONDepth(data, maxJSONDepth); d > maxJSONDepth {
		return session.Request{}, invalid("nesting depth %d over %d", d, maxJSONDepth)
	}
	if k, dup := notification.DuplicateKey(data); dup {
		return session.Request{Ref: refOf(data)}, invalid("duplicate key %s", k)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return session.Request{Ref: refOf(data)}, invalid("json: %v", err)
	}
	if dec.More() {
		return session.Request{}, invalid("trailing data")
	}
	if err := session.ValidRef(m.Ref); err != nil {
		return session.Request{}, err
	}
	return session.Parse(m.Type, &m.Args, session.Ref{JSON: m.Ref, Ack: session.NoAck})
}

// refOf reads the ref of a message whose fields did not decode (a wrong
// type, an unknown field), so that its error reply still carries it; nil
// when the message is not a JSON object or its ref is not valid.
func refOf(data []byte) session.Ref {
	ref := session.Ref{Ack: session.NoAck}
	var m struct {
		Ref json.RawMessage `json:"ref"`
	}
	if json.Unmarshal(data, &m) == nil && session.ValidRef(m.Ref) == nil {
		ref.JSON = m.Ref
	}
	return ref
}
