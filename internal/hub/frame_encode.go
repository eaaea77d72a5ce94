package hub

import (
	"encoding/json"
	"time"
	"unicode/utf8"

	"github.com/heraldhq/herald/internal/notification"
)

// The notification object without reflection: EncodeItem writes the
// fixed shape of wireNotification byte for byte as encoding/json does
// (strings with its escaping, data compacted with HTML escaping, times
// as time.Time.MarshalJSON), in one allocation. What it cannot write the
// same way (data that is no valid JSON, a year outside 0..9999) goes to
// encodeItemJSON, the encoding/json path of before.

// EncodeItem is EncodeNotification for an inbox item, which may be
// archived (lists).
func EncodeItem(n *notification.Notification, read, archived bool) []byte {
	if !encodableTime(n.CreatedAt) || !n.ExpiresAt.IsZero() && !encodableTime(n.ExpiresAt) ||
		len(n.Data) > 0 && !json.Valid(n.Data) {
		return encodeItemJSON(n, read, archived)
	}
	size := 160 + len(n.ID) + len(n.Type) + len(n.Title) + len(n.Body) + len(n.Data) + len(n.Category) + len(n.CollapseKey)
	b := make([]byte, 0, size+size/8)
	b = append(b, `{"id":`...)
	b = appendString(b, n.ID)
	b = append(b, `,"type":`...)
	b = appendString(b, n.Type)
	b = append(b, `,"title":`...)
	b = appendString(b, n.Title)
	b = append(b, `,"body":`...)
	b = appendString(b, n.Body)
	if len(n.Data) > 0 {
		b = append(b, `,"data":`...)
		b = appendCompactHTML(b, n.Data)
	}
	b = append(b, `,"created_at":"`...)
	b = n.CreatedAt.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	if !n.ExpiresAt.IsZero() {
		b = append(b, `,"expires_at":"`...)
		b = n.ExpiresAt.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	if n.Category != "" {
		b = append(b, `,"category":`...)
		b = appendString(b, n.Category)
	}
	if n.CollapseKey != "" {
		b = append(b, `,"collapse_key":`...)
		b = appendString(b, n.CollapseKey)
	}
	if read {
		b = append(b, `,"read":true`...)
	} else {
		b = append(b, `,"read":false`...)
	}
	if archived {
		b = append(b, `,"archived":true`...)
	}
	return b
}

// encodableTime reports whether time.Time.MarshalJSON takes t (in UTC).
func encodableTime(t time.Time) bool {
	y := t.UTC().Year()
	return y >= 0 && y <= 9999
}

// encodeItemJSON is EncodeItem with encoding/json (its fallback).
func encodeItemJSON(n *notification.Notification, read, archived bool) []byte {
	w := wireNotification{
		ID: n.ID, Type: n.Type, Title: n.Title, Body: n.Body, Data: n.Data,
		CreatedAt: n.CreatedAt.UTC(), Category: n.Category, CollapseKey: n.CollapseKey, Read: read, Archived: archived,
	}
	if len(w.Data) == 0 {
		w.Data = nil
	}
	if !n.ExpiresAt.IsZero() {
		t := n.ExpiresAt.UTC()
		w.ExpiresAt = &t
	}
	b, err := json.Marshal(w)
	if err != nil {
		// Data is validated as a JSON object before it is stored; a failure
		// here means corrupted data, which we still deliver without it.
		w.Data = nil
		b, _ = json.Marshal(w)
	}
	return b[:len(b)-1]
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string exactly as encoding/json
// writes it: <, > and & escaped, U+2028 and U+2029 escaped, control
// characters escaped, each byte of invalid UTF-8 as \ufffd.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendCompactHTML appends valid JSON compacted with HTML escaping, as
// encoding/json writes a json.RawMessage.
func appendCompactHTML(b, data []byte) []byte {
	inStr := false
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch {
		case c == '<' || c == '>' || c == '&':
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			continue
		case c == 0xE2 && i+2 < len(data) && data[i+1] == 0x80 && data[i+2]&^1 == 0xA8:
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[data[i+2]&0xF])
			i += 2
			continue
		case inStr && c == '\\':
			b = append(b, c, data[i+1])
			i++
			continue
		case c == '"':
			inStr = !inStr
		case !inStr && (c == ' ' || c == '\t' || c == '\n' || c == '\r'):
			continue
		}
		b = append(b, c)
	}
	return b
}
