package socketio

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
)

// packetType is a Socket.IO v5 packet type.
type packetType uint8

// Socket.IO packet types.
const (
	typeConnect packetType = iota
	typeDisconnect
	typeEvent
	typeAck
	typeConnectError
	typeBinaryEvent
	typeBinaryAck
)

// Decoding limits that do not depend on configuration.
const (
	maxNamespaceLen = 128
	maxAckIDDigits  = 15 // fits a JavaScript safe integer
)

// packet is a decoded Socket.IO packet. Data aliases the decoder's input.
type packet struct {
	Type        packetType
	Namespace   string // "/" when absent
	ID          int64  // acknowledgement id; -1 when absent
	Attachments int    // binary attachments that follow (binary types only)
	Data        json.RawMessage
}

// reservedEvents may not be sent by a peer (socket.io-parser's list).
var reservedEvents = map[string]bool{
	"connect": true, "connect_error": true, "disconnect": true,
	"disconnecting": true, "newListener": true, "removeListener": true,
}

// decodePacket parses the text part of a Socket.IO packet (without the
// Engine.IO message prefix), as socket.io-parser's decodeString does, and
// checks the payload shape of its type. maxAttachments caps the declared
// number of binary attachments.
func decodePacket(s []byte, maxAttachments int) (packet, error) {
	p := packet{Namespace: "/", ID: -1}
	if len(s) == 0 {
		return p, malformed("empty socket.io packet")
	}
	if s[0] < '0' || s[0] > '6' {
		return p, malformed("unknown socket.io packet type %q", s[0])
	}
	p.Type = packetType(s[0] - '0')
	i := 1
	if p.Type == typeBinaryEvent || p.Type == typeBinaryAck {
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == start || i >= len(s) || s[i] != '-' || i-start > 4 {
			return p, malformed("illegal attachments")
		}
		n, _ := strconv.Atoi(string(s[start:i]))
		if n > maxAttachments {
			return p, malformed("%d attachments over the limit of %d", n, maxAttachments)
		}
		p.Attachments = n
		i++ // '-'
	}
	if i < len(s) && s[i] == '/' {
		start := i
		for i < len(s) && s[i] != ',' {
			i++
		}
		if i-start > maxNamespaceLen {
			return p, malformed("namespace too long")
		}
		p.Namespace = string(s[start:i])
		if i < len(s) {
			i++ // ','
		}
	}
	if i < len(s) && s[i] >= '0' && s[i] <= '9' {
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i-start > maxAckIDDigits {
			return p, malformed("ack id too long")
		}
		p.ID, _ = strconv.ParseInt(string(s[start:i]), 10, 64)
	}
	if i < len(s) {
		p.Data = json.RawMessage(s[i:])
		if !json.Valid(p.Data) {
			return p, malformed("payload is not JSON")
		}
	}
	if err := checkPayload(&p); err != nil {
		return p, err
	}
	return p, nil
}

// checkPayload applies socket.io-parser's isPayloadValid, made stricter where
// the protocol says "MUST" (events and acks carry an array).
func checkPayload(p *packet) error {
	first := firstByte(p.Data)
	switch p.Type {
	case typeConnect:
		if p.Data != nil && first != '{' {
			return malformed("CONNECT payload must be an object")
		}
	case typeDisconnect:
		if p.Data != nil {
			return malformed("DISCONNECT has no payload")
		}
	case typeConnectError:
		if p.Data != nil && first != '{' && first != '"' {
			return malformed("CONNECT_ERROR payload must be an object or a string")
		}
	case typeEvent, typeBinaryEvent:
		if first != '[' {
			return malformed("EVENT payload must be an array")
		}
		name, err := firstElement(p.Data)
		if err != nil {
			return err
		}
		switch v := name.(type) {
		case json.Number:
		case string:
			if reservedEvents[v] {
				return malformed("reserved event name %q", v)
			}
		default:
			return malformed("event name must be a string or a number")
		}
	case typeAck, typeBinaryAck:
		if first != '[' {
			return malformed("ACK payload must be an array")
		}
		if p.ID < 0 {
			return malformed("ACK without an id")
		}
	}
	return nil
}

