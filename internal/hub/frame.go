package hub

import (
	"encoding/json"
	"slices"
	"strconv"
	"time"

	"github.com/heraldhq/herald/internal/notification"
)

// FrameKind names a server-to-client message. Transports map kinds onto their
// wire names (WebSocket "type", SSE "event", Socket.IO event name).
type FrameKind uint8

// Frame kinds.
const (
	FrameReady        FrameKind = iota + 1 // {"user","tenant","unread","unseen","by_category","position"}
	FrameNotification                      // the notification object, see Frame.Payload
	FrameRead                              // {"ids":[…]} or {"ids":[],"all":true}
	FrameDeleted                           // {"id":…}
	FrameUnread                            // {"count":N,"unseen":M[,"by_category":{…}]}
	FrameResync                            // {"position":…}: the gap was too large, refetch the list
	FrameArchived                          // {"ids":[…]} or {"ids":[],"all":true}
	FrameUnarchived                        // {"ids":[…]} or {"ids":[],"all":true}
	FramePreferences                       // {"muted_categories":[…],"muted_types":[…]}
	FrameEvent                             // a live (ephemeral) event, see Frame.Live and live.go
)

var frameKindNames = [...]string{"unknown", "ready", "notification", "read", "deleted", "unread", "resync",
	"archived", "unarchived", "preferences", "event"}

func (k FrameKind) String() string {
	if int(k) < len(frameKindNames) {
		return frameKindNames[k]
	}
	return "unknown"
}

// Frame is one message to one client. Payload bytes are shared between every
// recipient of an event and must not be modified by transports.
type Frame struct {
	Kind FrameKind
	// Payload is a JSON object. For FrameNotification it is the notification
	// object WITHOUT its closing brace: the transport appends the recipient's
	// position as `,"position":"<p>"}` (see AppendNotification), so the object
	// is encoded once per event however many recipients it has.
	Payload []byte
	// Position is the recipient's position after this frame (FrameNotification).
	Position notification.Position
	// Replaces is the id of the recipient's notification this one replaces
	// (same collapse key), "" for none (FrameNotification).
	Replaces string
	// Unread, when not nil, is the payload of a FrameUnread ({"count":N})
	// that follows this frame. Transports write both in one write where
	// the wire allows, so a delivery costs one syscall, not two.
	Unread []byte
	// Live is set on FrameEvent only: the pieces Socket.IO needs to emit
	// the event under its own type (Payload is the whole event object).
	Live *LiveFrame
}

// AppendNotification appends the complete notification object of f (payload,
// position, closing brace) to b.
func (f Frame) AppendNotification(b []byte) []byte {
	b = append(b, f.Payload...)
	if f.Replaces != "" { // an id: 26 characters of Crockford base32, nothing to escape
		b = append(b, `,"replaces":"`...)
		b = append(b, f.Replaces...)
		b = append(b, '"')
	}
	b = append(b, `,"position":"`...)
	b = f.Position.Append(b)
	return append(b, `"}`...)
}

// wireNotification is the JSON shape of a notification on every transport.
type wireNotification struct {
	ID          string          `json:"id"`
	Type        string          `json:"type"`
	Title       string          `json:"title"`
	Body        string          `json:"body"`
	Data        json.RawMessage `json:"data,omitempty"`
	CreatedAt   time.Time       `json:"created_at"`
	ExpiresAt   *time.Time      `json:"expires_at,omitempty"`
	Category    string          `json:"category,omitempty"`
	CollapseKey string          `json:"collapse_key,omitempty"`
	Read        bool            `json:"read"`
	Archived    bool            `json:"archived,omitempty"`
}

// EncodeNotification returns the notification object without its closing brace
// (the payload of a FrameNotification).
func EncodeNotification(n *notification.Notification, read bool) []byte {
	return EncodeItem(n, read, false)
}

func encodeRead(ids []string, all bool) []byte {
	if ids == nil {
		ids = []string{}
	}
	v := struct {
		IDs []string `json:"ids"`
		All bool     `json:"all,omitempty"`
	}{ids, all}
	b, _ := json.Marshal(v)
	return b
}

func encodeDeleted(id string) []byte {
	b, _ := json.Marshal(struct {
		ID string `json:"id"`
	}{id})
	return b
}

// encodeExpired is the deleted object of a notification that expired.
func encodeExpired(id string) []byte {
	b, _ := json.Marshal(struct {
		ID      string `json:"id"`
		Expired bool   `json:"expired"`
	}{id, true})
	return b
}

// smallUnread holds the encodings of the common (unread, unseen) counts,
// so that a broadcast to many clients does not allocate one per client.
const smallCount = 64

var smallUnread = func() [][]byte {
	out := make([][]byte, smallCount*smallCount)
	for i := range out {
		out[i] = appendUnread(nil, int64(i/smallCount), int64(i%smallCount), nil)
	}
	return out
}()

// encodeUnread is the unread frame's payload: the unread and unseen
// counts, and the unread count by category when byCategory is not nil.
func encodeUnread(n, unseen int64, byCategory map[string]int64) []byte {
	if byCategory == nil && n >= 0 && n < smallCount && unseen >= 0 && unseen < smallCount {
		return smallUnread[n*smallCount+unseen]
	}
	return appendUnread(make([]byte, 0, 48), n, unseen, byCategory)
}

func appendUnread(b []byte, n, unseen int64, byCategory map[string]int64) []byte {
	b = append(b, `{"count":`...)
	b = strconv.AppendInt(b, n, 10)
	b = append(b, `,"unseen":`...)
	b = strconv.AppendInt(b, unseen, 10)
	if byCategory != nil {
		b = append(b, `,"by_category":`...)
		b = appendCounts(b, byCategory)
	}
	return append(b, '}')
}

// appendCounts appends m as encoding/json writes it: names sorted.
func appendCounts(b []byte, m map[string]int64) []byte {
	var buf [16]string
	names := buf[:0]
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	b = append(b, '{')
	for i, k := range names {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		b = strconv.AppendInt(b, m[k], 10)
	}
	return append(b, '}')
}

func encodeResync(p notification.Position) []byte {
	b := make([]byte, 0, 48)
	b = append(b, `{"position":"`...)
	b = p.Append(b)
	return append(b, `"}`...)
}

func encodeReady(r notification.Recipient, c Counts, p notification.Position) []byte {
	by := c.ByCategory
	if by == nil {
		by = map[string]int64{}
	}
	b, _ := json.Marshal(struct {
		User       string           `json:"user"`
		Tenant     string           `json:"tenant"`
		Unread     int64            `json:"unread"`
		Unseen     int64            `json:"unseen"`
		ByCategory map[string]int64 `json:"by_category"`
		Position   string           `json:"position"`
	}{r.User, r.Tenant, c.Unread, c.Unseen, by, p.String()})
	return b
}

// encodePreferences is the preferences frame's payload.
func encodePreferences(p *notification.Preferences) []byte {
	v := struct {
		Categories []string `json:"muted_categories"`
		Types      []string `json:"muted_types"`
	}{[]string{}, []string{}}
	if p != nil {
		v.Categories = append(v.Categories, p.MutedCategories...)
		v.Types = append(v.Types, p.MutedTypes...)
	}
	b, _ := json.Marshal(v)
	return b
}

// AppendPair appends f with appendOne, then the unread frame that follows
// it (f.Unread), if any, the same way: transports write the two together.
func (f Frame) AppendPair(b []byte, appendOne func([]byte, Frame) []byte) []byte {
	b = appendOne(b, f)
	if f.Unread != nil {
		b = appendOne(b, Frame{Kind: FrameUnread, Payload: f.Unread})
	}
	return b
}
