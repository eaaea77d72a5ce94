package bench

import (
	"bytes"
	"math"
	"strconv"
)

// Position is a client's place in its stream: "<user>.<tenant>" on the wire.
type Position struct {
	User, Tenant int64
}

func (p Position) String() string {
	b := strconv.AppendInt(make([]byte, 0, 24), p.User, 10)
	b = append(b, '.')
	return string(strconv.AppendInt(b, p.Tenant, 10))
}

// parsePosition decodes "<user>.<tenant>"; ok is false for anything else.
func parsePosition(b []byte) (p Position, ok bool) {
	i := bytes.IndexByte(b, '.')
	if i <= 0 || i == len(b)-1 {
		return p, false
	}
	if p.User, ok = parseUint(b[:i]); !ok {
		return p, false
	}
	p.Tenant, ok = parseUint(b[i+1:])
	return p, ok
}

// parseUint decodes a non-negative decimal int64.
func parseUint(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	if n > math.MaxInt64 {
		return 0, false
	}
	return int64(n), true
}

// Delivery is what the checks need from one notification.
type Delivery struct {
	Sent      int64 // data.t: publisher's unix ns just before the request
	Seq       int64 // data.s: publisher's sequence number
	User      int64 // data.u: addressed user index; -1 for broadcasts
	Broadcast bool  // data.b
	Position  Position
	Live      bool // a live event (no position)
}

var (
	keyData     = []byte(`"data":{`)
	keyPosition = []byte(`"position":"`)
)

// parseNotification fills d from a notification object (or a message that
// embeds one). It looks only at the bench's own data object and the position,
// so it costs one scan of the message and no allocation.
func parseNotification(msg []byte, d *Delivery) bool {
	if !parseData(msg, d) {
		return false
	}
	k := bytes.LastIndex(msg, keyPosition)
	if k < 0 {
		return false
	}
	pos := msg[k+len(keyPosition):]
	end := bytes.IndexByte(pos, '"')
	if end < 0 {
		return false
	}
	var ok bool
	d.Position, ok = parsePosition(pos[:end])
	return ok
}

// parseLive fills d from a live event message (which has no position).
func parseLive(msg []byte, d *Delivery) bool {
	if !parseData(msg, d) {
		return false
	}
	d.Live = true
	return true
}

// parseData reads the bench's data object ({"t","s","u"|"b"}) into d.
func parseData(msg []byte, d *Delivery) bool {
	*d = Delivery{User: -1}
	i := bytes.Index(msg, keyData)
	if i < 0 {
		return false
	}
	rest := msg[i+len(keyData):]
	var seen int
	for len(rest) > 0 && rest[0] != '}' {
		// "k":<digits>[,]
		if len(rest) < 5 || rest[0] != '"' || rest[2] != '"' || rest[3] != ':' {
			return false
		}
		key := rest[1]
		rest = rest[4:]
		j := 0
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		n, ok := parseUint(rest[:j])
		if !ok {
			return false
		}
		switch key {
		case 't':
			d.Sent = n
			seen |= 1
		case 's':
			d.Seq = n
			seen |= 2
		case 'u':
			d.User = n
		case 'b':
			d.Broadcast = n == 1
		}
		rest = rest[j:]
		if len(rest) > 0 && rest[0] == ',' {
			rest = rest[1:]
		}
	}
	return seen == 3 && (d.User < 0) != !d.Broadcast
}

// positionField finds "position":"…" in a ready or resync message.
func positionField(msg []byte) (Position, bool) {
	k := bytes.LastIndex(msg, keyPosition)
	if k < 0 {
		return Position{}, false
	}
	pos := msg[k+len(keyPosition):]
	end := bytes.IndexByte(pos, '"')
	if end < 0 {
		return Position{}, false
	}
	return parsePosition(pos[:end])
}

// appendUnicast appends a publish item addressed to one user.
func appendUnicast(b []byte, tenant, userPrefix string, user int, sent, seq int64) []byte {
	b = append(b, `{"tenant":"`...)
	b = append(b, tenant...)
	b = append(b, `","to":{"users":["`...)
	b = appendUserName(b, userPrefix, user)
	b = append(b, `"]},"type":"bench.unicast","title":"bench","data":{"t":`...)
	b = strconv.AppendInt(b, sent, 10)
	b = append(b, `,"s":`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `,"u":`...)
	b = strconv.AppendInt(b, int64(user), 10)
	return append(b, `}}`...)
}

// appendBroadcast appends a tenant-wide publish item.
func appendBroadcast(b []byte, tenant string, sent, seq int64) []byte {
	b = append(b, `{"tenant":"`...)
	b = append(b, tenant...)
	b = append(b, `","to":{"tenant":true},"type":"bench.broadcast","title":"bench","data":{"t":`...)
	b = strconv.AppendInt(b, sent, 10)
	b = append(b, `,"s":`...)
	b = strconv.AppendInt(b, seq, 10)
	return append(b, `,"b":1}}`...)
}

// appendLive appends a live event (ephemeral, never stored) to topic.
func appendLive(b []byte, tenant, topic string, sent, seq int64) []byte {
	b = append(b, `{"tenant":"`...)
	b = append(b, tenant...)
	b = append(b, `","to":{"topics":["`...)
	b = append(b, topic...)
	b = append(b, `"]},"type":"bench.live","ephemeral":true,"data":{"t":`...)
	b = strconv.AppendInt(b, sent, 10)
	b = append(b, `,"s":`...)
	b = strconv.AppendInt(b, seq, 10)
	return append(b, `,"b":1}}`...)
}

// appendUserName appends the name of user index i: "<prefix>-<i>".
func appendUserName(b []byte, prefix string, i int) []byte {
	b = append(b, prefix...)
	b = append(b, '-')
	return strconv.AppendInt(b, int64(i), 10)
}