func firstByte(b []byte) byte {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

// firstElement returns the first element of a JSON array if it is a string or
// a number (as json.Number); anything else is an error.
func firstElement(arr []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(arr))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil { // '['
		return nil, malformed("event payload: %v", err)
	}
	tok, err := dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, malformed("empty event payload")
		}
		return nil, malformed("event payload: %v", err)
	}
	switch v := tok.(type) {
	case string, json.Number:
		return v, nil
	case json.Delim:
		if v == ']' {
			return nil, malformed("empty event payload")
		}
	}
	return nil, malformed("event name must be a string or a number")
}

// reconstruct returns the packet's payload as a Go value with every
// {"_placeholder":true,"num":N} replaced by attachment N, as socket.io-parser's
// reconstructPacket does. A placeholder pointing outside atts is an error.
func reconstruct(data json.RawMessage, atts [][]byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, malformed("payload: %v", err)
	}
	return replacePlaceholders(v, atts)
}

func replacePlaceholders(v any, atts [][]byte) (any, error) {
	switch t := v.(type) {
	case []any:
		for i := range t {
			r, err := replacePlaceholders(t[i], atts)
			if err != nil {
				return nil, err
			}
			t[i] = r
		}
	case map[string]any:
		if ph, _ := t["_placeholder"].(bool); ph {
			num, ok := t["num"].(json.Number)
			if !ok {
				return nil, malformed("illegal attachments")
			}
			n, err := num.Int64()
			if err != nil || n < 0 || n >= int64(len(atts)) {
				return nil, malformed("illegal attachments")
			}
			return atts[n], nil
		}
		for k, e := range t {
			r, err := replacePlaceholders(e, atts)
			if err != nil {
				return nil, err
			}
			t[k] = r
		}
	}
	return v, nil
}

// encodePacket returns the text part of p (no Engine.IO prefix). The hot paths
// use the append helpers below instead.
func encodePacket(p packet) []byte {
	b := []byte{'0' + byte(p.Type)}
	if p.Type == typeBinaryEvent || p.Type == typeBinaryAck {
		b = strconv.AppendInt(b, int64(p.Attachments), 10)
		b = append(b, '-')
	}
	b = appendNamespace(b, p.Namespace)
	if p.ID >= 0 {
		b = strconv.AppendInt(b, p.ID, 10)
	}
	return append(b, p.Data...)
}

// appendNamespace writes "<nsp>," for namespaces other than "/" (the comma is
// always written, as socket.io-parser does).
func appendNamespace(b []byte, nsp string) []byte {
	if nsp == "" || nsp == "/" {
		return b
	}
	b = append(b, nsp...)
	return append(b, ',')
}

// appendHeader starts a server message: the Engine.IO message type, the
// Socket.IO type, the namespace and the ack id (id < 0: none).
func appendHeader(b []byte, t packetType, nsp string, id int64) []byte {
	b = append(b, eioMessage, '0'+byte(t))
	b = appendNamespace(b, nsp)
	if id >= 0 {
		b = strconv.AppendInt(b, id, 10)
	}
	return b
}

// appendConnect appends a CONNECT reply carrying the socket id.
func appendConnect(b []byte, nsp, sid string) []byte {
	b = appendHeader(b, typeConnect, nsp, -1)
	b = append(b, `{"sid":"`...)
	b = append(b, sid...)
	return append(b, `"}`...)
}

// appendConnectError appends a CONNECT_ERROR; message must be JSON-safe.
func appendConnectError(b []byte, nsp, message string) []byte {
	b = appendHeader(b, typeConnectError, nsp, -1)
	b = append(b, `{"message":"`...)
	b = append(b, message...)
	return append(b, `"}`...)
}

// appendDisconnect appends a DISCONNECT.
func appendDisconnect(b []byte, nsp string) []byte {
	return appendHeader(b, typeDisconnect, nsp, -1)
}

// appendEvent appends an EVENT whose single argument is the JSON value arg.
func appendEvent(b []byte, nsp, name string, arg []byte) []byte {
	b = appendEventStart(b, nsp, name)
	b = append(b, arg...)
	return append(b, ']')
}

// appendEventStart appends an EVENT up to its first argument: `42<nsp>,["name",`.
func appendEventStart(b []byte, nsp, name string) []byte {
	b = appendHeader(b, typeEvent, nsp, -1)
	b = append(b, `["`...)
	b = append(b, name...)
	return append(b, `",`...)
}

// appendAck appends an ACK whose single argument is the JSON value arg.
func appendAck(b []byte, nsp string, id int64, arg []byte) []byte {
	b = appendHeader(b, typeAck, nsp, id)
	b = append(b, '[')
	b = append(b, arg...)
	return append(b, ']')
}
