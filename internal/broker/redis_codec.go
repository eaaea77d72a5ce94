package broker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/heraldhq/herald/internal/notification"
)

// Wire format of the Redis broker. Every message starts with a type byte.
//
//	event (msgEvent, version 2):
//	  kind u8 | tenant str | user str | ids (uvarint n, n×str) | all u8 |
//	  unread varint | tokenID str | revokedAt time | revokedUntil time |
//	  tenantSeq varint | unseen varint | byCategory (uvarint n+1, n×(str |
//	  varint); 0 for nil) | prefs (u8 present; then categories and types,
//	  each uvarint n, n×str) | notification (u8 present; then id str |
//	  tenant str | audience kind u8 | audience users (uvarint n, n×str) |
//	  role str | type str | title str | body str | data bytes | createdAt
//	  time | expiresAt time | category str | collapseKey str) | deliveries
//	  (uvarint n, n×(user str | seq varint | unread varint | replaces str |
//	  replacedUnread u8 | replacedUnseen u8))
//
// Version 2 (issue 15) added unseen, byCategory, prefs, category,
// collapseKey and the replacement fields of a delivery.
//
//	probe (msgProbe): seq uvarint
//	kick  (msgKick): empty. A node whose publish failed tells every node to
//	  catch its clients up from the store once Redis answers again.
//
// str is uvarint length + bytes; bytes is uvarint (length+1) + bytes, 0 for
// nil; time is uvarint 0 for the zero time, else uvarint 1 + varint Unix
// seconds + uvarint nanoseconds. Deliveries come last so that an explicit-user
// event published to several partitions encodes everything before them once.
//
// The format is internal to a cluster: every node must run a version that
// reads the version byte it receives. A new field gets a new version byte.
const (
	msgEvent byte = 2
	msgProbe byte = 0x50 // 'P'
	msgKick  byte = 0x4b // 'K'
)

// errCodec is returned for a message that does not decode.
var errCodec = errors.New("broker: malformed redis message")

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendStrs appends a string list: uvarint n, n×str.
func appendStrs(b []byte, list []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(list)))
	for _, s := range list {
		b = appendStr(b, s)
	}
	return b
}

// appendBytes appends bytes: uvarint 0 for nil, else uvarint (length+1) and them.
func appendBytes(b, p []byte) []byte {
	if p == nil {
		return append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(p))+1)
	return append(b, p...)
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	b = append(b, 1)
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

// appendEventHead encodes ev without its deliveries.
func appendEventHead(b []byte, ev *notification.Event) []byte {
	b = append(b, msgEvent, byte(ev.Kind))
	b = appendStr(b, ev.Tenant)
	b = appendStr(b, ev.User)
	b = appendStrs(b, ev.IDs)
	b = appendBool(b, ev.All)
	b = binary.AppendVarint(b, ev.Unread)
	b = appendStr(b, ev.TokenID)
	b = appendTime(b, ev.RevokedAt)
	b = appendTime(b, ev.RevokedUntil)
	b = binary.AppendVarint(b, ev.TenantSeq)
	b = binary.AppendVarint(b, ev.Unseen)
	b = appendCounts(b, ev.ByCategory)
	b = appendPrefs(b, ev.Prefs)
	n := ev.Notification
	if n == nil {
		return append(b, 0)
	}
	b = append(b, 1)
	b = appendStr(b, n.ID)
	b = appendStr(b, n.Tenant)
	b = append(b, byte(n.Audience.Kind))
	b = appendStrs(b, n.Audience.Users)
	b = appendStr(b, n.Audience.Role)
	b = appendStr(b, n.Type)
	b = appendStr(b, n.Title)
	b = appendStr(b, n.Body)
	b = appendBytes(b, n.Data)
	b = appendTime(b, n.CreatedAt)
	b = appendTime(b, n.ExpiresAt)
	b = appendStr(b, n.Category)
	return appendStr(b, n.CollapseKey)
}

// appendCounts encodes a map of counts (nil and empty differ), sorted.
func appendCounts(b []byte, m map[string]int64) []byte {
	if m == nil {
		return append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(m))+1)
	for _, k := range slices.Sorted(maps.Keys(m)) {
		b = appendStr(b, k)
		b = binary.AppendVarint(b, m[k])
	}
	return b
}

// appendPrefs encodes preferences (nil for none).
func appendPrefs(b []byte, p *notification.Preferences) []byte {
	if p == nil {
		return append(b, 0)
	}
	b = append(b, 1)
	for _, list := range [][]string{p.MutedCategories, p.MutedTypes} {
		b = binary.AppendUvarint(b, uint64(len(list)))
		for _, s := range list {
			b = appendStr(b, s)
		}
	}
	return b
}

// appendDeliveries encodes the tail of an event message.
func appendDeliveries(b []byte, ds []notification.Delivery) []byte {
	b = binary.AppendUvarint(b, uint64(len(ds)))
	for i := range ds {
		b = appendStr(b, ds[i].User)
		b = binary.AppendVarint(b, ds[i].Seq)
		b = binary.AppendVarint(b, ds[i].Unread)
		b = appendStr(b, ds[i].Replaces)
		b = appendBool(b, ds[i].ReplacedUnread)
		b = appendBool(b, ds[i].ReplacedUnseen)
	}
	return b
}

// encodeEvent is the whole message for ev (all its deliveries).
func encodeEvent(ev *notification.Event) []byte {
	b := make([]byte, 0, 256)
	b = appendEventHead(b, ev)
	return appendDeliveries(b, ev.Deliveries)
}

// reader decodes from a string without copying: decoded strings share the
// message's memory (one allocation per message, owned by the event).
type reader struct {
	s   string
	err error
}

func (r *reader) fail() {
	if r.err == nil {
		r.err = errCodec
	}
	r.s = ""
}

func (r *reader) byte() byte {
	if len(r.s) < 1 {
		r.fail()
		return 0
	}
	c := r.s[0]
	r.s = r.s[1:]
	return c
}

func (r *reader) uvarint() uint64 {
	var x uint64
	var shift uint
	for i := 0; i < binary.MaxVarintLen64; i++ {
		if i >= len(r.s) {
			r.fail()
			return 0
		}
		c := r.s[i]
		if c < 0x80 {
			if i == binary.MaxVarintLen64-1 && c > 1 {
				r.fail()
				return 0
			}
			r.s = r.s[i+1:]
			return x | uint64(c)<<shift
		}
		x |= uint64(c&0x7f) << shift
		shift += 7
	}
	r.fail()
	return 0
}

func (r *reader) varint() int64 {
	ux := r.uvarint()
	x := int64(ux >> 1)
	if ux&1 != 0 {
		x = ^x
	}
	return x
}

// count reads a collection length: each element takes at least min bytes, so
// a length beyond what is left is malformed (and cannot make us allocate).
func (r *reader) count(min int) int {
	n := r.uvarint()
	if n > uint64(len(r.s)/min) {
		r.fail()
		return 0
	}
	return int(n)
}

func (r *reader) str() string {
	n := r.uvarint()
	if n > uint64(len(r.s)) {
		r.fail()
		return ""
	}
	s := r.s[:n]
	r.s = r.s[n:]
	return s
}

// strs reads a string list (appendStrs); nil when empty.
func (r *reader) strs() []string {
	n := r.count(1)
	if n == 0 {
		return nil
	}
	out := make([]string, n)
	for i := range out {
		out[i] = r.str()
	}
	return out
}

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if n == 0 {
		return nil
	}
	n--
	if n > uint64(len(r.s)) {
		r.fail()
		return nil
	}
	b := []byte(r.s[:n])
	r.s = r.s[n:]
	return b
}

func (r *reader) bool() bool {
	switch r.byte() {
	case 0:
		return false
	case 1:
		return true
	}
	r.fail()
	return false
}

func (r *reader) time() time.Time {
	switch r.byte() {
	case 0:
		return time.Time{}
	case 1:
		sec := r.varint()
		nsec := r.uvarint()
		if nsec >= 1e9 {
			r.fail()
			return time.Time{}
		}
		return time.Unix(sec, int64(nsec)).UTC()
	}
	r.fail()
	return time.Time{}
}

// decodeEvent decodes a msgEvent message.
func decodeEvent(msg string) (*notification.Event, error) {
	r := reader{s: msg}
	if r.byte() != msgEvent {
		return nil, fmt.Errorf("%w: not an event", errCodec)
	}
	ev := &notification.Event{Kind: notification.EventKind(r.byte())}
	ev.Tenant = r.str()
	ev.User = r.str()
	ev.IDs = r.strs()
	ev.All = r.bool()
	ev.Unread = r.varint()
	ev.TokenID = r.str()
	ev.RevokedAt = r.time()
	ev.RevokedUntil = r.time()
	ev.TenantSeq = r.varint()
	ev.Unseen = r.varint()
	if k := r.count(1); k > 0 {
		ev.ByCategory = make(map[string]int64, k-1)
		for range k - 1 {
			c := r.str()
			ev.ByCategory[c] = r.varint()
		}
	}
	if r.bool() {
		p := &notification.Preferences{}
		for _, list := range []*[]string{&p.MutedCategories, &p.MutedTypes} {
			if k := r.count(1); k > 0 {
				*list = make([]string, k)
				for i := range *list {
					(*list)[i] = r.str()
				}
			}
		}
		ev.Prefs = p
	}
	if r.bool() {
		n := &notification.Notification{}
		n.ID = r.str()
		n.Tenant = r.str()
		n.Audience.Kind = notification.AudienceKind(r.byte())
		n.Audience.Users = r.strs()
		n.Audience.Role = r.str()
		n.Type = r.str()
		n.Title = r.str()
		n.Body = r.str()
		n.Data = r.bytes()
		n.CreatedAt = r.time()
		n.ExpiresAt = r.time()
		n.Category = r.str()
		n.CollapseKey = r.str()
		ev.Notification = n
	}
	if k := r.count(6); k > 0 {
		ev.Deliveries = make([]notification.Delivery, k)
		for i := range ev.Deliveries {
			d := &ev.Deliveries[i]
			d.User = r.str()
			d.Seq = r.varint()
			d.Unread = r.varint()
			d.Replaces = r.str()
			d.ReplacedUnread = r.bool()
			d.ReplacedUnseen = r.bool()
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.s) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", errCodec, len(r.s))
	}
	if ev.Kind < notification.EventNotification || ev.Kind > notification.LastEventKind {
		return nil, fmt.Errorf("%w: unknown event kind %d", errCodec, ev.Kind)
	}
	return ev, nil
}

func encodeProbe(seq uint64) []byte {
	return binary.AppendUvarint([]byte{msgProbe}, seq)
}

func decodeProbe(msg string) (uint64, error) {
	r := reader{s: msg}
	if r.byte() != msgProbe {
		return 0, errCodec
	}
	seq := r.uvarint()
	if r.err != nil || len(r.s) != 0 {
		return 0, errCodec
	}
	return seq, nil
}

// partitionOf maps a stream to a partition with FNV-1a, which every node
// computes alike (unlike maphash, whose seed is per process). A user stream
// hashes tenant, NUL, user; a tenant stream hashes the tenant alone. It must
// never change between versions that share a cluster.
func partitionOf(n int, tenant string, user string, isUser bool) int {
	const (
		offset = 14695981039346656037
		prime  = 1099511628211
	)
	h := uint64(offset)
	for i := 0; i < len(tenant); i++ {
		h ^= uint64(tenant[i])
		h *= prime
	}
	if isUser {
		h *= prime // the NUL separator: h ^= 0 is a no-op
		for i := 0; i < len(user); i++ {
			h ^= uint64(user[i])
			h *= prime
		}
	}
	return int(h % uint64(n))
}
